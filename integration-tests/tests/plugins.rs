//! Managed plugins through the real docker CLI, as dockerd 20.10 answers:
//! `docker plugin create` from a directory, set, enable (the plugin runs and
//! listens on its socket), volumes it serves (`docker volume create -d`,
//! containers that mount them), disable and rm; a plugin that ends before
//! it listens; an enabled plugin across an engine restart; plugins pushed to
//! a registry, installed (privileges asked and checked) and upgraded from
//! it, through the docker CLI and berth's; legacy plugins on the host.

use integration_tests::plugin::{HostPlugin, authz_plugin_dir, call, socket, volume_plugin_dir};
use integration_tests::registry::Registry;
use integration_tests::stack::{Stack, docker_cli};
use serde_json::{Value, json};

fn stack() -> Option<Stack> {
    if docker_cli().is_none() {
        eprintln!("skipped: no docker CLI on this machine");
        return None;
    }
    let s = Stack::start();
    s.load_busybox();
    Some(s)
}

fn inspect(s: &Stack, name: &str) -> Value {
    let out = s.docker(&["plugin", "inspect", name]);
    let v: Value = serde_json::from_str(out.ok()).expect("inspect JSON");
    v[0].clone()
}

/// The plugin events so far, each as `format` shows it.
fn plugin_events(s: &Stack, format: &str) -> integration_tests::stack::Out {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    s.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "--filter",
        "type=plugin",
        "--format",
        format,
    ])
}

fn refused(s: &Stack, args: &[&str], words: &str) {
    let out = s.docker(args);
    assert_ne!(out.code, 0, "{args:?} succeeded: {out:?}");
    assert!(
        out.stderr.contains(words),
        "{args:?}: wanted {words:?} in {:?}",
        out.stderr
    );
}

#[test]
fn docker_cli_makes_sets_enables_and_removes_a_volume_plugin() {
    let Some(s) = stack() else { return };
    let dir = volume_plugin_dir(s.dir.path(), "tvol", None);
    let dir = dir.to_str().unwrap();
    assert_eq!(s.docker(&["plugin", "create", "tvol", dir]).ok(), "tvol");
    refused(
        &s,
        &["plugin", "create", "tvol", dir],
        "plugin tvol:latest already exists",
    );
    let ls = s.docker(&["plugin", "ls", "--format", "{{.Name}} {{.Enabled}}"]);
    assert_eq!(ls.ok(), "tvol:latest false");

    // The record is Docker's: the config with Docker's names, the settings
    // the config's values.
    let p = inspect(&s, "tvol");
    let id = p["Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(p["Name"], "tvol:latest");
    assert_eq!(p["PluginReference"], "tvol:latest");
    assert_eq!(p["Enabled"], false);
    assert_eq!(p["Config"]["Interface"]["Socket"], "tvol.sock");
    assert_eq!(p["Config"]["PropagatedMount"], "/data");
    assert_eq!(p["Config"]["Linux"]["Capabilities"], Value::Null);
    assert!(
        p["Config"]["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(p["Settings"]["Env"], json!(["DEBUG=0", "ROOT=/data"]));
    assert_eq!(p["Settings"]["Args"], json!(["--flag"]));
    assert_eq!(p["Settings"]["Devices"], json!([]));
    // By a prefix of its id, too.
    assert_eq!(inspect(&s, &id[..12])["Name"], "tvol:latest");

    s.docker(&["plugin", "set", "tvol", "DEBUG=1", "args=-a -b"])
        .ok();
    refused(
        &s,
        &["plugin", "set", "tvol", "ROOT=/x"],
        "\"ROOT\" is not settable",
    );
    refused(
        &s,
        &["plugin", "set", "tvol", "NOPE=1"],
        "setting \"NOPE\" not found in the plugin configuration",
    );

    assert_eq!(s.docker(&["plugin", "enable", "tvol"]).ok(), "tvol");
    assert_eq!(inspect(&s, "tvol")["Enabled"], true);
    // The process runs with the settings, on its socket.
    let sock = socket(&s.exec_root, &id);
    let env = call(&sock, "Test.Env", &json!({})).expect("the plugin answers on its socket");
    assert_eq!(env["env"]["DEBUG"], "1", "{env}");
    assert_eq!(env["env"]["ROOT"], "/data");
    assert_eq!(env["argv"], json!(["-a", "-b"]));
    refused(
        &s,
        &["plugin", "enable", "tvol"],
        "plugin already enabled: plugin tvol:latest is enabled",
    );
    refused(
        &s,
        &["plugin", "set", "tvol", "DEBUG=2"],
        "cannot set on an active plugin, disable plugin before setting",
    );
    refused(
        &s,
        &["plugin", "rm", "tvol"],
        "plugin tvol:latest is enabled",
    );

    // A volume it serves: made by the plugin, mounted for a container
    // from where the plugin keeps it, shown with what the plugin tells.
    assert_eq!(
        s.docker(&["volume", "create", "-d", "tvol", "v1"]).ok(),
        "v1"
    );
    let run = s.docker(&[
        "run",
        "--rm",
        "-v",
        "v1:/v",
        "busybox",
        "sh",
        "-c",
        "echo hi > /v/f; cat /v/f",
    ]);
    assert_eq!(run.ok(), "hi");
    let kept = s
        .data_root
        .join("plugins")
        .join(&id)
        .join("propagated-mount/v1/f");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "hi\n");
    let v: Value = serde_json::from_str(s.docker(&["volume", "inspect", "v1"]).ok()).unwrap();
    assert_eq!(v[0]["Driver"], "tvol:latest");
    assert_eq!(v[0]["Mountpoint"], "/data/v1");
    assert_eq!(v[0]["Status"]["debug"], "1");
    // Prune and disk usage are the local driver's, as dockerd's.
    s.docker(&["volume", "prune", "-af"]).ok();
    assert!(
        s.docker(&["volume", "ls", "-q"])
            .ok()
            .lines()
            .any(|l| l == "v1")
    );
    let (code, df) = s.api("GET", "/system/df", None);
    assert_eq!(code, 200, "{df}");
    let df: Value = serde_json::from_str(&df).unwrap();
    assert!(
        df["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["Name"] != "v1"),
        "{df}"
    );
    // A name is one volume's: another driver's create of it is refused.
    s.docker(&["volume", "create", "loc"]).ok();
    refused(
        &s,
        &["volume", "create", "-d", "tvol", "loc"],
        "create loc: driver 'local' already has volume 'loc': volume name must be unique",
    );
    refused(
        &s,
        &[
            "run",
            "--rm",
            "--volume-driver",
            "tvol",
            "-v",
            "loc:/v",
            "busybox",
            "true",
        ],
        "driver 'local' already has volume 'loc'",
    );
    refused(
        &s,
        &["volume", "create", "v1"],
        "create v1: driver 'tvol:latest' already has volume 'v1': volume name must be unique",
    );
    s.docker(&["volume", "rm", "loc"]).ok();
    // A --mount with the plugin as its driver makes the volume there.
    s.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=v2,dst=/v,volume-driver=tvol",
        "busybox",
        "touch",
        "/v/g",
    ])
    .ok();
    assert!(kept.parent().unwrap().with_file_name("v2/g").exists());
    // Anonymous volumes go to the plugin too, as dockerd's: a bind with no
    // source under --volume-driver, a --mount with no source, an image's
    // VOLUME; and `rm -v` has the plugin remove them.
    s.docker(&["run", "--name", "withvol", "busybox", "true"])
        .ok();
    s.docker(&["commit", "--change", "VOLUME /iv", "withvol", "volimage"])
        .ok();
    s.docker(&["rm", "withvol"]).ok();
    s.docker(&[
        "create",
        "--name",
        "anon",
        "--volume-driver",
        "tvol",
        "-v",
        "/a",
        "--mount",
        "type=volume,dst=/m,volume-driver=tvol",
        "volimage",
        "sh",
        "-c",
        "touch /a/x /m/y /iv/z",
    ])
    .ok();
    let mounts: Value = serde_json::from_str(
        s.docker(&["inspect", "-f", "{{json .Mounts}}", "anon"])
            .ok(),
    )
    .unwrap();
    let mounts = mounts.as_array().unwrap();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let mut names = Vec::new();
    for m in mounts {
        assert_eq!(m["Driver"], "tvol:latest", "{m}");
        let name = m["Name"].as_str().unwrap().to_string();
        assert_eq!(name.len(), 64, "{m}");
        names.push(name);
    }
    s.docker(&["start", "-a", "anon"]).ok();
    let plugin_data = kept.parent().unwrap().parent().unwrap().to_path_buf();
    let files: Vec<bool> = names
        .iter()
        .map(|n| std::fs::read_dir(plugin_data.join(n)).unwrap().count() == 1)
        .collect();
    assert_eq!(files, [true, true, true], "each volume holds its file");
    s.docker(&["rm", "-v", "anon"]).ok();
    for n in &names {
        assert!(
            !plugin_data.join(n).exists(),
            "{n} was left with the plugin"
        );
    }
    s.docker(&["rmi", "volimage"]).ok();
    let calls = call(&sock, "Test.Env", &json!({})).unwrap()["calls"].clone();
    let calls: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for op in [
        "VolumeDriver.Create",
        "VolumeDriver.Mount",
        "VolumeDriver.Unmount",
        "VolumeDriver.Remove",
    ] {
        assert!(calls.iter().any(|c| c.starts_with(op)), "{op} in {calls:?}");
    }
    // Nothing of the volumes stays bound once their containers are gone.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(&s.data_root.join("volumes").display().to_string()),
        "{info}"
    );

    // A volume the plugin has that the engine made no record of (another
    // engine's, on storage they share) is listed and used as dockerd's.
    std::fs::create_dir_all(kept.parent().unwrap().with_file_name("elsewhere")).unwrap();
    let listed = s.docker(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(
        listed.ok().lines().any(|l| l == "tvol:latest elsewhere"),
        "{listed:?}"
    );
    s.docker(&[
        "run",
        "--rm",
        "-v",
        "elsewhere:/v",
        "busybox",
        "touch",
        "/v/x",
    ])
    .ok();
    assert!(
        kept.parent()
            .unwrap()
            .with_file_name("elsewhere/x")
            .exists()
    );
    s.docker(&["volume", "rm", "elsewhere"]).ok();
    refused(
        &s,
        &["plugin", "disable", "tvol"],
        "plugin tvol:latest is in use",
    );
    s.docker(&["volume", "rm", "v1", "v2"]).ok();
    assert!(!kept.parent().unwrap().exists(), "VolumeDriver.Remove");
    assert_eq!(s.docker(&["plugin", "disable", "tvol"]).ok(), "tvol");
    assert!(
        call(&sock, "Test.Env", &json!({})).is_none(),
        "still listening"
    );
    refused(
        &s,
        &["plugin", "disable", "tvol"],
        "plugin is already disabled: plugin tvol:latest found but disabled",
    );
    refused(
        &s,
        &["volume", "create", "-d", "tvol", "v3"],
        "error looking up volume plugin tvol: plugin \"tvol:latest\" found but disabled",
    );
    assert_eq!(s.docker(&["plugin", "rm", "tvol"]).ok(), "tvol");
    refused(
        &s,
        &["plugin", "inspect", "tvol"],
        "plugin \"tvol\" not found",
    );
    assert!(!s.data_root.join("plugins").join(&id).exists());

    let events = plugin_events(&s, "{{.Action}} {{.Actor.Attributes.name}}");
    assert_eq!(
        events.ok(),
        "create tvol:latest\nenable tvol\ndisable tvol\nremove tvol",
    );
}

#[test]
fn a_plugin_that_ends_before_it_listens_is_left_disabled() {
    let Some(s) = stack() else { return };
    let dir = volume_plugin_dir(
        s.dir.path(),
        "quits",
        Some(&["/usr/bin/sh", "-c", "echo cannot serve; exit 3"]),
    );
    s.docker(&["plugin", "create", "quits", dir.to_str().unwrap()])
        .ok();
    let started = std::time::Instant::now();
    // The config's args come after the entrypoint: sh's $0.
    refused(
        &s,
        &["plugin", "enable", "quits"],
        "plugin quits:latest exited with status 3 before it listened on",
    );
    let out = s.docker(&["plugin", "enable", "quits"]);
    assert!(out.stderr.contains("cannot serve"), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(inspect(&s, "quits")["Enabled"], false);
    // Nothing of it is left in lifecycled.
    let tasks = s.lc().state.join("tasks/plugins.berth");
    let left: Vec<_> = std::fs::read_dir(&tasks)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    s.docker(&["plugin", "rm", "quits"]).ok();
}

#[test]
fn an_enabled_plugin_outlives_an_engine_restart_and_comes_back_when_it_dies() {
    let Some(mut s) = stack() else { return };
    let dir = volume_plugin_dir(s.dir.path(), "tvol", None);
    s.docker(&["plugin", "create", "tvol", dir.to_str().unwrap()])
        .ok();
    s.docker(&["plugin", "enable", "tvol"]).ok();
    let id = inspect(&s, "tvol")["Id"].as_str().unwrap().to_string();
    let sock = socket(&s.exec_root, &id);
    let pid = call(&sock, "Test.Env", &json!({})).unwrap()["pid"].clone();

    // Live restore: the same process serves on.
    s.stop_berthd();
    s.spawn_berthd();
    assert_eq!(inspect(&s, "tvol")["Enabled"], true);
    assert_eq!(call(&sock, "Test.Env", &json!({})).unwrap()["pid"], pid);

    // A plugin that died while the engine was down runs again at its start.
    s.stop_berthd();
    let host_pid = s.plugin_pid(&id).expect("the plugin's pid on the host");
    // SAFETY: kill(2) on the plugin process this test's stack started.
    unsafe { libc::kill(host_pid, libc::SIGKILL) };
    assert!(integration_tests::eventually(10, || call(
        &sock,
        "Test.Env",
        &json!({})
    )
    .is_none()));
    s.spawn_berthd();
    assert!(
        integration_tests::eventually(15, || call(&sock, "Test.Env", &json!({}))
            .is_some_and(|e| e["pid"] != Value::Null)),
        "the plugin did not run again: {}",
        s.log()
    );
    assert_eq!(inspect(&s, "tvol")["Enabled"], true);

    // One that ends while the engine runs is started again.
    let before = s.plugin_pid(&id).expect("the plugin's pid");
    // SAFETY: kill(2) on the plugin process this test's stack started.
    unsafe { libc::kill(before, libc::SIGKILL) };
    assert!(
        integration_tests::eventually(15, || s.plugin_pid(&id).is_some_and(|p| p != before)
            && call(&sock, "Test.Env", &json!({})).is_some()),
        "the plugin was not started again: {}",
        s.log()
    );
    assert!(
        s.log()
            .contains("plugin tvol:latest ended; starting it again")
    );

    s.docker(&["plugin", "rm", "-f", "tvol"]).ok();
    assert!(call(&sock, "Test.Env", &json!({})).is_none());
}

#[test]
fn berth_cli_manages_a_plugin_and_its_volumes() {
    let s = Stack::start();
    s.load_busybox();
    let dir = volume_plugin_dir(s.dir.path(), "bvol", None);
    let missing = s.berth(&["plugin", "create", "bvol", s.dir.path().to_str().unwrap()]);
    assert_ne!(missing.code, 0);
    assert!(
        missing
            .stderr
            .contains("config.json: no such file or directory"),
        "{missing:?}"
    );
    assert_eq!(
        s.berth(&["plugin", "create", "team/bvol:1", dir.to_str().unwrap()])
            .ok(),
        "team/bvol:1"
    );
    let ls = s.berth(&["plugin", "ls"]);
    let lines: Vec<&str> = ls.ok().lines().collect();
    assert!(lines[0].starts_with("ID"), "{lines:?}");
    assert!(
        lines[1].contains("team/bvol:1") && lines[1].ends_with("false"),
        "{lines:?}"
    );
    s.berth(&["plugin", "set", "team/bvol:1", "DEBUG=berth"])
        .ok();
    assert_eq!(
        s.berth(&[
            "plugin",
            "inspect",
            "-f",
            "{{.Settings.Env}}",
            "team/bvol:1"
        ])
        .ok(),
        "[DEBUG=berth ROOT=/data]"
    );
    s.berth(&["plugin", "enable", "team/bvol:1"]).ok();
    let enabled = s.berth(&["plugin", "ls", "--filter", "enabled=true", "-q"]);
    assert_eq!(enabled.ok().len(), 12);
    s.berth(&["volume", "create", "-d", "team/bvol:1", "bv"])
        .ok();
    assert_eq!(
        s.berth(&[
            "volume",
            "inspect",
            "-f",
            "{{.Driver}} {{.Status.debug}}",
            "bv"
        ])
        .ok(),
        "team/bvol:1 berth"
    );
    assert_eq!(
        s.berth(&[
            "run",
            "--rm",
            "-v",
            "bv:/v",
            "busybox",
            "sh",
            "-c",
            "echo b > /v/f; cat /v/f"
        ])
        .ok(),
        "b"
    );
    let busy = s.berth(&["plugin", "rm", "-f", "team/bvol:1"]);
    // Forced, as dockerd's: the plugin goes even with a volume of it left.
    assert_eq!(busy.ok(), "team/bvol:1");
    let gone = s.berth(&["volume", "rm", "bv"]);
    assert_ne!(gone.code, 0);
    assert!(
        gone.stderr.contains(
            "error looking up volume plugin team/bvol:1: plugin \"team/bvol:1\" not found"
        ),
        "{gone:?}"
    );
    // Forced, the record goes with its plugin gone.
    assert_eq!(s.berth(&["volume", "rm", "-f", "bv"]).ok(), "bv");
    assert_eq!(s.berth(&["volume", "ls", "-q"]).ok(), "");
}

/// The test plugin's directory with another description: a second version.
fn second_version(s: &Stack) -> std::path::PathBuf {
    let dir = volume_plugin_dir(s.dir.path(), "tvol-v2", None);
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["description"] = json!("the second version");
    std::fs::write(&path, c.to_string()).unwrap();
    dir
}

#[test]
fn a_plugin_is_pushed_installed_and_upgraded_through_a_registry() {
    let Some(s) = stack() else { return };
    let reg = Registry::start();
    let remote = format!("{}/team/tvol:1.0", reg.host);
    let dir = volume_plugin_dir(s.dir.path(), "tvol", None);
    s.docker(&["plugin", "create", &remote, dir.to_str().unwrap()])
        .ok();
    let made = inspect(&s, &remote);

    // Pushed as dockerd pushes it: the plugin config, one gzipped layer.
    let pushed = s.docker(&["plugin", "push", &remote]);
    let out = pushed.ok().to_string();
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/team/tvol]",
            reg.host
        )),
        "{out}"
    );
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("the pushed digest")
        .to_string();
    s.docker(&["plugin", "rm", &remote]).ok();

    // What an install asks to grant, from the config alone.
    let (code, body) = s.api("GET", &format!("/plugins/privileges?remote={remote}"), None);
    assert_eq!(code, 200, "{body}");
    let privileges: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        privileges,
        json!([
            {"Name": "network", "Description": "permissions to access a network", "Value": ["none"]},
            {"Name": "mount", "Description": "host path to mount", "Value": ["/usr"]},
        ])
    );
    // An install whose privileges are not the plugin's is refused and
    // leaves nothing.
    let (code, body) = s.api(
        "POST",
        &format!("/plugins/pull?remote={remote}&name=wrong"),
        Some("[]"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("incorrect privileges"), "{body}");
    assert_eq!(s.docker(&["plugin", "ls", "-q"]).ok(), "");
    // The CLI shows them and asks; no answer is no.
    let asked = s.docker(&["plugin", "install", &remote]);
    assert!(asked.stdout.contains("- mount: [/usr]"), "{asked:?}");
    assert_eq!(s.docker(&["plugin", "ls", "-q"]).ok(), "");

    // Installed under an alias, set and enabled by the CLI: the rootfs and
    // config that were pushed, running.
    let installed = s.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "--alias",
        "tv",
        &remote,
        "DEBUG=1",
    ]);
    assert!(installed.ok().contains("Installed plugin"), "{installed:?}");
    let p = inspect(&s, "tv");
    assert_eq!(p["Name"], "tv:latest");
    assert_eq!(p["PluginReference"], remote);
    assert_eq!(p["Enabled"], true);
    assert_eq!(p["Config"]["rootfs"], made["Config"]["rootfs"]);
    assert_eq!(p["Config"]["Description"], made["Config"]["Description"]);
    assert_eq!(p["Settings"]["Env"], json!(["DEBUG=1", "ROOT=/data"]));
    let id = p["Id"].as_str().unwrap().to_string();
    let env = call(&socket(&s.exec_root, &id), "Test.Env", &json!({})).expect("it answers");
    assert_eq!(env["env"]["DEBUG"], "1", "{env}");
    let events = plugin_events(&s, "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}");
    assert!(
        events
            .ok()
            .contains(&format!("pull {}/team/tvol:1.0 tv:latest", reg.host)),
        "{events:?}"
    );

    // An upgrade wants it disabled; then it takes the new version and
    // keeps its id, name and settings.
    let v2 = format!("{}/team/tvol:2.0", reg.host);
    s.docker(&[
        "plugin",
        "create",
        &v2,
        second_version(&s).to_str().unwrap(),
    ])
    .ok();
    s.docker(&["plugin", "push", &v2]).ok();
    s.docker(&["plugin", "rm", &v2]).ok();
    // (The CLI asks whether to upgrade to another repository's or tag's
    // plugin: yes.)
    let upgrade = [
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "tv",
        v2.as_str(),
    ];
    let enabled = s.docker_stdin(&upgrade, b"y\n");
    assert_ne!(enabled.code, 0, "{enabled:?}");
    assert!(
        enabled
            .stderr
            .contains("plugin must be disabled before upgrading"),
        "{enabled:?}"
    );
    s.docker(&["plugin", "disable", "tv"]).ok();
    let up = s.docker_stdin(&upgrade, b"y\n");
    assert!(up.ok().contains("Upgraded plugin tv:latest"), "{up:?}");
    let p = inspect(&s, "tv");
    assert_eq!(p["Id"], id.as_str());
    assert_eq!(p["PluginReference"], v2);
    assert_eq!(p["Config"]["Description"], "the second version");
    assert_eq!(p["Settings"]["Env"], json!(["DEBUG=1", "ROOT=/data"]));
    s.docker(&["plugin", "enable", "tv"]).ok();
    call(&socket(&s.exec_root, &id), "Test.Env", &json!({})).expect("it answers");
    s.docker(&["plugin", "disable", "tv"]).ok();

    // An installed plugin pushes what it was installed from, byte for
    // byte: under another name, the first version's manifest digest.
    let copy = format!("{}/copy/tvol:1.0", reg.host);
    s.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "--disable",
        "--alias",
        &copy,
        &remote,
    ])
    .ok();
    let again = s.docker(&["plugin", "push", &copy]);
    assert!(again.ok().contains(&digest), "{again:?} wanted {digest}");

    // Nothing of them is left in lifecycled once they are removed.
    s.docker(&["plugin", "rm", "tv"]).ok();
    s.docker(&["plugin", "rm", &copy]).ok();
    let left = integration_tests::cri::ctr(s.lc(), &["-n", "plugins.berth", "images", "ls", "-q"]);
    assert_eq!(left, "", "records left in lifecycled");
}

#[test]
fn berth_cli_pushes_installs_and_upgrades_a_plugin() {
    let Some(s) = stack() else { return };
    let reg = Registry::start();
    let v1 = format!("{}/team/tvol:1.0", reg.host);
    let v2 = format!("{}/team/tvol:2.0", reg.host);
    let dir = volume_plugin_dir(s.dir.path(), "tvol", None);
    for (remote, dir) in [(&v1, dir), (&v2, second_version(&s))] {
        s.berth(&["plugin", "create", remote, dir.to_str().unwrap()])
            .ok();
        let pushed = s.berth(&["plugin", "push", remote]);
        assert!(pushed.ok().contains("digest: sha256:"), "{pushed:?}");
        s.berth(&["plugin", "rm", remote]).ok();
    }

    // Asked, and refused: nothing is installed.
    let no = s.berth_stdin(&["plugin", "install", &v1], b"n\n");
    assert_ne!(no.code, 0, "{no:?}");
    assert!(no.stdout.contains(" - mount: [/usr]"), "{no:?}");
    assert!(
        no.stderr
            .contains("permission denied while installing plugin"),
        "{no:?}"
    );
    assert_eq!(s.berth(&["plugin", "ls", "-q"]).ok(), "");

    let yes = s.berth_stdin(
        &["plugin", "install", "--alias", "tv", &v1, "DEBUG=1"],
        b"y\n",
    );
    assert!(
        yes.ok().contains(&format!("Installed plugin {v1}")),
        "{yes:?}"
    );
    let p = inspect(&s, "tv");
    assert_eq!(p["Enabled"], true);
    assert_eq!(p["Settings"]["Env"], json!(["DEBUG=1", "ROOT=/data"]));

    let refused_up = s.berth(&["plugin", "upgrade", "--grant-all-permissions", "tv", &v2]);
    assert!(
        refused_up
            .stderr
            .contains("must be disabled before upgrading"),
        "{refused_up:?}"
    );
    s.berth(&["plugin", "disable", "tv"]).ok();
    let up = s.berth(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "--skip-remote-check",
        "tv",
        &v2,
    ]);
    assert!(
        up.ok()
            .contains(&format!("Upgraded plugin tv:latest to {v2}")),
        "{up:?}"
    );
    assert_eq!(
        inspect(&s, "tv")["Config"]["Description"],
        "the second version"
    );
    s.berth(&["plugin", "rm", "tv"]).ok();
}

/// Legacy plugins (local-persist and the like): run on the host, found by
/// their socket or spec in the plugin directories, used as volume drivers
/// under the name they are found by, as dockerd uses them.
#[test]
fn legacy_plugins_found_by_socket_or_spec_serve_volumes() {
    let Some(s) = stack() else { return };
    let dir = s.legacy_plugin_dir();
    let work = s.dir.path().join("legacy");
    std::fs::create_dir_all(&work).unwrap();
    let root = work.join("volumes");
    let sock = dir.join("lp.sock");
    let mut lp = HostPlugin::start(&work, Some(&sock), &root, &[]);
    // A volume the plugin had before berth asked it.
    std::fs::create_dir_all(root.join("pre")).unwrap();

    assert_eq!(s.docker(&["volume", "create", "-d", "lp", "v1"]).ok(), "v1");
    let run = s.docker(&[
        "run",
        "--rm",
        "-v",
        "v1:/v",
        "busybox",
        "sh",
        "-c",
        "echo hi > /v/f; cat /v/f",
    ]);
    assert_eq!(run.ok(), "hi");
    // The plugin's path is the host's: no plugin rootfs to scope it to.
    assert_eq!(std::fs::read_to_string(root.join("v1/f")).unwrap(), "hi\n");
    let v: Value = serde_json::from_str(s.docker(&["volume", "inspect", "v1"]).ok()).unwrap();
    assert_eq!(v[0]["Driver"], "lp");
    assert_eq!(v[0]["Mountpoint"], root.join("v1").to_str().unwrap());
    assert_eq!(v[0]["Status"]["debug"], "legacy");
    // The plugin tells no creation time: Go's zero, as dockerd shows it.
    assert_eq!(v[0]["CreatedAt"], "0001-01-01T00:00:00Z");
    let calls = call(&sock, "Test.Env", &json!({})).expect("the plugin answers");
    let calls: Vec<&str> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(calls[0], "Plugin.Activate", "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| **c == "Plugin.Activate").count(),
        1,
        "activated once, then kept: {calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("VolumeDriver.Mount ")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("VolumeDriver.Unmount ")),
        "{calls:?}"
    );

    // Listed with the plugin's own, and named by info as dockerd names
    // the legacy drivers it knows.
    let ls = s.docker(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    let ls: Vec<&str> = ls.ok().lines().collect();
    assert!(ls.contains(&"lp pre") && ls.contains(&"lp v1"), "{ls:?}");
    assert_eq!(
        s.docker(&["info", "--format", "{{json .Plugins.Volume}}"])
            .ok(),
        r#"["local","lp"]"#
    );
    // --volume-driver for a named volume, through berth's CLI too.
    s.docker(&[
        "run",
        "--rm",
        "--volume-driver",
        "lp",
        "-v",
        "v2:/d",
        "busybox",
        "true",
    ])
    .ok();
    assert!(root.join("v2").is_dir());
    assert_eq!(s.berth(&["volume", "create", "-d", "lp", "v3"]).ok(), "v3");
    assert!(root.join("v3").is_dir());

    // A spec naming a TCP address, and a JSON spec naming the socket.
    let tcp_root = work.join("tcp-volumes");
    let tcp = HostPlugin::start(&work, None, &tcp_root, &[("SCOPE", "global")]);
    std::fs::write(
        dir.join("tv.spec"),
        format!("tcp://127.0.0.1:{}\n", tcp.port.unwrap()),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("jv")).unwrap();
    std::fs::write(
        dir.join("jv/jv.json"),
        json!({"Name": "jv", "Addr": format!("unix://{}", sock.display())}).to_string(),
    )
    .unwrap();
    assert_eq!(s.docker(&["volume", "create", "-d", "tv", "t1"]).ok(), "t1");
    assert!(tcp_root.join("t1").is_dir());
    // The scope each driver's capabilities tell.
    let scope = |v: &str| {
        s.docker(&["volume", "inspect", "-f", "{{.Scope}}", v])
            .ok()
            .to_string()
    };
    assert_eq!(scope("t1"), "global");
    assert_eq!(scope("v3"), "local");
    let run = s.docker(&[
        "run",
        "--rm",
        "-v",
        "t1:/t",
        "busybox",
        "sh",
        "-c",
        "echo t > /t/f",
    ]);
    run.ok();
    assert_eq!(
        std::fs::read_to_string(tcp_root.join("t1/f")).unwrap(),
        "t\n"
    );
    assert_eq!(s.docker(&["volume", "create", "-d", "jv", "j1"]).ok(), "j1");
    assert!(root.join("j1").is_dir());
    std::fs::write(dir.join("bad.spec"), "no-scheme.sock").unwrap();
    refused(
        &s,
        &["volume", "create", "-d", "bad", "b1"],
        "error looking up volume plugin bad: ",
    );
    refused(
        &s,
        &["volume", "create", "-d", "nope", "n1"],
        "error looking up volume plugin nope: plugin \"nope\" not found",
    );
    assert!(
        !s.docker(&["volume", "ls", "-q"])
            .ok()
            .lines()
            .any(|l| l == "b1" || l == "n1")
    );

    // A plugin that went away fails its calls at once (no wait for its
    // activation: it is kept, as dockerd keeps it), and serves again once
    // it is back at its address.
    let pid = lp.pid();
    drop(lp);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    refused(&s, &["volume", "rm", "v1"], "VolumeDriver.Remove");
    assert!(
        s.docker(&["volume", "ls", "-q"])
            .ok()
            .lines()
            .any(|l| l == "v1")
    );
    lp = HostPlugin::start(&work, Some(&sock), &root, &[]);
    assert_eq!(s.docker(&["volume", "rm", "v1"]).ok(), "v1");
    assert!(!root.join("v1").exists());
    let calls = call(&sock, "Test.Env", &json!({})).expect("the plugin answers");
    assert_eq!(calls["calls"][0], "VolumeDriver.Remove", "{calls}");
    drop(lp);
    drop(tcp);
}

/// Docker's authorization plugins (`authorization-plugins`): one asked
/// about every call (the request with its JSON body) and about its answer,
/// named by info, taken in by a reload; a call it refuses, or an answer,
/// never reaches the caller; one that cannot be asked refuses everything;
/// a start that names one the engine cannot find is refused.
#[test]
fn an_authorization_plugin_judges_every_call_and_its_answer() {
    let Some(mut s) = stack() else { return };
    let dir = s.legacy_plugin_dir();
    let work = s.dir.path().join("authz");
    std::fs::create_dir_all(&work).unwrap();
    let sock = dir.join("az.sock");
    let az = HostPlugin::start_authz(&work, &sock);
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.daemon_json).unwrap()).unwrap();
    let chain = |s: &Stack| {
        s.docker(&["info", "--format", "{{json .Plugins.Authorization}}"])
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(chain(&s), "null");
    cfg["authorization-plugins"] = json!(["az"]);
    std::fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    s.reload_berthd();
    assert!(integration_tests::eventually(10, || chain(&s) == r#"["az"]"#));

    s.docker(&["run", "--rm", "--label", "k=v", "busybox", "true"])
        .ok();
    let denied = s.docker(&["run", "--rm", "--label", "authz=deny", "busybox", "true"]);
    assert_eq!(denied.code, 125, "{denied:?}");
    assert!(
        denied.stderr.contains(
            "Error response from daemon: authorization denied by plugin az: containers labelled deny are not allowed"
        ),
        "{denied:?}"
    );
    // An answer the plugin refuses: the container is made (its create's
    // answer shows no label), but inspect never shows it.
    let id = s
        .docker(&["create", "--label", "authz=secret", "busybox", "true"])
        .ok()
        .to_string();
    refused(
        &s,
        &["inspect", &id],
        "authorization denied by plugin az: secret containers are not shown",
    );
    // A stream is judged on its status before it starts, and flows; an
    // exec's start (a JSON body, then the connection taken over) too.
    let logged = s.docker(&["run", "--name", "lg", "busybox", "echo", "streamed"]);
    assert_eq!(logged.ok(), "streamed");
    assert_eq!(s.docker(&["logs", "lg"]).ok(), "streamed");
    s.docker(&["run", "-d", "--name", "ex", "busybox", "sleep", "60"])
        .ok();
    assert_eq!(
        s.docker_stdin(&["exec", "-i", "ex", "cat"], b"through\n")
            .ok(),
        "through"
    );
    s.docker(&["rm", "-f", &id, "lg", "ex"]).ok();

    let calls = call(&sock, "Test.Calls", &json!({})).expect("the plugin answers");
    let calls = calls["calls"].as_array().unwrap().clone();
    let create = calls
        .iter()
        .find(|c| {
            c["op"] == "req"
                && c["method"] == "POST"
                && c["uri"].as_str().unwrap().contains("/containers/create")
        })
        .expect("the create was asked about");
    // The URI as sent, version and all.
    assert!(
        create["uri"].as_str().unwrap().starts_with("/v1."),
        "{create}"
    );
    assert_eq!(create["body"]["Image"], "busybox", "{create}");
    assert_eq!(create["body"]["Labels"]["k"], "v", "{create}");
    assert_eq!(
        create["headers"]["Content-Type"], "application/json",
        "{create}"
    );
    assert!(
        create["headers"]["User-Agent"]
            .as_str()
            .unwrap()
            .starts_with("Docker-Client/")
    );
    assert_eq!(create["user"], "", "no certificate on a unix socket");
    assert!(
        calls
            .iter()
            .any(|c| c["op"] == "req" && c["uri"] == "/_ping"),
        "every call, the CLI's ping too"
    );
    assert!(
        calls.iter().any(|c| c["op"] == "res"
            && c["uri"].as_str().unwrap().contains("/containers/create")
            && c["status"] == 201
            && c["has_body"] == true),
        "the answers too"
    );
    assert!(
        calls.iter().any(|c| c["op"] == "res"
            && c["uri"].as_str().unwrap().contains("/logs?")
            && c["status"] == 200),
        "a stream's status"
    );

    // A reload naming a plugin that is nowhere keeps the chain in use.
    cfg["authorization-plugins"] = json!(["az", "nowhere"]);
    std::fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    s.reload_berthd();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(chain(&s), r#"["az"]"#);
    assert!(
        s.log().contains("authorization plugin nowhere"),
        "{}",
        s.log()
    );

    // A plugin that cannot be asked refuses every call, never waves it on.
    drop(az);
    refused(&s, &["ps"], "plugin az failed with error: ");

    // A start naming a plugin the engine cannot find is refused.
    s.stop_berthd();
    let out = s.run_berthd_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("authorization plugin nowhere: plugin \"nowhere\" not found"),
        "{stderr}"
    );
}

/// A managed authorization plugin (`docker.authz/1.0`), enabled, judges
/// calls once daemon.json names it; `plugin disable` takes it out of the
/// chain (as dockerd's), and a reload naming it while it is disabled is
/// refused (it would refuse every call, the one enabling it too).
#[test]
fn a_managed_authorization_plugin_judges_calls_until_it_is_disabled() {
    let Some(s) = stack() else { return };
    let dir = authz_plugin_dir(s.dir.path());
    s.docker(&["plugin", "create", "maz", dir.to_str().unwrap()])
        .ok();
    s.docker(&["plugin", "enable", "maz"]).ok();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.daemon_json).unwrap()).unwrap();
    cfg["authorization-plugins"] = json!(["maz"]);
    std::fs::write(&s.daemon_json, cfg.to_string()).unwrap();
    let chain = || {
        s.docker(&["info", "--format", "{{json .Plugins.Authorization}}"])
            .stdout
            .trim()
            .to_string()
    };
    s.reload_berthd();
    assert!(integration_tests::eventually(10, || chain() == r#"["maz"]"#));
    refused(
        &s,
        &["create", "--label", "authz=deny", "busybox"],
        "authorization denied by plugin maz: containers labelled deny are not allowed",
    );
    s.docker(&["create", "--name", "ok1", "busybox"]).ok();

    // Disabled: out of the chain, calls go through unjudged.
    s.docker(&["plugin", "disable", "maz"]).ok();
    assert_eq!(chain(), "null");
    s.docker(&["create", "--label", "authz=deny", "--name", "d1", "busybox"])
        .ok();
    s.reload_berthd();
    assert!(integration_tests::eventually(10, || {
        s.log()
            .contains("authorization plugin maz: plugin \"maz:latest\" found but disabled")
    }));
    assert_eq!(chain(), "null");
    s.docker(&["rm", "-f", "ok1", "d1"]).ok();
    // Enabled again, the same reload takes it in.
    s.docker(&["plugin", "enable", "maz"]).ok();
    s.reload_berthd();
    assert!(integration_tests::eventually(10, || chain() == r#"["maz"]"#));
    s.docker(&["plugin", "disable", "maz"]).ok();
    s.docker(&["plugin", "rm", "maz"]).ok();
}
