//! What a caller sends never becomes a host path, a record or a crash:
//! the requests an API fuzzing run found, each answered as Docker answers
//! it (a 400 naming the field) with nothing changed on the host.

use integration_tests::stack::Stack;

fn stack() -> Stack {
    let s = Stack::start();
    s.load_busybox();
    s
}

/// A user network of the stack's own address block and bridge names.
fn network_body(s: &Stack, name: &str, i: u8, extra: serde_json::Value) -> String {
    let mut b = serde_json::json!({
        "Name": name,
        "IPAM": {"Config": [{"Subnet": s.net.subnet(i)}]},
        "Options": {"com.docker.network.bridge.name": s.net.bridge(&i.to_string())},
    });
    if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    b.to_string()
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| body.to_string())
}

#[test]
fn network_names_never_become_host_paths() {
    let s = stack();
    let victim = s.dir.path().join("victim");
    for name in [
        "/../../../../../../etc/cron.d/x".to_string(),
        format!("/../../../../../..{}", victim.display()),
        "..".into(),
        "a\nb".into(),
        "a\u{0}b".into(),
    ] {
        let (code, body) = s.api(
            "POST",
            "/networks/create",
            Some(&network_body(&s, &name, 1, serde_json::json!({}))),
        );
        assert_eq!(code, 400, "{name:?}: {body}");
        assert!(message(&body).contains("invalid network name"), "{body}");
    }
    assert!(!std::path::Path::new("/etc/cron.d/x").exists());
    assert!(!victim.exists());
    // A name dockerd takes (blanks, punctuation) works, and its DNS file is
    // named by the network's id.
    let (code, body) = s.api(
        "POST",
        "/networks/create",
        Some(&network_body(&s, "my net (1)", 2, serde_json::json!({}))),
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["Id"]
        .as_str()
        .expect("id")
        .to_string();
    s.berth(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "my net (1)",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let dns_dir = s.exec_root.join("aardvark-dns");
    let files: Vec<String> = std::fs::read_dir(&dns_dir)
        .expect("the DNS directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "aardvark.pid")
        .collect();
    assert_eq!(files, vec![id.clone()], "{dns_dir:?}");
    let ip = s
        .berth(&["exec", "named", "nslookup", "named"])
        .ok()
        .to_string();
    assert!(ip.contains("Address"), "{ip}");
    s.berth(&["rm", "-f", "named"]).ok();
    assert!(
        !dns_dir.join(&id).exists(),
        "the file goes with its last record"
    );
}

#[test]
fn aliases_cannot_add_dns_records() {
    let s = stack();
    let (code, body) = s.api(
        "POST",
        "/networks/create",
        Some(&network_body(&s, "aliasnet", 1, serde_json::json!({}))),
    );
    assert_eq!(code, 201, "{body}");
    let evil = "evil\n0000 6.6.6.6  injected-name";
    let create = serde_json::json!({
        "Image": "busybox", "Cmd": ["sleep", "600"],
        "HostConfig": {"NetworkMode": "aliasnet"},
        "NetworkingConfig": {"EndpointsConfig": {"aliasnet": {"Aliases": [evil]}}},
    });
    let (code, body) = s.api(
        "POST",
        "/containers/create?name=evil",
        Some(&create.to_string()),
    );
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).contains("invalid network alias"), "{body}");
    assert!(
        s.berth(&["ps", "-aq"]).ok().is_empty(),
        "nothing was created"
    );
    // Connecting with such an alias is refused the same way.
    s.berth(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"])
        .ok();
    let connect = serde_json::json!({"Container": "plain", "EndpointConfig": {"Aliases": [evil]}});
    let (code, body) = s.api(
        "POST",
        "/networks/aliasnet/connect",
        Some(&connect.to_string()),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.api(
        "POST",
        "/networks/aliasnet/connect",
        Some(&serde_json::json!({"Container": "plain", "EndpointConfig": {"Aliases": ["good-alias"]}}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    for e in std::fs::read_dir(s.exec_root.join("aardvark-dns"))
        .expect("DNS dir")
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!text.contains("injected"), "{text}");
    }
    s.berth(&["rm", "-f", "plain"]).ok();
}

#[test]
fn huge_times_are_a_400_not_a_dropped_connection() {
    let s = stack();
    s.berth(&["run", "-d", "--name", "tt", "busybox", "sleep", "600"])
        .ok();
    for path in [
        "/events?since=9999999999999999999",
        "/events?until=9999999999999999999",
        "/events?since=abc",
        "/containers/tt/logs?stdout=1&since=18446744073709551615",
        "/containers/tt/logs?stdout=1&until=18446744073709551615",
        "/containers/tt/logs?stdout=1&since=9223372036854775807",
    ] {
        let (code, body) = s.api("GET", path, None);
        assert_eq!(code, 400, "{path}: {body}");
        let m = message(&body);
        assert!(m.contains("invalid value for"), "{path}: {m}");
    }
    // What clients send still works.
    let (code, _) = s.api(
        "GET",
        "/containers/tt/logs?stdout=1&since=1700000000.5",
        None,
    );
    assert_eq!(code, 200);
    s.berth(&["rm", "-f", "tt"]).ok();
}
