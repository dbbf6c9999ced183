//! The Dockerfile parser and Docker's variable substitution.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = dockerfile::parse(text);
    let lookup = |name: &str| (name.len() % 2 == 0).then(|| format!("v{name}"));
    for escape in ['\\', '`'] {
        let _ = dockerfile::expand(text, &lookup, escape);
        let _ = dockerfile::expand_words(text, &lookup, escape);
    }
});
