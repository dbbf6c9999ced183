//! The macvlan and ipvlan drivers: a network whose containers hang their
//! own links from an interface of the host (its parent) instead of a
//! bridge berth owns, through the CNI macvlan and ipvlan plugins. What is
//! checked, made and removed here follows dockerd's drivers: a parent
//! `eth0.10` that does not exist is made as a VLAN sub-interface, a
//! network without a parent gets a dummy link of its own (and is
//! internal), and only links made here are ever removed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The drivers this module serves.
pub fn is_parented(driver: &str) -> bool {
    matches!(driver, "macvlan" | "ipvlan")
}

/// The options a driver takes beside `parent`, each with the values it
/// allows and the one it uses when none is given.
fn modes(driver: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match driver {
        "macvlan" => &[("macvlan_mode", &["bridge", "private", "vepa", "passthru"])],
        "ipvlan" => &[
            ("ipvlan_mode", &["l2", "l3", "l3s"]),
            ("ipvlan_flag", &["bridge", "private", "vepa"]),
        ],
        _ => &[],
    }
}

/// Checks the driver's mode options, in dockerd's words.
pub fn check_options(driver: &str, o: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, allowed) in modes(driver) {
        if let Some(v) = o.get(*key).filter(|v| !v.is_empty())
            && !allowed.contains(&v.as_str())
        {
            return Err(format!(
                "requested {} mode '{v}' is not valid, '{}' mode is the {driver} driver default",
                key.trim_end_matches("_mode").trim_end_matches("_flag"),
                allowed[0]
            ));
        }
    }
    if let Some(p) = o.get("parent").filter(|p| !p.is_empty()) {
        check_name(p)?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if super::is_interface_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid parent interface {name:?}: up to 15 of [a-zA-Z0-9_.-], starting with a letter or digit"
        ))
    }
}

/// The name dockerd gives a network's own dummy parent.
pub fn dummy_name(driver: &str, id: &str) -> String {
    let prefix = if driver == "ipvlan" { "di" } else { "dm" };
    format!("{prefix}-{}", &id[..id.len().min(12)])
}

/// The parent a new network's containers will use, made if it must be:
/// returns it and whether it was made here (and so goes with the
/// network).
pub fn prepare(driver: &str, id: &str, given: Option<&str>) -> Result<(String, bool), String> {
    let Some(parent) = given.filter(|p| !p.is_empty()) else {
        let dummy = dummy_name(driver, id);
        make(&dummy, &["type", "dummy"])
            .map_err(|e| format!("failed to create the dummy link {dummy}: {e}"))?;
        return Ok((dummy, true));
    };
    if crate::daemon::networks::link_exists(parent) {
        return Ok((parent.to_string(), false));
    }
    let vlan = parent
        .rsplit_once('.')
        .and_then(|(base, id)| Some((base, id.parse::<u16>().ok()?)))
        .filter(|(base, id)| !base.is_empty() && (1..=4094).contains(id));
    let Some((base, vlan_id)) = vlan else {
        return Err(format!(
            "invalid subinterface vlan name {parent}, example formatting is eth0.10"
        ));
    };
    if !crate::daemon::networks::link_exists(base) {
        return Err(format!(
            "-o parent interface was not found on the host: {base}"
        ));
    }
    let vlan_id = vlan_id.to_string();
    make(parent, &["link", base, "type", "vlan", "id", &vlan_id])
        .map_err(|e| format!("failed to create {parent} vlan link: {e}"))?;
    Ok((parent.to_string(), true))
}

/// Adds link `name` of the kind `how` says and brings it up; one that
/// cannot be brought up is not left behind.
fn make(name: &str, how: &[&str]) -> Result<(), String> {
    let mut add = vec!["link", "add", "name", name];
    add.extend_from_slice(how);
    ip(&add)?;
    ip(&["link", "set", name, "up"]).inspect_err(|_| remove(name))
}

/// Makes again a parent this module made for network `id` that is gone
/// (a reboot takes dummy and VLAN links with it), as dockerd's drivers
/// make them again when they load their networks.
pub fn remake(driver: &str, id: &str, parent: &str) -> Result<(), String> {
    if crate::daemon::networks::link_exists(parent) {
        return Ok(());
    }
    let given = (parent != dummy_name(driver, id)).then_some(parent);
    prepare(driver, id, given).map(|_| ())
}

/// Removes a parent this module made (a link that is gone already is no
/// error).
pub fn remove(name: &str) {
    if let Err(e) = ip(&["link", "delete", name])
        && !e.contains("Cannot find device")
    {
        tracing::warn!("deleting link {name}: {e}");
    }
}

/// The CNI plugin that hangs a container's link from `parent`, without
/// its IPAM (the caller adds host-local's).
pub fn plugin(driver: &str, parent: &str, o: &BTreeMap<String, String>) -> Value {
    let mode = |key: &str| -> String {
        let allowed = modes(driver)
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(&[][..], |(_, a)| *a);
        o.get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| allowed.first().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    match driver {
        "ipvlan" => json!({"type": "ipvlan", "master": parent, "mode": mode("ipvlan_mode")}),
        _ => json!({"type": "macvlan", "master": parent, "mode": mode("macvlan_mode")}),
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .trim_start_matches("Error: ")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn modes_are_checked_in_dockerds_words() {
        assert!(check_options("macvlan", &opts(&[("macvlan_mode", "vepa")])).is_ok());
        assert_eq!(
            check_options("macvlan", &opts(&[("macvlan_mode", "weird")])).unwrap_err(),
            "requested macvlan mode 'weird' is not valid, 'bridge' mode is the macvlan driver default"
        );
        assert!(check_options("ipvlan", &opts(&[("ipvlan_mode", "l3s")])).is_ok());
        assert!(check_options("ipvlan", &opts(&[("ipvlan_mode", "l4")])).is_err());
        assert!(check_options("ipvlan", &opts(&[("ipvlan_flag", "x")])).is_err());
        for bad in ["../x", "a b", "", "x".repeat(16).as_str(), "-x"] {
            let o = opts(&[("parent", bad)]);
            assert_eq!(
                check_options("macvlan", &o).is_err(),
                !bad.is_empty(),
                "{bad:?}"
            );
        }
        assert!(check_options("macvlan", &opts(&[("parent", "eth0.10")])).is_ok());
    }

    #[test]
    fn a_parent_made_for_a_network_is_made_again_the_way_it_was() {
        // There: nothing to do.
        assert_eq!(remake("macvlan", "0123456789abcdef", "lo"), Ok(()));
        // A VLAN sub-interface: its base must be there.
        assert_eq!(
            remake("macvlan", "0123456789abcdef", "nosuch0.7"),
            Err("-o parent interface was not found on the host: nosuch0".into())
        );
        // The network's own dummy (a kernel without dummy links says so).
        let id = format!("{:016x}", std::process::id() as u64 * 7919);
        let dummy = dummy_name("macvlan", &id);
        match remake("macvlan", &id, &dummy) {
            Ok(()) => {
                assert!(crate::daemon::networks::link_exists(&dummy));
                remove(&dummy);
            }
            Err(e) => assert!(
                e.starts_with(&format!("failed to create the dummy link {dummy}")),
                "{e}"
            ),
        }
    }

    #[test]
    fn plugins_take_the_mode_or_the_drivers_default() {
        assert_eq!(
            plugin("macvlan", "eth0", &opts(&[])),
            json!({"type": "macvlan", "master": "eth0", "mode": "bridge"})
        );
        assert_eq!(
            plugin("ipvlan", "eth1", &opts(&[("ipvlan_mode", "l3")])),
            json!({"type": "ipvlan", "master": "eth1", "mode": "l3"})
        );
        assert_eq!(dummy_name("macvlan", "0123456789abcdef"), "dm-0123456789ab");
        assert_eq!(dummy_name("ipvlan", "0123456789abcdef"), "di-0123456789ab");
    }
}
