//! The runtime's config.json: parsed and checked, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = berth_runtime::spec::parse(data) {
        let _ =
            berth_runtime::spec::validate(&spec, std::path::Path::new("/nonexistent/config.json"));
    }
});
