//! Deterministic crash points. A daemon calls [`point`] at each step of an
//! operation where dying would leave work half-done; when the environment
//! variable `BERTH_FAULT` names that point, the process aborts right there,
//! exactly as a SIGKILL at that instruction would leave things (no
//! destructors, no flushing). The crash-consistency tests use it to prove
//! every step's recovery; nothing else sets it, and unset it costs one
//! relaxed load per point.
//!
//! `BERTH_FAULT` is a comma-separated list of point names, each written as
//! `<process>:<operation>.<step>` (`berthd:start.after-task-create`). A
//! name may end in `@N` to abort on its N-th hit instead of the first.
//!
//! The points, in the order an operation passes them:
//! - `berthd:create.after-lifecycled-create`: the container exists in
//!   lifecycled, its record is not saved yet.
//! - `berthd:start.after-net-up`, `berthd:net.before-cni-add` (the
//!   attachment is written ahead), `berthd:net.after-cni-add` (both also
//!   in `network connect` of a running container),
//!   `berthd:start.after-task-create` (a created task, not started),
//!   `berthd:start.after-task-start` (running, its record not saved).
//! - `berthd:rm.after-task-delete`, `berthd:rm.after-container-delete`.
//! - `lifecycled:task-create.after-shim-spawn` (a shim without a task),
//!   `lifecycled:task-create.after-shim-create` (a created task no caller
//!   heard of), `lifecycled:task-delete.after-shim-delete`.
//! - `shim:create.after-runtime-create` (the runtime's container waits to
//!   start, its rootfs mounted, and the shim is gone).
//! - `berthd:stop.after-signal` (the stop signal is sent, the exit not yet
//!   recorded), `berthd:pause.after-task-pause` (frozen, the record still
//!   says running), `berthd:exec.after-process-start` (the exec runs, its
//!   record says only started).
//! - `berthd:volume-create.after-mkdir` (a volume directory without its
//!   options), `berthd:volume-rm.after-rename` (a volume half-deleted).
//! - `lifecycled:pull.after-layer-unpack` (blobs and an unpacked layer,
//!   no image yet), `lifecycled:commit.after-layer` (a committed layer,
//!   no image yet).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub const ENV: &str = "BERTH_FAULT";

struct Armed {
    name: String,
    nth: u32,
    hits: AtomicU32,
}

fn armed() -> &'static [Armed] {
    static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
    ARMED.get_or_init(|| parse(&std::env::var(ENV).unwrap_or_default()))
}

fn parse(spec: &str) -> Vec<Armed> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, nth) = match s.rsplit_once('@') {
                Some((n, k)) => (n, k.parse().unwrap_or(1)),
                None => (s, 1),
            };
            Armed {
                name: name.to_string(),
                nth: nth.max(1),
                hits: AtomicU32::new(0),
            }
        })
        .collect()
}

/// Whether this hit of `name` is the one to die at.
fn fires(armed: &[Armed], name: &str) -> bool {
    armed
        .iter()
        .filter(|a| a.name == name)
        .any(|a| a.hits.fetch_add(1, Ordering::Relaxed) + 1 == a.nth)
}

/// Aborts the process here when `BERTH_FAULT` names this point.
pub fn point(name: &str) {
    let armed = armed();
    if !armed.is_empty() && fires(armed, name) {
        // Written straight to the fd: the test reads it from the log to
        // know the crash happened where it asked.
        let msg = format!("berth-fault: aborting at {name}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_fires_on_its_nth_hit_only() {
        let armed = parse("berthd:a.b@2, lifecycled:c.d");
        assert!(!fires(&armed, "berthd:a.b"));
        assert!(fires(&armed, "berthd:a.b"));
        assert!(!fires(&armed, "berthd:a.b"));
        assert!(fires(&armed, "lifecycled:c.d"));
        assert!(!fires(&armed, "shim:e.f"));
    }

    #[test]
    fn an_empty_or_blank_spec_arms_nothing() {
        assert!(parse("").is_empty());
        assert!(parse(" , ").is_empty());
    }
}
