//! daemon.json: a bad file is an error that names the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = berth_engine::config::parse_file(std::path::Path::new("daemon.json"), text);
});
