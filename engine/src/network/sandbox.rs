//! An interface a network plugin made, put into a container's network
//! namespace and taken out again, as libnetwork's sandbox does for its
//! remote driver: moved in, renamed, given its MAC, addresses and routes;
//! at the end renamed back and returned to the engine's namespace, where
//! the plugin deletes it.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// What goes on the interface once it is in the namespace.
#[derive(Debug, Default)]
pub struct Setup<'a> {
    /// The name the plugin made it under, in the engine's namespace.
    pub src: &'a str,
    /// Its name in the container.
    pub name: &'a str,
    pub mac: Option<&'a str>,
    /// `address/prefix`, IPv4 and IPv6.
    pub addresses: Vec<String>,
    /// The default routes' gateways (IPv4, IPv6), where this interface
    /// is the container's way out.
    pub gateways: Vec<&'a str>,
    /// `(destination, next hop)`; no next hop: a route on the link.
    pub routes: Vec<(String, Option<String>)>,
}

impl Setup<'_> {
    /// Everything a plugin said, checked before it reaches an `ip` batch
    /// (a newline in a name would be a command of its own).
    fn check(&self) -> Result<(), String> {
        for n in [self.src, self.name] {
            if !super::is_interface_name(n) {
                return Err(format!("invalid interface name {n:?}"));
            }
        }
        if let Some(mac) = self.mac
            && !super::is_mac(mac)
        {
            return Err(format!("invalid MAC address {mac:?}"));
        }
        for a in &self.addresses {
            a.parse::<ipnet::IpNet>()
                .map_err(|_| format!("invalid address {a:?}"))?;
        }
        for g in &self.gateways {
            g.parse::<std::net::IpAddr>()
                .map_err(|_| format!("invalid gateway {g:?}"))?;
        }
        for (dest, via) in &self.routes {
            dest.parse::<ipnet::IpNet>()
                .map_err(|_| format!("invalid route destination {dest:?}"))?;
            if let Some(v) = via {
                v.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("invalid next hop {v:?}"))?;
            }
        }
        Ok(())
    }
}

/// Moves `s.src` into the namespace at `netns` and sets it up there.
pub async fn put_in(netns: &Path, s: &Setup<'_>) -> Result<(), String> {
    s.check()?;
    let netns_arg = netns.to_string_lossy();
    run_ip(None, &format!("link set dev {} netns {netns_arg}\n", s.src)).await?;
    let mut batch = format!("link set dev {} name {}\n", s.src, s.name);
    if let Some(mac) = s.mac {
        batch += &format!("link set dev {} address {mac}\n", s.name);
    }
    // The namespace starts interfaces without IPv6 (Docker's default for
    // networks without it): one given an IPv6 address has it turned on.
    if s.addresses.iter().any(|a| a.contains(':')) {
        run_ip(Some(netns), &batch).await?;
        batch.clear();
        let (ns, name) = (netns.to_path_buf(), s.name.to_string());
        let key = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        tokio::task::spawn_blocking(move || {
            super::netns::run_in(&ns, move || std::fs::write(key, "0"))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("turning IPv6 on for {name}: {e}"))?;
    }
    for a in &s.addresses {
        // IPv4 with its broadcast address, as libnetwork sets it.
        let brd = if a.contains(':') { "" } else { " broadcast +" };
        batch += &format!("addr add {a}{brd} dev {}\n", s.name);
    }
    batch += &format!("link set dev {} up\n", s.name);
    for (dest, via) in &s.routes {
        match via {
            Some(via) => batch += &format!("route add {dest} via {via} dev {}\n", s.name),
            None => batch += &format!("route add {dest} dev {}\n", s.name),
        }
    }
    for g in &s.gateways {
        batch += &format!("route add default via {g} dev {}\n", s.name);
    }
    run_ip(Some(netns), &batch).await
}

/// Takes the interface `name` out of the namespace at `netns` under its
/// plugin's name `src`, back into the engine's namespace. Nothing to do
/// when the namespace or the interface is gone (the kernel removed it).
pub async fn take_out(netns: &Path, name: &str, src: &str) -> Result<(), String> {
    if !netns.exists() {
        return Ok(());
    }
    for n in [name, src] {
        if !super::is_interface_name(n) {
            return Err(format!("invalid interface name {n:?}"));
        }
    }
    let home = format!("/proc/{}/ns/net", std::process::id());
    let batch = format!(
        "link set dev {name} down\nlink set dev {name} name {src}\nlink set dev {src} netns {home}\n"
    );
    match run_ip(Some(netns), &batch).await {
        Err(e) if e.contains("Cannot find device") || e.contains("does not exist") => Ok(()),
        other => other,
    }
}

/// The names of the interfaces in the namespace at `netns`.
pub async fn interfaces(netns: &Path) -> Result<Vec<String>, String> {
    let out = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-o", "link", "show"])
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(link_names(&String::from_utf8_lossy(&out.stdout)))
}

/// The names `ip -o link show` lists (`3: eth0@if4: <…> …`).
fn link_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect()
}

/// The next name of `prefix` no interface has: `prefix0`, `prefix1`…
pub fn next_name(prefix: &str, taken: &[String]) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_default()
}

/// Runs `ip -batch -` (in the namespace at `netns`) on `batch`: one
/// process for the whole setup, stopping at the first command that fails.
async fn run_ip(netns: Option<&Path>, batch: &str) -> Result<(), String> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("ip");
            c
        }
        None => tokio::process::Command::new("ip"),
    };
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running ip: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .await
            .map_err(|e| format!("running ip: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        // ip says which line failed after what failed: the first is the why.
        Err(err.lines().next().unwrap_or("ip failed").trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_from_the_listing_and_the_next_is_free() {
        let listing = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n\
                       2: eth0@if9: <BROADCAST> mtu 1500\n\
                       3: ethwe0@if11: <BROADCAST> mtu 1500\n";
        let names = link_names(listing);
        assert_eq!(names, ["lo", "eth0", "ethwe0"]);
        assert_eq!(next_name("ethwe", &names), "ethwe1");
        assert_eq!(next_name("eth", &names), "eth1");
        assert_eq!(next_name("cali", &names), "cali0");
    }

    #[test]
    fn what_a_plugin_says_cannot_add_commands_to_the_batch() {
        let ok = Setup {
            src: "tnc1234",
            name: "eth0",
            mac: Some("02:42:0a:00:00:02"),
            addresses: vec!["10.0.0.2/24".into(), "fd00::2/64".into()],
            gateways: vec!["10.0.0.1"],
            routes: vec![("10.1.0.0/16".into(), Some("10.0.0.254".into()))],
        };
        assert_eq!(ok.check(), Ok(()));
        let bad_name = Setup {
            src: "x\nlink del eth0",
            ..Setup::default()
        };
        assert!(bad_name.check().is_err());
        let bad_mac = Setup {
            mac: Some("02:42:0a:00:00:02\nlink del eth0"),
            ..ok_named()
        };
        assert!(bad_mac.check().is_err());
        let bad_route = Setup {
            routes: vec![("10.1.0.0/16 dev lo\nlink del eth0".into(), None)],
            ..ok_named()
        };
        assert!(bad_route.check().is_err());
        let bad_gateway = Setup {
            gateways: vec!["10.0.0.1 dev lo"],
            ..ok_named()
        };
        assert!(bad_gateway.check().is_err());
    }

    fn ok_named() -> Setup<'static> {
        Setup {
            src: "tnc1234",
            name: "eth0",
            ..Setup::default()
        }
    }
}
