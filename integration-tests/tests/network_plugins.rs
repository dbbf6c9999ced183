//! Network plugins (libnetwork's remote driver) through the real docker
//! CLI, as dockerd 20.10 drives them: `network create -d PLUGIN` asks the
//! plugin with the pools berth's IPAM gave; each container on the network
//! is an endpoint the plugin makes and joins, whose interface berth moves
//! into the container with its address, MAC and routes; its names resolve
//! on berth's DNS; leaving hands the interface back for the plugin to
//! delete. The plugin is `tests/plugin/tnet.py` (veth pairs on a bridge of
//! its own), run on the host as a legacy plugin.

use integration_tests::plugin::{HostPlugin, call, ipam_plugin_dir, network_plugin_dir};
use integration_tests::stack::{Stack, docker_cli};
use serde_json::Value;

/// What the plugin was asked since the start, `(method, request)`.
fn calls(sock: &std::path::Path) -> Vec<(String, Value)> {
    let v = call(sock, "Test.Calls", &serde_json::json!({})).expect("the plugin answers");
    v["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| (c["op"].as_str().unwrap_or("").to_string(), c["req"].clone()))
        .collect()
}

fn ops_for<'a>(calls: &'a [(String, Value)], endpoint: &str) -> Vec<&'a str> {
    calls
        .iter()
        .filter(|(_, r)| r["EndpointID"] == endpoint)
        .map(|(op, _)| op.trim_start_matches("NetworkDriver."))
        .collect()
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Takes down, even when the test fails, what the plugin made on the host
/// for this test's networks: their containers and networks through berth
/// while the plugin still answers (its DeleteEndpoint and DeleteNetwork
/// remove its links), then any bridge and rule left.
struct Cleanup {
    /// The docker CLI's environment for the stack.
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    networks: Vec<String>,
}

impl Cleanup {
    fn new(s: &Stack) -> Cleanup {
        let env = s
            .docker_cmd()
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        Cleanup {
            env,
            networks: Vec::new(),
        }
    }

    fn docker(&self, args: &[&str]) -> String {
        let Some(cli) = docker_cli() else {
            return String::new();
        };
        std::process::Command::new(cli)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in ids.split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
        for id in &self.networks {
            self.docker(&["network", "rm", id]);
            let br = format!("tn-{}", &id[..12]);
            if link_exists(&br) {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", &br])
                    .status();
            }
            let _ = std::process::Command::new("iptables")
                .args(["-w", "-D", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// `docker args` fails, and says `words`.
fn refused(s: &Stack, args: &[&str], words: &str) {
    let out = s.docker(args);
    assert_ne!(out.code, 0, "{args:?} succeeded: {out:?}");
    assert!(
        out.stderr.contains(words),
        "{args:?}: wanted {words:?} in {out:?}"
    );
}

/// A stack with busybox; None without a docker CLI.
fn stack() -> Option<Stack> {
    if docker_cli().is_none() {
        eprintln!("skipped: no docker CLI on this machine");
        return None;
    }
    let s = Stack::start();
    s.load_busybox();
    Some(s)
}

/// A stack and the test plugin on it as the legacy plugin `tnet`, and
/// its socket; None without a docker CLI.
fn with_plugin() -> Option<(Stack, std::path::PathBuf, HostPlugin)> {
    let s = stack()?;
    let work = s.dir.path().join("tnet");
    std::fs::create_dir_all(&work).expect("plugin work directory");
    let sock = s.legacy_plugin_dir().join("tnet.sock");
    let plugin = HostPlugin::start_network(&work, &sock, &[]);
    Some((s, sock, plugin))
}

fn inspect(s: &Stack, what: &str) -> Value {
    let out = s.docker(&["inspect", what]);
    let v: Value = serde_json::from_str(out.ok()).expect("inspect JSON");
    v[0].clone()
}

/// A container `name` sleeping on `network`, started through the docker
/// CLI.
fn sleeper(s: &Stack, name: &str, network: &str) {
    s.docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
}

/// Managed plugin `plugin` cannot be disabled while `network` exists;
/// then the network and its container `member` are removed.
fn held_by(s: &Stack, plugin: &str, network: &str, member: &str) {
    refused(
        s,
        &["plugin", "disable", plugin],
        &format!("plugin {plugin}:latest is in use"),
    );
    s.docker(&["rm", "-f", member]).ok();
    s.docker(&["network", "rm", network]).ok();
}

/// `ip -o -4 addr show DEV` in container `name`.
fn ipv4_of(s: &Stack, name: &str, dev: &str) -> String {
    s.docker(&["exec", name, "ip", "-o", "-4", "addr", "show", dev])
        .ok()
        .to_string()
}

#[test]
fn a_network_plugin_makes_the_interfaces_berth_addresses() {
    let Some((mut s, sock, _plugin)) = with_plugin() else {
        return;
    };
    let wsock = s.legacy_plugin_dir().join("tnw.sock");
    let work = s.dir.path().join("tnet");
    let _prefixed = HostPlugin::start_network(&work, &wsock, &[("DSTPREFIX", "ethwe")]);
    let mut clean = Cleanup::new(&s);

    // A missing plugin and one that refuses: nothing made.
    refused(
        &s,
        &["network", "create", "-d", "nope", "n0"],
        r#"plugin "nope" not found"#,
    );
    refused(
        &s,
        &["network", "create", "-d", "tnet", "-o", "fail=no", "n0"],
        "Error response from daemon: remote: tnet refuses this network: no",
    );
    assert!(
        !s.docker(&["network", "ls"]).ok().contains("n0"),
        "a refused network is not kept"
    );

    let subnet = s.net.subnet(1);
    let gateway = subnet.replace(".0/24", ".1");
    let id = s
        .docker(&[
            "network",
            "create",
            "-d",
            "tnet",
            "--subnet",
            &subnet,
            "-o",
            "color=blue",
            "tn",
        ])
        .ok()
        .to_string();
    clean.networks.push(id.clone());
    let n = inspect(&s, "tn");
    assert_eq!(n["Driver"], "tnet");
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["Options"]["color"], "blue");
    let bridge = format!("tn-{}", &id[..12]);
    assert!(link_exists(&bridge), "the plugin made its bridge");
    let c = calls(&sock);
    let (_, create) = c
        .iter()
        .find(|(op, r)| op == "NetworkDriver.CreateNetwork" && r["NetworkID"] == id.as_str())
        .expect("CreateNetwork");
    assert_eq!(create["IPv4Data"][0]["Pool"], subnet.as_str());
    assert_eq!(
        create["IPv4Data"][0]["Gateway"],
        format!("{gateway}/24").as_str()
    );
    assert_eq!(create["IPv4Data"][0]["AddressSpace"], "LocalDefault");
    assert_eq!(
        create["Options"]["com.docker.network.generic"]["color"],
        "blue"
    );
    assert_eq!(create["Options"]["com.docker.network.enable_ipv6"], false);

    // Two containers on it: addresses from berth, interfaces from the
    // plugin, names on berth's DNS.
    sleeper(&s, "ta", "tn");
    // A MAC of its own (the docker CLI sends one only with API 1.44),
    // written as Go's ParseMAC also takes it: the plugin and the interface
    // get it as Go prints it.
    let body = r#"{"Image": "busybox", "Cmd": ["sleep", "300"], "MacAddress": "02-42-AA-bb-cc-dd",
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"NetworkMode": "tn", "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}},
        "NetworkingConfig": {"EndpointsConfig": {"tn": {"Aliases": ["web"]}}}}"#;
    let (code, out) = s.api("POST", "/containers/create?name=tb", Some(body));
    assert_eq!(code, 201, "{out}");
    s.docker(&["start", "tb"]).ok();
    let a_ip = subnet.replace(".0/24", ".2");
    let b_ip = subnet.replace(".0/24", ".3");
    let addr = ipv4_of(&s, "ta", "eth0");
    assert!(addr.contains(&format!("inet {a_ip}/24 brd ")), "{addr:?}");
    let routes = s.docker(&["exec", "ta", "ip", "route"]);
    assert!(
        routes
            .ok()
            .contains(&format!("default via {gateway} dev eth0")),
        "{routes:?}"
    );
    let ping = s.docker(&["exec", "ta", "ping", "-c", "1", "-W", "5", "web"]);
    assert!(
        ping.ok().contains(&format!("bytes from {b_ip}")),
        "{ping:?}"
    );
    let mac = s.docker(&["exec", "tb", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac.ok(), "02:42:aa:bb:cc:dd");
    let b = inspect(&s, "tb");
    let ep = &b["NetworkSettings"]["Networks"]["tn"];
    assert_eq!(ep["IPAddress"], b_ip.as_str());
    assert_eq!(ep["Gateway"], gateway.as_str());
    assert_eq!(ep["MacAddress"], "02:42:aa:bb:cc:dd");
    let b_endpoint = ep["EndpointID"].as_str().expect("endpoint id").to_string();
    let a_endpoint = inspect(&s, "ta")["NetworkSettings"]["Networks"]["tn"]["EndpointID"]
        .as_str()
        .expect("endpoint id")
        .to_string();
    let c = calls(&sock);
    assert_eq!(
        ops_for(&c, &b_endpoint),
        ["CreateEndpoint", "Join", "ProgramExternalConnectivity"]
    );
    let (_, ce) = c
        .iter()
        .find(|(op, r)| {
            op == "NetworkDriver.CreateEndpoint" && r["EndpointID"] == b_endpoint.as_str()
        })
        .expect("CreateEndpoint");
    assert_eq!(ce["Interface"]["Address"], format!("{b_ip}/24").as_str());
    assert_eq!(ce["Interface"]["MacAddress"], "02:42:aa:bb:cc:dd");
    assert_eq!(
        ce["Options"]["com.docker.network.portmap"][0]["HostPort"],
        8080
    );
    assert_eq!(
        ce["Options"]["com.docker.network.endpoint.exposedports"][0]["Port"],
        80
    );
    let (_, join) = c
        .iter()
        .find(|(op, r)| op == "NetworkDriver.Join" && r["EndpointID"] == b_endpoint.as_str())
        .expect("Join");
    assert_eq!(join["SandboxKey"], b["NetworkSettings"]["SandboxKey"]);

    // Connected while running: a second interface, not the way out; gone
    // (and handed back to the plugin, which deleted it) at the disconnect.
    s.docker(&["run", "-d", "--name", "tc", "busybox", "sleep", "300"])
        .ok();
    s.docker(&["network", "connect", "tn", "tc"]).ok();
    let c_endpoint = inspect(&s, "tc")["NetworkSettings"]["Networks"]["tn"]["EndpointID"]
        .as_str()
        .expect("endpoint id")
        .to_string();
    let eth1 = ipv4_of(&s, "tc", "eth1");
    assert!(eth1.contains(&subnet.replace(".0/24", ".")), "{eth1:?}");
    let routes = s.docker(&["exec", "tc", "ip", "route"]);
    assert!(
        !routes.ok().contains(&format!("default via {gateway}")),
        "{routes:?}"
    );
    assert!(link_exists(&format!("tnh{}", &c_endpoint[..8])));
    s.docker(&["network", "disconnect", "tn", "tc"]).ok();
    assert!(
        !s.docker(&["exec", "tc", "ip", "link"])
            .ok()
            .contains("eth1"),
        "the interface left the container"
    );
    assert!(
        !link_exists(&format!("tnh{}", &c_endpoint[..8])),
        "the plugin deleted its link"
    );
    assert_eq!(
        ops_for(&calls(&sock), &c_endpoint),
        ["CreateEndpoint", "Join", "Leave", "DeleteEndpoint"]
    );

    // The engine killed and started again: the containers keep their
    // interfaces, and a stop after it still ends their endpoints.
    s.kill9_berthd();
    s.spawn_berthd();
    let ping = s.docker(&["exec", "ta", "ping", "-c", "1", "-W", "5", &b_ip]);
    assert!(ping.ok().contains("1 packets received"), "{ping:?}");
    s.docker(&["stop", "-t", "0", "ta"]).ok();
    assert_eq!(
        ops_for(&calls(&sock), &a_endpoint),
        [
            "CreateEndpoint",
            "Join",
            "ProgramExternalConnectivity",
            "RevokeExternalConnectivity",
            "Leave",
            "DeleteEndpoint"
        ]
    );
    assert!(!link_exists(&format!("tnh{}", &a_endpoint[..8])));
    // Started again: a new endpoint, the same address.
    s.docker(&["start", "ta"]).ok();
    let addr = ipv4_of(&s, "ta", "eth0");
    assert!(addr.contains(&format!("inet {a_ip}/24")), "{addr:?}");

    // Listed among the engine's network drivers while its network exists,
    // as dockerd lists them.
    let drivers = s.docker(&["info", "--format", "{{json .Plugins.Network}}"]);
    assert!(drivers.ok().contains(r#""tnet""#), "{drivers:?}");

    // Dual stack: both addresses, the IPv6 one on an interface the
    // namespace started without IPv6.
    let subnet6 = s.net.subnet6(3);
    let v6id = s
        .docker(&[
            "network",
            "create",
            "-d",
            "tnet",
            "--ipv6",
            "--subnet",
            &s.net.subnet(3),
            "--subnet",
            &subnet6,
            "t6",
        ])
        .ok()
        .to_string();
    clean.networks.push(v6id.clone());
    let (_, create6) = calls(&sock)
        .into_iter()
        .find(|(op, r)| op == "NetworkDriver.CreateNetwork" && r["NetworkID"] == v6id.as_str())
        .expect("CreateNetwork");
    assert_eq!(create6["IPv6Data"][0]["Pool"], subnet6.as_str());
    assert_eq!(create6["Options"]["com.docker.network.enable_ipv6"], true);
    s.docker(&[
        "run",
        "-d",
        "--name",
        "t6",
        "--network",
        "t6",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let addrs = s.docker(&["exec", "t6", "ip", "-o", "addr", "show", "eth0"]);
    let six = subnet6.trim_end_matches("/64").to_string() + "2/64";
    assert!(addrs.ok().contains(&format!("inet6 {six}")), "{addrs:?}");
    s.docker(&["rm", "-f", "t6"]).ok();
    s.docker(&["network", "rm", "t6"]).ok();

    // A plugin that names the interfaces with its own prefix (its network
    // made through berth's CLI).
    let wid = s
        .berth(&[
            "network",
            "create",
            "-d",
            "tnw",
            "--subnet",
            &s.net.subnet(2),
            "tw",
        ])
        .ok()
        .to_string();
    clean.networks.push(wid.clone());
    s.docker(&["network", "connect", "tw", "tc"]).ok();
    let links = s.docker(&["exec", "tc", "ip", "-o", "link"]);
    assert!(links.ok().contains("ethwe0"), "{links:?}");

    // In use, then gone: its bridge goes with it.
    refused(&s, &["network", "rm", "tn"], "has active endpoints");
    s.docker(&["rm", "-f", "ta", "tb", "tc"]).ok();
    s.docker(&["network", "rm", "tn", "tw"]).ok();
    assert!(!link_exists(&bridge), "DeleteNetwork removed the bridge");
    assert!(
        calls(&sock)
            .iter()
            .any(|(op, r)| op == "NetworkDriver.DeleteNetwork" && r["NetworkID"] == id.as_str())
    );
    let leftovers: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| {
            [&a_endpoint, &b_endpoint, &c_endpoint]
                .iter()
                .any(|e| n.ends_with(&e[..8]))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_managed_network_plugin_serves_until_its_networks_are_gone() {
    let Some(s) = stack() else { return };
    let dir = network_plugin_dir(s.dir.path());
    s.docker(&["plugin", "create", "mnet", dir.to_str().unwrap()])
        .ok();
    // Disabled, it drives nothing.
    refused(
        &s,
        &["network", "create", "-d", "mnet", "mn"],
        "found but disabled",
    );
    s.docker(&["plugin", "enable", "mnet"]).ok();
    let mut clean = Cleanup::new(&s);
    let subnet = s.net.subnet(1);
    let id = s
        .docker(&["network", "create", "-d", "mnet", "--subnet", &subnet, "mn"])
        .ok()
        .to_string();
    clean.networks.push(id.clone());
    assert_eq!(inspect(&s, "mn")["Driver"], "mnet");
    assert!(link_exists(&format!("tn-{}", &id[..12])));
    sleeper(&s, "ma", "mn");
    let addr = ipv4_of(&s, "ma", "eth0");
    let ip = subnet.replace(".0/24", ".2");
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr:?}");
    // Its network holds it, as dockerd counts a network's driver in use.
    held_by(&s, "mnet", "mn", "ma");
    assert!(!link_exists(&format!("tn-{}", &id[..12])));
    s.docker(&["plugin", "disable", "mnet"]).ok();
    s.docker(&["plugin", "rm", "mnet"]).ok();
}

#[test]
fn a_connect_to_a_plugins_network_cut_midway_is_undone() {
    let Some((mut s, sock, _plugin)) = with_plugin() else {
        return;
    };
    let mut clean = Cleanup::new(&s);
    let id = s
        .docker(&[
            "network",
            "create",
            "-d",
            "tnet",
            "--subnet",
            &s.net.subnet(1),
            "tn",
        ])
        .ok()
        .to_string();
    clean.networks.push(id.clone());
    let c = s
        .docker(&["run", "-d", "busybox", "sleep", "300"])
        .ok()
        .to_string();
    for point in ["berthd:net.before-cni-add", "berthd:net.after-cni-add"] {
        s.fault = Some(point.to_string());
        s.kill9_berthd();
        s.spawn_berthd();
        let out = s.docker(&["network", "connect", "tn", &c]);
        assert_ne!(out.code, 0, "{point}: the client was told it worked");
        assert!(
            s.wait_berthd_exit(std::time::Duration::from_secs(20)),
            "berthd did not die at {point}: {out:?}"
        );
        s.fault = None;
        s.spawn_berthd();
        // The engine back: the endpoint it had begun is left and deleted,
        // its link gone, its address free, the container off the network.
        let begun: Vec<String> = calls(&sock)
            .iter()
            .filter(|(op, r)| op == "NetworkDriver.CreateEndpoint" && r["NetworkID"] == id.as_str())
            .filter_map(|(_, r)| r["EndpointID"].as_str().map(String::from))
            .collect();
        let asked = usize::from(point.ends_with("after-cni-add"));
        assert_eq!(begun.len(), asked, "{point}: {begun:?}");
        for e in &begun {
            assert!(
                integration_tests::eventually(20, || ops_for(&calls(&sock), e)
                    .ends_with(&["Leave", "DeleteEndpoint"])),
                "{point}: {:?}",
                ops_for(&calls(&sock), e)
            );
            assert!(!link_exists(&format!("tnh{}", &e[..8])), "{point}");
        }
        assert!(
            !s.docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", &c])
                .ok()
                .contains("\"tn\""),
            "{point}"
        );
        let leases = std::fs::read_dir(s.exec_root.join("ipam").join(&id))
            .into_iter()
            .flatten()
            .count();
        assert_eq!(leases, 0, "{point}: no address of the network is leased");
    }
    // Connecting again works.
    s.docker(&["network", "connect", "tn", &c]).ok();
    let eth1 = ipv4_of(&s, &c, "eth1");
    assert!(eth1.contains("inet "), "{eth1:?}");

    // A join whose setup the kernel refuses (the plugin's route has a next
    // hop on no link): the start fails in dockerd's words, the interface is
    // handed back and deleted, the endpoint left and deleted.
    let bad = s
        .docker(&[
            "network",
            "create",
            "-d",
            "tnet",
            "-o",
            "badroute=1",
            "--subnet",
            &s.net.subnet(2),
            "tbad",
        ])
        .ok()
        .to_string();
    clean.networks.push(bad.clone());
    refused(
        &s,
        &[
            "run",
            "-d",
            "--name",
            "tbr",
            "--network",
            "tbad",
            "busybox",
            "sleep",
            "300",
        ],
        "failed to create endpoint tbr on network tbad: joining the network's interface",
    );
    let begun: Vec<String> = calls(&sock)
        .iter()
        .filter(|(op, r)| op == "NetworkDriver.CreateEndpoint" && r["NetworkID"] == bad.as_str())
        .filter_map(|(_, r)| r["EndpointID"].as_str().map(String::from))
        .collect();
    assert_eq!(begun.len(), 1, "{begun:?}");
    assert_eq!(
        ops_for(&calls(&sock), &begun[0]),
        ["CreateEndpoint", "Join", "Leave", "DeleteEndpoint"]
    );
    for side in ["tnh", "tnc"] {
        assert!(!link_exists(&format!("{side}{}", &begun[0][..8])), "{side}");
    }
    s.docker(&["rm", "-f", "tbr"]).ok();
    s.docker(&["network", "rm", "tbad"]).ok();
}

/// What the IPAM plugin holds: pool id → addresses.
fn held(sock: &std::path::Path) -> Value {
    call(sock, "Test.Held", &serde_json::json!({})).expect("the plugin answers")
}

#[test]
fn an_ipam_plugin_gives_a_bridges_pool_and_addresses() {
    let Some(s) = stack() else { return };
    let work = s.dir.path().join("tipam");
    std::fs::create_dir_all(&work).unwrap();
    let sock = s.legacy_plugin_dir().join("tipam.sock");
    let (one, two) = (s.net.subnet(1), s.net.subnet(2));
    let _plugin = HostPlugin::start_ipam(&work, &sock, &one);
    let at = |subnet: &str, host: u8| subnet.replace(".0/24", &format!(".{host}"));

    // A pool the plugin picks: the subnet is its, the gateway it gave is
    // shown, the options reach it. Through berth's CLI.
    s.berth(&[
        "network",
        "create",
        "--ipam-driver",
        "tipam",
        "--ipam-opt",
        "zone=a",
        "ti",
    ])
    .ok();
    let n = inspect(&s, "ti");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Driver"], "tipam");
    assert_eq!(n["IPAM"]["Options"]["zone"], "a");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], one.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], at(&one, 1).as_str());
    let pool = format!("tipam-{one}");
    // A container's address is the plugin's pick (from the top: berth's
    // own would be the lowest).
    sleeper(&s, "ia", "ti");
    let addr = ipv4_of(&s, "ia", "eth0");
    assert!(
        addr.contains(&format!("inet {}/24", at(&one, 254))),
        "{addr:?}"
    );
    let routes = s.docker(&["exec", "ia", "ip", "route"]);
    assert!(
        routes
            .ok()
            .contains(&format!("default via {} dev eth0", at(&one, 1))),
        "{routes:?}"
    );
    assert_eq!(
        held(&sock)[&pool],
        serde_json::json!([at(&one, 1), at(&one, 254)])
    );
    // An address of its own needs a subnet of the user's, as dockerd has it.
    refused(
        &s,
        &[
            "run",
            "--rm",
            "--network",
            "ti",
            "--ip",
            &at(&one, 9),
            "busybox",
            "true",
        ],
        "user specified IP address is supported only when connecting to networks with user configured subnets",
    );
    // Stopped, the address goes back; started, it is asked again.
    s.docker(&["stop", "-t", "0", "ia"]).ok();
    assert_eq!(held(&sock)[&pool], serde_json::json!([at(&one, 1)]));
    s.docker(&["start", "ia"]).ok();
    assert_eq!(
        held(&sock)[&pool],
        serde_json::json!([at(&one, 1), at(&one, 254)])
    );

    // A subnet, gateway and auxiliary address asked: the plugin holds them,
    // and a container's own address.
    s.docker(&[
        "network",
        "create",
        "--ipam-driver",
        "tipam",
        "--subnet",
        &two,
        "--gateway",
        &at(&two, 254),
        "--aux-address",
        &format!("x={}", at(&two, 7)),
        "tj",
    ])
    .ok();
    let n = inspect(&s, "tj");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], at(&two, 254).as_str());
    s.docker(&[
        "run",
        "-d",
        "--name",
        "ib",
        "--network",
        "tj",
        "--ip",
        &at(&two, 9),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let pool2 = format!("tipam-{two}");
    assert_eq!(
        held(&sock)[&pool2],
        serde_json::json!([at(&two, 254), at(&two, 7), at(&two, 9)])
    );
    // The plugin has no pool left: refused, nothing made.
    refused(
        &s,
        &["network", "create", "--ipam-driver", "tipam", "tk"],
        "tipam has no free pool",
    );
    assert!(!s.docker(&["network", "ls"]).ok().contains("tk"));
    // A missing IPAM plugin.
    refused(
        &s,
        &["network", "create", "--ipam-driver", "nope", "tk"],
        r#"plugin "nope" not found"#,
    );

    // Removed: every address and both pools back with the plugin.
    s.docker(&["rm", "-f", "ia", "ib"]).ok();
    s.docker(&["network", "rm", "ti", "tj"]).ok();
    assert_eq!(held(&sock), serde_json::json!({}));
}

#[test]
fn a_managed_ipam_plugin_is_in_use_while_its_network_exists() {
    let Some(s) = stack() else { return };
    let subnet = s.net.subnet(1);
    let dir = ipam_plugin_dir(s.dir.path(), &subnet);
    s.docker(&["plugin", "create", "mipam", dir.to_str().unwrap()])
        .ok();
    s.docker(&["plugin", "enable", "mipam"]).ok();
    s.docker(&["network", "create", "--ipam-driver", "mipam", "mi"])
        .ok();
    assert_eq!(
        inspect(&s, "mi")["IPAM"]["Config"][0]["Subnet"],
        subnet.as_str()
    );
    sleeper(&s, "mc", "mi");
    let addr = ipv4_of(&s, "mc", "eth0");
    let top = subnet.replace(".0/24", ".254");
    assert!(addr.contains(&format!("inet {top}/24")), "{addr:?}");
    held_by(&s, "mipam", "mi", "mc");
    s.docker(&["plugin", "disable", "mipam"]).ok();
    s.docker(&["plugin", "rm", "mipam"]).ok();
}
