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

#[test]
fn resource_values_docker_refuses_are_400s_that_create_nothing() {
    let s = stack();
    let cases = [
        (serde_json::json!({"MemorySwap": -2}), "MemorySwap"),
        (
            serde_json::json!({"Memory": 9223372036854775807i64}),
            "Memory",
        ),
        (serde_json::json!({"CpusetCpus": "abc"}), "cpuset cpus"),
        (
            serde_json::json!({"CpusetCpus": "0-99999"}),
            "Requested CPUs",
        ),
        (serde_json::json!({"CpusetMems": "99"}), "memory nodes"),
        (serde_json::json!({"OomScoreAdj": 99999}), "oom score adj"),
        (serde_json::json!({"BlkioWeight": 5000}), "blkio weight"),
        (
            serde_json::json!({"Ulimits": [{"Name": "nofile", "Soft": -5, "Hard": -5}]}),
            "ulimit",
        ),
        (
            serde_json::json!({"Sysctls": {"kernel.no_such_thing": "1"}}),
            "sysctl",
        ),
        (
            serde_json::json!({"Sysctls": {"net.no.such.key": "1"}}),
            "sysctl",
        ),
        (serde_json::json!({"CpuShares": -5}), "CpuShares"),
        (serde_json::json!({"CpuPeriod": -5}), "cfs period"),
        (serde_json::json!({"CpuPeriod": 1}), "cfs period"),
        (
            serde_json::json!({"PidsLimit": 9223372036854775807i64}),
            "PidsLimit",
        ),
        (
            serde_json::json!({"MemoryReservation": -5}),
            "memory reservation",
        ),
        (serde_json::json!({"NanoCpus": -1}), "Range of CPUs"),
        (
            serde_json::json!({"CgroupParent": "../../../../../tmp/x"}),
            "CgroupParent",
        ),
        (
            serde_json::json!({"Binds": ["/:/"]}),
            "destination can't be '/'",
        ),
        (
            serde_json::json!({"Binds": [":/x"]}),
            "invalid volume specification",
        ),
    ];
    for (hc, want) in cases {
        let body = serde_json::json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": hc});
        let (code, resp) = s.api("POST", "/containers/create", Some(&body.to_string()));
        assert_eq!(code, 400, "{hc}: {resp}");
        assert!(message(&resp).contains(want), "{hc}: {resp}");
    }
    let (code, resp) = s.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "StopSignal": "SIGNOPE"}"#),
    );
    assert_eq!(code, 400, "{resp}");
    assert!(
        s.berth(&["ps", "-aq"]).ok().is_empty(),
        "nothing was created"
    );
    assert!(!std::path::Path::new("/tmp/x").exists());

    // The same values on update, on a running container: refused, and
    // the container keeps what it had.
    s.berth(&[
        "run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "600",
    ])
    .ok();
    for body in [
        r#"{"NanoCpus": -9223372036854775807}"#,
        r#"{"MemorySwap": -2}"#,
        r#"{"CpusetCpus": "0-3000"}"#,
        r#"{"BlkioWeight": 5000}"#,
        r#"{"Memory": "abc"}"#,
        r#"[{"Memory": 1}]"#,
        r#"{"PidsLimit": 9223372036854775807}"#,
    ] {
        let (code, resp) = s.api("POST", "/containers/upd/update", Some(body));
        assert_eq!(code, 400, "{body}: {resp}");
    }
    let mem = s
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.State.Status}}",
            "upd",
        ])
        .ok()
        .to_string();
    assert_eq!(mem, "67108864 0 running");
    // A good update still works.
    let (code, resp) = s.api(
        "POST",
        "/containers/upd/update",
        Some(r#"{"NanoCpus": 500000000}"#),
    );
    assert_eq!(code, 200, "{resp}");
    for (path, want) in [
        ("/containers/upd/kill?signal=0", "Invalid signal"),
        (
            "/containers/upd/kill?signal=99999",
            "does not support signal",
        ),
        ("/containers/upd/kill?signal=SIGNOPE", "Invalid signal"),
    ] {
        let (code, resp) = s.api("POST", path, None);
        assert_eq!(code, 400, "{path}: {resp}");
        assert!(message(&resp).contains(want), "{path}: {resp}");
    }
    let (code, _) = s.api("HEAD", "/containers/upd/archive?path=%00", None);
    assert_eq!(code, 400);
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Status}}", "upd"]).ok(),
        "running"
    );
    s.berth(&["rm", "-f", "upd"]).ok();
}

#[test]
fn a_failed_commit_leaves_the_container_as_it_was() {
    let s = stack();
    s.berth(&["run", "-d", "--name", "cm", "busybox", "sleep", "600"])
        .ok();
    let (code, resp) = s.api(
        "POST",
        "/commit?container=cm&repo=..%2F..%2Fetc&tag=..",
        None,
    );
    assert_eq!(code, 400, "{resp}");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cm"])
            .ok(),
        "running false"
    );
    let (code, resp) = s.api("POST", "/commit?container=cm", Some("[1]"));
    assert_eq!(code, 400, "{resp}");
    // One the user paused stays paused through a commit that works.
    s.berth(&["pause", "cm"]).ok();
    let (code, resp) = s.api("POST", "/commit?container=cm&repo=snap&tag=one", None);
    assert_eq!(code, 201, "{resp}");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Status}}", "cm"]).ok(),
        "paused"
    );
    s.berth(&["unpause", "cm"]).ok();
    // And one that was running runs again after a commit that works.
    let (code, resp) = s.api("POST", "/commit?container=cm&repo=snap&tag=two", None);
    assert_eq!(code, 201, "{resp}");
    assert_eq!(
        s.berth(&["inspect", "-f", "{{.State.Status}}", "cm"]).ok(),
        "running"
    );
    s.berth(&["rm", "-f", "cm"]).ok();
}
