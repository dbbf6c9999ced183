//! Image references: what parses prints back as something that parses to
//! the same reference.
#![no_main]

use imagestore::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(text) {
        let shown = r.to_string();
        let again = Reference::parse(&shown)
            .unwrap_or_else(|e| panic!("{text:?} parsed, but its form {shown:?} does not: {e}"));
        assert_eq!(again.to_string(), shown, "{text:?}");
    }
});
