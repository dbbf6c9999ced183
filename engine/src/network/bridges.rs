//! Bridge deletions that finish after `network rm` answered. The kernel
//! takes ~40 ms to unregister a bridge (RCU grace periods), most of a
//! network's removal and, in compose's `down`, one wait per network. The
//! deletion is a child process begun before the answer: once it runs the
//! kernel completes it whatever happens to berthd, so nothing is left for
//! a restart to find. A network create waits for the deletions begun
//! before it (a subnet given back is free again only once its bridge is
//! gone), and so does the engine's stop.

use std::process::Stdio;
use std::sync::Arc;

use tokio::sync::RwLock;

#[derive(Default)]
pub struct Deletions {
    /// Held for reading by each deletion while it runs.
    running: Arc<RwLock<()>>,
}

impl Deletions {
    /// Begins deleting bridge `name`; its end is only logged.
    pub async fn delete(&self, name: &str) {
        let running = self.running.clone().read_owned().await;
        let child = tokio::process::Command::new("ip")
            .args(["link", "delete", name, "type", "bridge"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("deleting bridge {name}: {e}");
                return;
            }
        };
        let name = name.to_string();
        tokio::spawn(async move {
            let _running = running;
            match child.wait_with_output().await {
                Ok(o) if !o.status.success() => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    if !err.contains("Cannot find device") {
                        tracing::warn!("deleting bridge {name}: {}", err.trim());
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("deleting bridge {name}: {e}"),
            }
        });
    }

    /// Waits until every deletion begun so far has ended.
    pub async fn settle(&self) {
        drop(self.running.write().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn settle_waits_for_the_deletions_begun_before_it() {
        let d = Deletions::default();
        let held = d.running.clone().read_owned().await;
        let settled = tokio::time::timeout(Duration::from_millis(50), d.settle()).await;
        assert!(settled.is_err(), "a deletion still runs");
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), d.settle())
            .await
            .expect("nothing runs");
    }
}
