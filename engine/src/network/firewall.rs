//! The rules the CNI firewall plugin leaves per bridge when its last
//! container goes (`ingressPolicy: same-bridge` isolation), removed when
//! the bridge itself goes.

/// Deletes the isolation rules that name `bridge`.
pub async fn forget_bridge(bridge: &str) {
    let Ok(out) = tokio::process::Command::new("iptables-save")
        .args(["-t", "filter"])
        .output()
        .await
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for rule in rules_naming(&text, bridge) {
        let del = tokio::process::Command::new("iptables")
            .args(["-w", "-t", "filter", "-D"])
            .args(&rule)
            .output()
            .await;
        if let Ok(o) = del
            && !o.status.success()
        {
            tracing::warn!(
                "removing the isolation rule {rule:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
    }
}

/// The `-A CNI-ISOLATION-…` lines of iptables-save that match on
/// `bridge`, as arguments for `iptables -D` (the chain first).
fn rules_naming(save: &str, bridge: &str) -> Vec<Vec<String>> {
    save.lines()
        .filter(|l| l.starts_with("-A CNI-ISOLATION-STAGE-"))
        .filter_map(|l| shlex::split(&l[3..]))
        .filter(|args| {
            args.windows(2)
                .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bridges_own_rules_are_picked() {
        let save = r#"*filter
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-ISOLATION-STAGE-1 -i br1 ! -o br1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -i br10 ! -o br10 -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-2 -o br1 -m comment --comment "x y" -j DROP
-A CNI-ISOLATION-STAGE-2 -j RETURN
"#;
        let r = rules_naming(save, "br1");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][0], "CNI-ISOLATION-STAGE-1");
        assert!(
            r[0].contains(&"CNI firewall plugin rules (ingressPolicy: same-bridge)".to_string())
        );
        assert_eq!(
            r[1],
            [
                "CNI-ISOLATION-STAGE-2",
                "-o",
                "br1",
                "-m",
                "comment",
                "--comment",
                "x y",
                "-j",
                "DROP"
            ]
        );
    }
}
