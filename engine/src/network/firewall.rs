//! The network-level rules of berth's bridges, which belong to the network
//! rather than to any one container: traffic of a bridge let through the
//! host's FORWARD chain whatever its policy, bridges isolated from each
//! other, and outbound NAT for the subnet (Docker's per-network rules).
//! Per-container wiring stays with the CNI plugins; doing these per
//! container (the bridge plugin's ipMasq, the firewall plugin) cost ~150 ms
//! of iptables runs on every start and stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

const FORWARD: &str = "BERTH-FORWARD";
const ISOLATION: &str = "BERTH-ISOLATION";
const ISOLATION_2: &str = "BERTH-ISOLATION-2";

#[derive(Default)]
pub struct Firewall {
    /// Per bridge, its rules' check by this process: done, or under way
    /// (a start waits for the one check instead of running its own).
    ready: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
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
    /// a start does not pay for the checks, and starts at once wait for
    /// one check).
    pub async fn ensure_network(&self, bridge: &str, subnet: &str, internal: bool) {
        let cell = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(bridge.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| apply(bridge, subnet, internal)).await;
    }

    /// Deletes every rule that names `bridge`, ours and those the CNI
    /// plugins keep per bridge.
    pub async fn forget_bridge(&self, bridge: &str) {
        let cell = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(bridge);
        // A check under way finishes first: its rules would outlive the
        // network otherwise.
        if let Some(cell) = cell {
            cell.get_or_init(|| async {}).await;
        }
        // The tables at once: each is a save and a restore, processes that
        // mostly wait on the kernel's rule dump (`network rm` and compose's
        // `down` wait for them).
        tokio::join!(forget_in(bridge, "filter"), forget_in(bridge, "nat"));
    }
}

/// A bridge network's rules, table by table: the chains it needs and the
/// rules in them (`-A` lines as iptables-save writes them; the jump from
/// FORWARD goes first in that chain).
fn wanted(
    bridge: &str,
    subnet: &str,
    internal: bool,
) -> [(&'static str, Vec<&'static str>, Vec<String>); 2] {
    let mut filter = vec![
        format!("-A FORWARD -j {FORWARD}"),
        format!("-A {FORWARD} -j {ISOLATION}"),
        format!("-A {ISOLATION} -i {bridge} ! -o {bridge} -j {ISOLATION_2}"),
        format!("-A {ISOLATION_2} -o {bridge} -j DROP"),
    ];
    let mut nat = Vec::new();
    if internal {
        filter.push(format!("-A {FORWARD} -i {bridge} -o {bridge} -j ACCEPT"));
    } else {
        filter.push(format!("-A {FORWARD} -i {bridge} -j ACCEPT"));
        filter.push(format!("-A {FORWARD} -o {bridge} -j ACCEPT"));
        // iptables keeps the network address: a subnet written with host
        // bits would never match what it saved.
        let subnet = subnet
            .parse::<ipnet::Ipv4Net>()
            .map_or_else(|_| subnet.to_string(), |n| n.trunc().to_string());
        nat.push(format!(
            "-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"
        ));
    }
    [
        ("filter", vec![FORWARD, ISOLATION, ISOLATION_2], filter),
        ("nat", Vec::new(), nat),
    ]
}

/// iptables-restore's input adding to `table` what its saved rules lack:
/// missing chains declared (a declared chain that exists would be
/// flushed), missing rules appended, the jump from FORWARD inserted first.
/// None when nothing is missing.
fn additions(table: &str, save: &str, chains: &[&str], rules: &[String]) -> Option<String> {
    let mut input = String::new();
    for chain in chains {
        let declared = format!(":{chain} ");
        if !save.lines().any(|l| l.starts_with(&declared)) {
            input.push_str(&format!(":{chain} - [0:0]\n"));
        }
    }
    for rule in rules {
        if save.lines().any(|l| l.trim_end() == rule) {
            continue;
        }
        if *rule == format!("-A FORWARD -j {FORWARD}") {
            input.push_str(&format!("-I FORWARD -j {FORWARD}\n"));
        } else {
            input.push_str(rule);
            input.push('\n');
        }
    }
    (!input.is_empty()).then(|| format!("*{table}\n{input}COMMIT\n"))
}

/// A bridge network's rules put in place: per table one save and, when
/// something is missing, one restore (a process per rule made the first
/// start on a network wait ~50 ms, five starts at once longer). Rule by
/// rule if the batch is refused.
async fn apply(bridge: &str, subnet: &str, internal: bool) {
    let tables = wanted(bridge, subnet, internal);
    let batched =
        futures::future::join_all(tables.iter().map(|(table, chains, rules)| async move {
            if rules.is_empty() {
                return true;
            }
            let Some(save) = save(table).await else {
                return false;
            };
            match additions(table, &save, chains, rules) {
                Some(input) => restore(&input).await,
                None => true,
            }
        }))
        .await;
    for ((table, chains, rules), ok) in tables.iter().zip(batched) {
        if ok {
            continue;
        }
        tracing::debug!("iptables-restore refused {bridge}'s {table} rules; one by one");
        for chain in chains {
            // Exists already: fine.
            let _ = iptables(table, &["-N", chain]).await;
        }
        for rule in rules {
            let Some(args) = rule.strip_prefix("-A ").and_then(shlex::split) else {
                continue;
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if args == ["FORWARD", "-j", FORWARD] {
                if !iptables(table, &["-C", "FORWARD", "-j", FORWARD]).await {
                    iptables(table, &["-I", "FORWARD", "-j", FORWARD]).await;
                }
                continue;
            }
            if let Some((chain, rule)) = args.split_first() {
                ensure(table, chain, rule).await;
            }
        }
    }
}

/// `table`'s rules as iptables-save writes them.
async fn save(table: &str) -> Option<String> {
    let out = tokio::process::Command::new("iptables-save")
        .args(["-t", table])
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes the rules of `table` that name `bridge`.
async fn forget_in(bridge: &str, table: &str) {
    let Some(save) = save(table).await else {
        return;
    };
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

    #[test]
    fn only_what_is_missing_is_added() {
        let [(table, chains, rules), (nat, nat_chains, nat_rules)] =
            wanted("br1", "10.1.0.7/24", false);
        let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n";
        assert_eq!(
            additions(table, empty, &chains, &rules).as_deref(),
            Some(
                "*filter\n\
                 :BERTH-FORWARD - [0:0]\n\
                 :BERTH-ISOLATION - [0:0]\n\
                 :BERTH-ISOLATION-2 - [0:0]\n\
                 -I FORWARD -j BERTH-FORWARD\n\
                 -A BERTH-FORWARD -j BERTH-ISOLATION\n\
                 -A BERTH-ISOLATION -i br1 ! -o br1 -j BERTH-ISOLATION-2\n\
                 -A BERTH-ISOLATION-2 -o br1 -j DROP\n\
                 -A BERTH-FORWARD -i br1 -j ACCEPT\n\
                 -A BERTH-FORWARD -o br1 -j ACCEPT\n\
                 COMMIT\n"
            )
        );
        // Another bridge's rules exist: its chains are not declared again
        // (that would flush them), only br1's rules are added.
        let other = "*filter\n:FORWARD DROP [0:0]\n:BERTH-FORWARD - [0:0]\n\
                     :BERTH-ISOLATION - [0:0]\n:BERTH-ISOLATION-2 - [0:0]\n\
                     -A FORWARD -j BERTH-FORWARD\n-A BERTH-FORWARD -j BERTH-ISOLATION\n\
                     -A BERTH-FORWARD -i br0 -j ACCEPT\nCOMMIT\n";
        let add = additions(table, other, &chains, &rules).unwrap_or_default();
        assert!(!add.contains(':'), "{add}");
        assert!(!add.contains("FORWARD -j BERTH-FORWARD"), "{add}");
        assert!(add.contains("-A BERTH-FORWARD -i br1 -j ACCEPT"), "{add}");
        // All there: nothing to run.
        let all = format!(
            "*filter\n:BERTH-FORWARD - [0:0]\n:BERTH-ISOLATION - [0:0]\n:BERTH-ISOLATION-2 - [0:0]\n{}\nCOMMIT\n",
            rules.join("\n")
        );
        assert_eq!(additions(table, &all, &chains, &rules), None);
        // The subnet as iptables keeps it.
        assert_eq!(
            additions(nat, "*nat\nCOMMIT\n", &nat_chains, &nat_rules).as_deref(),
            Some("*nat\n-A POSTROUTING -s 10.1.0.0/24 ! -o br1 -j MASQUERADE\nCOMMIT\n")
        );
        let [_, (_, _, internal_nat)] = wanted("br1", "10.1.0.0/24", true);
        assert!(internal_nat.is_empty());
    }
}
