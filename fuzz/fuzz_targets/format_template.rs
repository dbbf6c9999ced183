//! `--format` templates (Go template syntax) rendered over a value: the
//! first line is the template, the rest JSON.
#![no_main]

use berth_cli::berth::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, rest) = text.split_once('\n').unwrap_or((text, "{}"));
    let value: serde_json::Value = serde_json::from_str(rest).unwrap_or_else(
        |_| serde_json::json!({"Id": "abc", "Names": ["/x"], "Labels": {"a": "b"}}),
    );
    if let Ok(f) = format::parse(template, &|h| h.to_uppercase()) {
        let _ = f.render(&value);
    }
});
