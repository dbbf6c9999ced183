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
    // Options that would take over the host's interfaces are refused.
    for (opts, status) in [
        (
            serde_json::json!({"com.docker.network.bridge.name": "lo"}),
            403,
        ),
        (
            serde_json::json!({"com.docker.network.bridge.name": "br+"}),
            400,
        ),
        (serde_json::json!({"parent": "lo"}), 400),
        (
            serde_json::json!({"com.docker.network.driver.mtu": "99999999"}),
            400,
        ),
    ] {
        let body = serde_json::json!({"Name": "hostif", "Options": opts});
        let (code, resp) = s.api("POST", "/networks/create", Some(&body.to_string()));
        assert_eq!(code, status, "{opts}: {resp}");
    }
    for subnet in ["127.0.0.0/24", "169.254.169.0/24", "0.0.0.0/1"] {
        let body =
            serde_json::json!({"Name": "reserved", "IPAM": {"Config": [{"Subnet": subnet}]}});
        let (code, resp) = s.api("POST", "/networks/create", Some(&body.to_string()));
        assert_eq!(code, 400, "{subnet}: {resp}");
    }
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
    let dns_dir = s.exec_root.join("dns");
    let files: Vec<String> = std::fs::read_dir(&dns_dir)
        .expect("the DNS directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "server.pid" && n != "server.log")
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
    // dockerd takes any alias: one that is no DNS name (a comma would
    // split the record's names) is kept in the endpoint and not served.
    s.berth(&["run", "-d", "--name", "odd", "busybox", "sleep", "600"])
        .ok();
    let odd = serde_json::json!({"Container": "odd", "EndpointConfig": {"Aliases": ["x,injected", "--dashed"]}});
    let (code, body) = s.api("POST", "/networks/aliasnet/connect", Some(&odd.to_string()));
    assert_eq!(code, 200, "{body}");
    let aliases = s
        .berth(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks.aliasnet.Aliases}}",
            "odd",
        ])
        .ok()
        .to_string();
    assert!(
        aliases.contains("x,injected") && aliases.contains("--dashed"),
        "{aliases}"
    );
    let mut served = String::new();
    for e in std::fs::read_dir(s.exec_root.join("dns"))
        .expect("DNS dir")
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!text.contains("injected"), "{text}");
        served.push_str(&text);
    }
    assert!(served.contains("--dashed"), "{served}");
    s.berth(&["rm", "-f", "plain", "odd"]).ok();
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
            serde_json::json!({"CgroupParent": "../../../../../tmp/berth-escape-test"}),
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
    assert!(!std::path::Path::new("/tmp/berth-escape-test").exists());
    // A weight out of range is refused where the kernel weighs block I/O;
    // elsewhere it is discarded with the warning first, as dockerd orders
    // them.
    let (code, resp) = s.api(
        "POST",
        "/containers/create?name=overweight",
        Some(r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"BlkioWeight": 5000}}"#),
    );
    if integration_tests::kernel_weighs_block_io() {
        assert_eq!(code, 400, "{resp}");
        assert!(message(&resp).contains("blkio weight"), "{resp}");
    } else {
        assert_eq!(code, 201, "{resp}");
        assert!(resp.contains("Weight discarded"), "{resp}");
        s.berth(&["rm", "overweight"]).ok();
    }

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
    // A block I/O weight: applied where the kernel weighs block I/O, else
    // dropped with dockerd's warning; never a 500 (the fuzzer found one on
    // a kernel without CFQ or BFQ).
    let weighs = integration_tests::kernel_weighs_block_io();
    let (code, resp) = s.api(
        "POST",
        "/containers/upd/update",
        Some(r#"{"BlkioWeight": 300, "CpuShares": 512}"#),
    );
    assert_eq!(code, 200, "{resp}");
    let weight = s
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.BlkioWeight}} {{.HostConfig.CpuShares}}",
            "upd",
        ])
        .ok()
        .to_string();
    if weighs {
        assert_eq!(weight, "300 512");
    } else {
        assert!(resp.contains("Weight discarded"), "{resp}");
        assert_eq!(weight, "0 512");
        // At create as well: made, warned, and it starts.
        let (code, resp) = s.api(
            "POST",
            "/containers/create?name=weighed",
            Some(r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"BlkioWeight": 300}}"#),
        );
        assert_eq!(code, 201, "{resp}");
        assert!(resp.contains("Weight discarded"), "{resp}");
        let (code, resp) = s.api("POST", "/containers/weighed/start", None);
        assert_eq!(code, 204, "{resp}");
        s.berth(&["rm", "-f", "weighed"]).ok();
    }
    // As dockerd: what is no signal is refused before the container is
    // looked for; a number Linux has no signal for is the daemon's 500,
    // naming the container.
    for (path, code_wanted, want) in [
        ("/containers/upd/kill?signal=0", 400, "Invalid signal: 0"),
        (
            "/containers/upd/kill?signal=99999",
            500,
            "Cannot kill container: upd: The linux daemon does not support signal 99999",
        ),
        (
            "/containers/upd/kill?signal=SIGNOPE",
            400,
            "Invalid signal: SIGNOPE",
        ),
        (
            "/containers/nosuch/kill?signal=SIGNOPE",
            400,
            "Invalid signal: SIGNOPE",
        ),
        (
            "/containers/nosuch/kill?signal=9",
            404,
            "Cannot kill container: nosuch: No such container: nosuch",
        ),
        // Parameters are checked before the lookup, in dockerd's words.
        (
            "/containers/nosuch/rename",
            400,
            "Neither old nor new names may be empty",
        ),
        (
            "/containers/nosuch/resize?h=abc&w=1",
            400,
            r#"strconv.Atoi: parsing "abc": invalid syntax"#,
        ),
        (
            "/exec/nosuch/resize?h=1",
            400,
            r#"strconv.Atoi: parsing "": invalid syntax"#,
        ),
        ("/containers/upd/resize?h=10&w=20", 200, ""),
    ] {
        let (code, resp) = s.api("POST", path, None);
        if code_wanted == 200 {
            assert_eq!(code, code_wanted, "{path}: {resp}");
            continue;
        }
        assert_eq!(code, code_wanted, "{path}: {resp}");
        assert_eq!(message(&resp), want, "{path}: {resp}");
    }
    let (code, _) = s.api("HEAD", "/containers/upd/archive?path=%00", None);
    assert_eq!(code, 400);
    for (method, path, want) in [
        (
            "GET",
            "/containers/nosuch/logs",
            "Bad parameters: you must choose at least one stream",
        ),
        (
            "GET",
            "/containers/nosuch/archive",
            "Bad parameter: 'path' cannot be empty",
        ),
    ] {
        let (code, resp) = s.api(method, path, None);
        assert_eq!(code, 400, "{path}: {resp}");
        assert_eq!(message(&resp), want, "{path}: {resp}");
    }
    // A connect without a container: dockerd's lookup refuses the empty
    // name (it was a 404 naming nothing).
    let (code, resp) = s.api("POST", "/networks/bridge/connect", Some("{}"));
    assert_eq!(code, 400, "{resp}");
    assert_eq!(message(&resp), r#"invalid name or ID supplied: """#);
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

/// A raw API call as an unprivileged uid (through curl under setpriv):
/// the status and body.
fn api_as(s: &Stack, uid: u32, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = std::process::Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "curl",
        "-s",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
    ])
    .arg(&s.socket)
    .args(["-X", method, "-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        c.args(["--data-binary", b]);
    }
    c.arg(format!("http://berth{path}"));
    let out = c.output().expect("setpriv curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn operators_reach_neither_host_paths_nor_others_containers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = {
        let allowed = dir.path().join("allowed");
        std::fs::create_dir_all(&allowed).expect("allowed");
        let s = Stack::start_with(serde_json::json!({"authorization": {
            "roles": {"uid:4242": "operator"},
            "allowed-bind-paths": [allowed],
        }}));
        s.load_busybox();
        use std::os::unix::fs::PermissionsExt;
        for p in [s.dir.path(), s.socket.as_path(), dir.path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        s
    };
    let allowed = dir.path().join("allowed");
    let op = |m: &str, p: &str, b: Option<&str>| api_as(&s, 4242, m, p, b);
    let rule_of = |r: &(u16, String)| {
        assert_eq!(r.0, 403, "{r:?}");
        message(&r.1)
    };
    // Networks: names validated like everyone's, no host interfaces.
    let r = op(
        "POST",
        "/networks/create",
        Some(r#"{"Name": "/../../../../etc/cron.d/x"}"#),
    );
    assert_eq!(r.0, 400, "{r:?}");
    let body =
        serde_json::json!({"Name": "opnet", "Options": {"com.docker.network.bridge.name": "lo"}});
    assert!(
        rule_of(&op("POST", "/networks/create", Some(&body.to_string())))
            .contains("no-host-interfaces")
    );
    // Plugins run with the host powers their config asks: never an
    // operator's to make or run; reading them is open.
    for (m, p) in [
        ("POST", "/plugins/create?name=oppl"),
        ("POST", "/plugins/oppl/enable?timeout=0"),
        ("DELETE", "/plugins/oppl"),
    ] {
        assert!(
            rule_of(&op(m, p, Some(""))).contains("no-plugins"),
            "{m} {p}"
        );
    }
    assert_eq!(op("GET", "/plugins", None).0, 200);
    // Host powers in a create body.
    let create = |hc: serde_json::Value| {
        serde_json::json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": hc}).to_string()
    };
    std::os::unix::fs::symlink("/", allowed.join("root")).expect("symlink");
    for (hc, rule) in [
        (
            serde_json::json!({"ReadonlyPaths": ["/nothing"]}),
            "no-proc-paths",
        ),
        (
            serde_json::json!({"SecurityOpt": [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]}),
            "no-unconfined",
        ),
        (
            serde_json::json!({"Binds": [format!("{}/../..:/host", allowed.display())]}),
            "bind-outside-allowed",
        ),
        (
            serde_json::json!({"Binds": [format!("{}/root:/host", allowed.display())]}),
            "bind-outside-allowed",
        ),
        (serde_json::json!({"CgroupParent": "/"}), "no-cgroup-parent"),
    ] {
        let m = rule_of(&op("POST", "/containers/create", Some(&create(hc.clone()))));
        assert!(m.contains(rule), "{hc}: {m}");
    }
    // A body the policy cannot read is refused, not waved through.
    let r = op(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "x": "\udc00", "HostConfig": {"Privileged": true}}"#),
    );
    assert!(r.0 == 400 || r.0 == 403, "{r:?}");
    // Root's privileged container is not the operator's to use.
    s.berth(&[
        "run",
        "-d",
        "--name",
        "adminbox",
        "--privileged",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let exec = r#"{"Cmd": ["id"], "AttachStdout": true}"#;
    assert!(
        rule_of(&op("POST", "/containers/adminbox/exec", Some(exec)))
            .contains("own-containers-only")
    );
    assert!(
        rule_of(&op("GET", "/containers/adminbox/archive?path=/etc", None))
            .contains("own-containers-only")
    );
    assert!(
        rule_of(&op("DELETE", "/containers/adminbox?force=1", None))
            .contains("own-containers-only")
    );
    let joined = serde_json::json!({"NetworkMode": "container:adminbox"});
    assert!(
        rule_of(&op("POST", "/containers/create", Some(&create(joined))))
            .contains("own-containers-only")
    );
    let (code, _) = op("GET", "/containers/adminbox/json", None);
    assert_eq!(code, 200, "reads stay open");
    // Its own containers are its to use.
    let mine = serde_json::json!({"Image": "busybox", "Cmd": ["sleep", "600"]}).to_string();
    let (code, body) = op("POST", "/containers/create?name=opbox", Some(&mine));
    assert_eq!(code, 201, "{body}");
    assert_eq!(op("POST", "/containers/opbox/start", None).0, 204);
    let (code, body) = op("POST", "/containers/opbox/exec", Some(exec));
    assert_eq!(code, 201, "{body}");
    assert_eq!(op("DELETE", "/containers/opbox?force=1", None).0, 204);
    s.berth(&["rm", "-f", "adminbox"]).ok();
}

/// Runs `script` in python3 as uid 4242 (with the test's own limit of
/// open files).
fn python_as_4242(script: &str, arg: &str) -> std::process::Child {
    std::process::Command::new("setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", script, arg])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 as uid 4242")
}

#[test]
fn idle_and_slow_connections_cannot_lock_root_out() {
    let s = Stack::start_with(serde_json::json!({
        "api-idle-timeout": "2s",
        "api-connections-per-caller": 100,
    }));
    use std::os::unix::fs::PermissionsExt;
    for p in [s.dir.path(), s.socket.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    // 20,000 connections that never send a byte, held by one user.
    let hold = r#"
import socket, sys, time
held, refused = [], 0
for i in range(20000):
    try:
        s = socket.socket(socket.AF_UNIX)
    except OSError:
        break  # this process's own limit of open files
    try:
        s.connect(sys.argv[1])
        held.append(s)
    except OSError:
        refused += 1
        s.close()
print("connected", len(held), "refused", refused, flush=True)
time.sleep(30)
"#;
    let mut child = python_as_4242(hold, &s.socket.to_string_lossy());
    let pid = child.id();
    // Give it time to make them, then ask as root.
    let started = std::time::Instant::now();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = child.stdout.as_mut().expect("stdout");
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    assert!(line.starts_with("connected"), "{line}");
    let t = std::time::Instant::now();
    let out = s.berth(&["ps"]);
    let took = t.elapsed();
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    println!(
        "{line}: berth ps as root took {took:?} ({:?} after the first connect)",
        started.elapsed()
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "root waited {took:?}"
    );

    // A client that never finishes its headers, or sends a body shorter
    // than it announced, is let go after the idle timeout.
    use std::io::{Read, Write};
    for partial in [
        "GET /_ping HTTP/1.1\r\nHost: x\r\n".to_string(),
        "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Ima".to_string(),
    ] {
        let mut c = std::os::unix::net::UnixStream::connect(&s.socket).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
        c.write_all(partial.as_bytes()).expect("write");
        let t = std::time::Instant::now();
        let mut buf = Vec::new();
        let r = c.read_to_end(&mut buf);
        assert!(r.is_ok(), "the server did not let go: {r:?}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "held for {:?}",
            t.elapsed()
        );
    }
    // Over the per-caller limit, a connection is answered 429 at once.
    let over = r#"
import socket, sys
held = []
for i in range(100):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
print(s.recv(200).decode().split("\r\n")[0], flush=True)
"#;
    let out = python_as_4242(over, &s.socket.to_string_lossy())
        .wait_with_output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("429"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The berth-dns this stack's berthd started, if it still runs.
fn name_server(s: &Stack) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(s.exec_root.join("dns/server.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("berth-dns") && cmdline.contains(&*s.exec_root.to_string_lossy()))
        .then_some(pid)
}

#[test]
fn a_stopped_engine_leaves_no_name_server_behind() {
    let mut s =
        Stack::start_with(serde_json::json!({"live-restore": false, "shutdown-timeout": 1}));
    s.load_busybox();
    // Named after the server's pid file: when names were file names, its
    // records overwrote the pid and the server was never stopped.
    let (code, body) = s.api(
        "POST",
        "/networks/create",
        Some(&network_body(&s, "server.pid", 1, serde_json::json!({}))),
    );
    assert_eq!(code, 201, "{body}");
    s.berth(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "server.pid",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    assert!(name_server(&s).is_some(), "the name server serves dnsnet");
    s.stop_berthd();
    assert!(
        integration_tests::eventually(5, || name_server(&s).is_none()),
        "berth-dns still runs with nothing to serve"
    );
    s.spawn_berthd();
    s.berth(&["rm", "-f", "named"]).ok();
}
