//! The network-level rules of berth's bridges, which belong to the network
//! rather than to any one container: traffic of a bridge let through the
//! host's FORWARD chain whatever its policy, bridges isolated from each
//! other, and outbound NAT for the subnet (Docker's per-network rules).
//! Per-container wiring stays with the CNI plugins; doing these per
//! container (the bridge plugin's ipMasq, the firewall plugin) cost ~150 ms
//! of iptables runs on every start and stop.

use std::collections::HashSet;
use std::sync::Mutex;

const FORWARD: &str = "BERTH-FORWARD";
const ISOLATION: &str = "BERTH-ISOLATION";
const ISOLATION_2: &str = "BERTH-ISOLATION-2";

#[derive(Default)]
pub struct Firewall {
    /// Bridges whose rules were checked by this process.
    ready: Mutex<HashSet<String>>,
}

async fn iptables(table: &str, args: &[&str]) -> bool {
    tokio::process::Command::new("iptables")
        .args(["-w", "-t", table])
        .args(args)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Feeds `input` to `iptables-restore --noflush` (changes to the rules
/// named, nothing else touched); whether it took.
async fn restore(input: &str) -> bool {
    use tokio::io::AsyncWriteExt;
    let child = tokio::process::Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        if stdin.write_all(input.as_bytes()).await.is_err() {
            let _ = child.kill().await;
            return false;
        }
        drop(stdin);
    }
    child.wait().await.is_ok_and(|s| s.success())
}

/// Appends `rule` to `chain` unless it is there.
async fn ensure(table: &str, chain: &str, rule: &[&str]) {
    let mut check = vec!["-C", chain];
    check.extend_from_slice(rule);
    if iptables(table, &check).await {
        return;
    }
    let mut add = vec!["-A", chain];
    add.extend_from_slice(rule);
    if !iptables(table, &add).await {
        tracing::warn!("iptables -t {table} -A {chain} {rule:?} failed");
    }
}

impl Firewall {
    /// Makes sure the rules of a bridge network exist (once per process:
    /// a start does not pay for the checks).
    pub async fn ensure_network(&self, bridge: &str, subnet: &str, internal: bool) {
        if self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(bridge)
        {
            return;
        }
        for chain in [FORWARD, ISOLATION, ISOLATION_2] {
            // Exists already: fine.
            let _ = iptables("filter", &["-N", chain]).await;
        }
        if !iptables("filter", &["-C", "FORWARD", "-j", FORWARD]).await {
            iptables("filter", &["-I", "FORWARD", "-j", FORWARD]).await;
        }
        ensure("filter", FORWARD, &["-j", ISOLATION]).await;
        ensure(
            "filter",
            ISOLATION,
            &["-i", bridge, "!", "-o", bridge, "-j", ISOLATION_2],
        )
        .await;
        ensure("filter", ISOLATION_2, &["-o", bridge, "-j", "DROP"]).await;
        if internal {
            ensure(
                "filter",
                FORWARD,
                &["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            )
            .await;
        } else {
            ensure("filter", FORWARD, &["-i", bridge, "-j", "ACCEPT"]).await;
            ensure("filter", FORWARD, &["-o", bridge, "-j", "ACCEPT"]).await;
            ensure(
                "nat",
                "POSTROUTING",
                &["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"],
            )
            .await;
        }
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(bridge.to_string());
    }

    /// Deletes every rule that names `bridge`, ours and those the CNI
    /// plugins keep per bridge.
    pub async fn forget_bridge(&self, bridge: &str) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(bridge);
        // The tables at once: each is a save and a restore, processes that
        // mostly wait on the kernel's rule dump (`network rm` and compose's
        // `down` wait for them).
        tokio::join!(forget_in(bridge, "filter"), forget_in(bridge, "nat"));
    }
}

/// Removes the rules of `table` that name `bridge`.
async fn forget_in(bridge: &str, table: &str) {
    let Ok(out) = tokio::process::Command::new("iptables-save")
        .args(["-t", table])
        .output()
        .await
    else {
        return;
    };
    let save = String::from_utf8_lossy(&out.stdout);
    let rules = rules_naming(&save, bridge);
    if rules.is_empty() {
        return;
    }
    // One iptables-restore for the table's rules (a process per rule made
    // `network rm` and `compose down` slow); rule by rule only if that fails.
    if restore(&deletions(table, &rules)).await {
        return;
    }
    tracing::warn!("iptables-restore refused the deletions of {bridge}'s rules; one by one");
    for (_, rule) in rules {
        let mut args = vec!["-D"];
        args.extend(rule.iter().map(String::as_str));
        if !iptables(table, &args).await {
            tracing::warn!("removing the rule {rule:?} of {bridge} failed");
        }
    }
}

/// The `-A` lines of iptables-save that match on `bridge` (`-i`/`-o`):
/// each as saved (after `-A `) and as arguments for `iptables -D` (the
/// chain first).
fn rules_naming<'a>(save: &'a str, bridge: &str) -> Vec<(&'a str, Vec<String>)> {
    save.lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .filter_map(|l| shlex::split(l).map(|args| (l, args)))
        .filter(|(_, args)| {
            args.windows(2)
                .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge)
        })
        .collect()
}

/// iptables-restore's input deleting `rules` from `table`: the lines as
/// iptables-save wrote them, which is restore's own syntax (it reads
/// double quotes only: a shell-quoted `'!'` is a bad argument to it, and
/// the whole batch fell back to a process per rule).
fn deletions(table: &str, rules: &[(&str, Vec<String>)]) -> String {
    let mut input = format!("*{table}\n");
    for (line, _) in rules {
        input.push_str("-D ");
        input.push_str(line);
        input.push('\n');
    }
    input.push_str("COMMIT\n");
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bridges_own_rules_are_picked() {
        let save = r#"*filter
-A FORWARD -j BERTH-FORWARD
-A BERTH-ISOLATION -i br1 ! -o br1 -j BERTH-ISOLATION-2
-A BERTH-ISOLATION -i br10 ! -o br10 -j BERTH-ISOLATION-2
-A CNI-ISOLATION-STAGE-2 -o br1 -m comment --comment "x y" -j DROP
-A POSTROUTING -s 10.1.0.0/24 ! -o br1 -j MASQUERADE
"#;
        let r = rules_naming(save, "br1");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1[0], "BERTH-ISOLATION");
        assert_eq!(
            r[1].1,
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
        assert_eq!(r[2].1[0], "POSTROUTING");
        assert_eq!(
            deletions("filter", &r),
            "*filter\n\
             -D BERTH-ISOLATION -i br1 ! -o br1 -j BERTH-ISOLATION-2\n\
             -D CNI-ISOLATION-STAGE-2 -o br1 -m comment --comment \"x y\" -j DROP\n\
             -D POSTROUTING -s 10.1.0.0/24 ! -o br1 -j MASQUERADE\n\
             COMMIT\n"
        );
    }
}
