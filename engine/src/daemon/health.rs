//! Health checks: the image's HEALTHCHECK or `--health-*`, run as an exec in
//! the container every interval while it runs; the status (starting,
//! healthy, unhealthy) in inspect and `ps`, a `health_status` event when it
//! changes, and the last five probes kept as Docker keeps them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};

use super::container::{Health, Status};
use super::{Daemon, Entry};
use crate::types::HealthConfig;

/// Docker's defaults when the config leaves them at zero.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: i64 = 3;
/// Output kept per probe, and probes kept.
const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

fn dur(nanos: i64, default: Duration) -> Duration {
    if nanos > 0 {
        Duration::from_nanos(nanos as u64)
    } else {
        default
    }
}

/// The probe's command line, or None when there is no check.
pub fn probe_args(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

/// The health a new run of `c` starts with: "starting" when it has a
/// check, none otherwise. Set by the start itself, so that the record the
/// start saves already says so (as Docker's start does).
pub fn at_start(c: &super::container::Container) -> Option<Health> {
    let cfg = c.config.healthcheck.as_ref()?;
    probe_args(&cfg.test)?;
    Some(Health {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    })
}

impl Daemon {
    /// Starts checking the container's health for its current run, if it
    /// has a check and nothing checks this run yet.
    pub async fn watch_health(self: &Arc<Self>, e: &Arc<Entry>) {
        let run = *e.exits.borrow();
        let cfg = {
            let mut c = e.c.lock().await;
            let Some(cfg) = c.config.healthcheck.clone() else {
                return;
            };
            if probe_args(&cfg.test).is_none() {
                return;
            }
            let mut watched = e.health_run.lock().unwrap_or_else(|p| p.into_inner());
            if *watched == Some(run) {
                return;
            }
            *watched = Some(run);
            if c.state.health.is_none() {
                c.state.health = Some(Health {
                    status: "starting".into(),
                    failing_streak: 0,
                    log: Vec::new(),
                });
                let _ = c.save();
            }
            cfg
        };
        let (d, e) = (self.clone(), e.clone());
        tokio::spawn(async move { d.health_loop(&e, cfg, run).await });
    }

    async fn health_loop(self: Arc<Self>, e: &Arc<Entry>, cfg: HealthConfig, run: u64) {
        let started = tokio::time::Instant::now();
        let start_period = dur(cfg.start_period, Duration::ZERO);
        let mut exits = e.exits.subscribe();
        loop {
            let in_start_period = started.elapsed() < start_period;
            let wait = if in_start_period && cfg.start_interval > 0 {
                dur(cfg.start_interval, INTERVAL)
            } else {
                dur(cfg.interval, INTERVAL)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = exits.changed() => return,
            }
            if *e.exits.borrow() != run || *e.removed.borrow() {
                return;
            }
            if e.c.lock().await.state.status != Status::Running {
                continue;
            }
            let begin = SystemTime::now();
            let (code, output) = self.probe(e, &cfg).await;
            let entry = json!({
                "Start": humantime::format_rfc3339_nanos(begin).to_string(),
                "End": humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
                "ExitCode": code,
                "Output": output,
            });
            self.record(e, run, &cfg, code, entry, started.elapsed() < start_period)
                .await;
        }
    }

    async fn record(
        &self,
        e: &Entry,
        run: u64,
        cfg: &HealthConfig,
        code: i32,
        entry: Value,
        grace: bool,
    ) {
        let mut c = e.c.lock().await;
        // The exit count moves under this lock: a run that ended while the
        // probe ran keeps the "unhealthy" its exit left.
        if *e.exits.borrow() != run {
            return;
        }
        let retries = if cfg.retries > 0 {
            cfg.retries
        } else {
            RETRIES
        };
        let h = c.state.health.get_or_insert_with(|| Health {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        });
        let (before, streak) = (h.status.clone(), h.failing_streak);
        h.log.push(entry);
        if h.log.len() > MAX_LOG {
            h.log.remove(0);
        }
        if code == 0 {
            h.failing_streak = 0;
            h.status = "healthy".into();
        } else if !grace || h.status != "starting" {
            // Failures in the start period do not count while it is starting.
            h.failing_streak += 1;
            if h.failing_streak >= retries {
                h.status = "unhealthy".into();
            }
        }
        let after = h.status.clone();
        // What the record must keep is the status and the streak; a probe
        // that changes neither stays in memory (inspect reads it there) and
        // reaches the disk with the next save. A save per probe was a new
        // file and two fsyncs every interval for every checked container.
        if after != before || h.failing_streak != streak {
            let _ = c.save();
        }
        if after != before {
            self.container_event(&c, &format!("health_status: {after}"), &[]);
        }
    }

    /// Runs the probe as an exec: its exit code (-1 on timeout or when it
    /// cannot run) and the start of its output.
    async fn probe(&self, e: &Entry, cfg: &HealthConfig) -> (i32, String) {
        let Some(args) = probe_args(&cfg.test) else {
            return (-1, String::new());
        };
        let exec_id = format!("health-{}", hex::encode(rand::random::<[u8; 8]>()));
        let req = |id: &str| api::ProcessRequest {
            container_id: e.id.clone(),
            exec_id: id.to_string(),
        };
        let mut p = match self.lc.process_spec(&e.id).await {
            Ok(p) => p,
            Err(st) => return (-1, st.message().to_string()),
        };
        p["args"] = json!(args);
        p["terminal"] = json!(false);
        if let Err(st) = self
            .lc
            .tasks()
            .exec(self.lc.req(api::ExecRequest {
                container_id: e.id.clone(),
                exec_id: exec_id.clone(),
                spec: p.to_string().into_bytes(),
                stdio: Some(pb::Stdio::default()),
            }))
            .await
        {
            return (-1, st.message().to_string());
        }
        let output = self
            .lc
            .attach(
                api::AttachOpen {
                    container_id: e.id.clone(),
                    exec_id: exec_id.clone(),
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
                None,
            )
            .await
            .ok();
        let result = async {
            if let Err(st) = self.lc.tasks().start(self.lc.req(req(&exec_id))).await {
                return (-1, st.message().to_string());
            }
            let mut out = Vec::new();
            if let Some(mut o) = output {
                while let Ok(Some(chunk)) = o.message().await {
                    let room = MAX_OUTPUT.saturating_sub(out.len());
                    out.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
                }
            }
            let code = match self.lc.tasks().wait(self.lc.req(req(&exec_id))).await {
                Ok(r) => r.into_inner().exit_status as i32,
                Err(st) => return (-1, st.message().to_string()),
            };
            (code, String::from_utf8_lossy(&out).into_owned())
        };
        let timeout = dur(cfg.timeout, TIMEOUT);
        let r = match tokio::time::timeout(timeout, result).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self
                    .lc
                    .tasks()
                    .kill(self.lc.req(api::KillRequest {
                        container_id: e.id.clone(),
                        exec_id: exec_id.clone(),
                        signal: 9,
                        all: false,
                    }))
                    .await;
                (
                    -1,
                    format!(
                        "Health check exceeded timeout ({})",
                        dockerfile::format_go_duration(
                            i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX)
                        )
                    ),
                )
            }
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.lc.tasks().delete(self.lc.req(req(&exec_id))),
        )
        .await;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_from_docker_tests() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(probe_args(&v(&["CMD", "true"])), Some(v(&["true"])));
        assert_eq!(
            probe_args(&v(&["CMD-SHELL", "test -f /x"])),
            Some(v(&["/bin/sh", "-c", "test -f /x"]))
        );
        assert_eq!(probe_args(&v(&["NONE"])), None);
        assert_eq!(probe_args(&[]), None);
    }
}
