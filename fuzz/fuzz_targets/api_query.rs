//! Query strings: filters (JSON in a parameter), times and flags.
#![no_main]

use berth_engine::api::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params: query::Params = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(f) = query::filters(&params) {
        let _ = query::only(&f, &["label", "name", "id", "status"]);
        let _ = query::labels_match(&Default::default(), f.get("label"));
    }
    let _ = query::flag(&params, "all");
    for key in ["since", "until"] {
        let _ = query::time_param(&params, key);
    }
});
