//! The create body, as the API decodes and checks it: no panic, whatever
//! the JSON.
#![no_main]

use berth_engine::api::body;
use berth_engine::daemon::create;
use berth_engine::types::CreateRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = body::json::<CreateRequest>(data, "container create") else {
        return;
    };
    let mut warnings = Vec::new();
    let _ = create::validate_host_config(&req.host_config, &mut warnings);
    let _ = create::validate_restart_policy(&req.host_config);
    let _ = create::command(&req.config);
    let _ = berth_engine::daemon::lines::validate(&req.config, &req.host_config);
    let mut config = req.config.clone();
    if let Ok(image) = serde_json::from_slice::<serde_json::Value>(data) {
        create::merge_image_config(&mut config, &image);
    }
});
