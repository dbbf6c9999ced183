//! Exec instances: Docker's two-step `exec` (create a config, then start
//! it) over lifecycled's Exec, Start, Attach, Wait and Delete of an extra
//! process in a running container's task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde::{Deserialize, Serialize};

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// docker-py sends `detachKeys` (Go's decoder ignores key case).
    #[serde(alias = "detachKeys")]
    pub detach_keys: String,
    pub tty: bool,
    pub console_size: Option<Vec<u32>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ExecState {
    pub started: bool,
    pub running: bool,
    pub pid: u32,
    pub exit_code: Option<i32>,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    /// Becomes true when the process has exited (or failed to start).
    pub done: tokio::sync::watch::Sender<bool>,
    /// Where the record is kept, so that an engine restart finds the exec
    /// (and its exit code) again; None for records that are not kept.
    pub file: Option<PathBuf>,
}

/// An exec's record on disk.
#[derive(Deserialize, Serialize)]
struct Record {
    id: String,
    container_id: String,
    config: ExecConfig,
    state: ExecState,
}

impl Exec {
    pub fn new(id: String, container_id: String, config: ExecConfig, dir: Option<&Path>) -> Exec {
        Exec {
            file: dir.map(|d| d.join(format!("{id}.json"))),
            id,
            container_id,
            config,
            state: Mutex::new(ExecState::default()),
            done: tokio::sync::watch::channel(false).0,
        }
    }

    /// Reads the records under `dir` (a container's `execs/`).
    pub fn load_all(dir: &Path) -> Vec<Exec> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(data) = std::fs::read(e.path()) else {
                continue;
            };
            match serde_json::from_slice::<Record>(&data) {
                Ok(r) => {
                    let done = r.state.exit_code.is_some();
                    out.push(Exec {
                        file: Some(e.path()),
                        id: r.id,
                        container_id: r.container_id,
                        config: r.config,
                        state: Mutex::new(r.state),
                        done: tokio::sync::watch::channel(done).0,
                    });
                }
                Err(err) => tracing::warn!("skipping exec record {}: {err}", e.path().display()),
            }
        }
        out
    }

    /// Writes the record (best effort: an exec works without it).
    pub fn save(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let r = Record {
            id: self.id.clone(),
            container_id: self.container_id.clone(),
            config: self.config.clone(),
            state: self.state(),
        };
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|_| {
                let data = serde_json::to_vec(&r).map_err(std::io::Error::other)?;
                super::container::write_atomic(path, &data)
            });
        if let Err(e) = written {
            tracing::warn!("saving exec {}: {e}", self.id);
        }
    }

    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.save();
    }

    pub fn finish(&self, code: i32) {
        self.update(|s| {
            s.running = false;
            s.exit_code = Some(code);
        });
        self.done.send_replace(true);
    }
}

/// Exec instances by id, as Docker keeps them: until their container goes.
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Arc<Exec>>>);

impl Execs {
    pub fn insert(&self, e: Arc<Exec>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(e.id.clone(), e);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Exec>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The ids of the container's execs that are running.
    pub fn of_container(&self, container_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.container_id == container_id && e.state().running)
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub fn forget_container(&self, container_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.container_id != container_id);
    }

    /// A container's run ended: its execs go, records and all, as dockerd's
    /// cleanup unregisters them (an exec made before a stop is no more:
    /// starting or inspecting it is a 404).
    pub fn end_of_run(&self, container_id: &str) {
        let gone: Vec<Arc<Exec>> = {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = m
                .iter()
                .filter(|(_, e)| e.container_id == container_id)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| m.remove(k)).collect()
        };
        for x in gone {
            if let Some(f) = &x.file {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

impl super::Daemon {
    /// Waits for the process, records its exit code and frees it in lifecycled
    /// once its output is all out (`drained` resolves, or is dropped).
    pub async fn reap_exec(
        self: Arc<Self>,
        x: Arc<Exec>,
        drained: Option<tokio::sync::oneshot::Receiver<()>>,
    ) {
        let d = self;
        let code = loop {
            let waited =
                d.lc.tasks()
                    .wait(d.lc.req(api::ProcessRequest {
                        container_id: x.container_id.clone(),
                        exec_id: x.id.clone(),
                    }))
                    .await;
            match waited {
                Ok(r) => break r.into_inner().exit_status as i32,
                // lifecycled restarting: the process runs on; wait again.
                Err(st)
                    if matches!(st.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
                        && d.find(&x.container_id).is_ok() =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(st) => {
                    tracing::warn!("waiting for exec {}: {}", x.id, st.message());
                    break 255;
                }
            }
        };
        x.finish(code);
        if let Some(rx) = drained {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), rx).await;
        }
        let _ = d.delete_exec_process(&x).await;
        if let Ok(e) = d.find(&x.container_id) {
            let c = e.c.lock().await;
            d.container_event(
                &c,
                "exec_die",
                &[("execID", x.id.clone()), ("exitCode", code.to_string())],
            );
        }
    }

    pub async fn delete_exec_process(&self, x: &Exec) -> Result<(), tonic::Status> {
        self.lc
            .tasks()
            .delete(self.lc.req(api::ProcessRequest {
                container_id: x.container_id.clone(),
                exec_id: x.id.clone(),
            }))
            .await
            .map(|_| ())
    }

    /// After an engine restart: execs that were started (their record is
    /// written before lifecycled hears of the process) and have no exit
    /// code are waited for again, get the exit code lifecycled kept for
    /// them, or are rolled back when their start never happened.
    pub async fn reconcile_execs(self: &Arc<Self>) {
        let open: Vec<Arc<Exec>> = self
            .execs
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| {
                let st = e.state();
                st.started && st.exit_code.is_none()
            })
            .cloned()
            .collect();
        for x in open {
            let got = self
                .lc
                .tasks()
                .get(self.lc.req(api::ProcessRequest {
                    container_id: x.container_id.clone(),
                    exec_id: x.id.clone(),
                }))
                .await;
            let p = match got {
                Ok(p) => p.into_inner(),
                // lifecycled went away again: the record stays as it is,
                // for the next engine start to look at.
                Err(st) if st.code() == tonic::Code::Unavailable => continue,
                // Gone with its container's task (or never registered):
                // how it ended is not known.
                Err(_) => {
                    x.finish(255);
                    continue;
                }
            };
            match pb::Status::try_from(p.status).unwrap_or(pb::Status::Unknown) {
                pb::Status::Stopped => {
                    x.finish(p.exit_status as i32);
                    let _ = self.delete_exec_process(&x).await;
                }
                pb::Status::Created => {
                    // Registered, and its start never came.
                    let _ = self.delete_exec_process(&x).await;
                    x.finish(255);
                }
                _ => {
                    if !x.state().running {
                        // Started by a start whose record was not saved.
                        x.update(|s| {
                            s.running = true;
                            s.pid = p.pid;
                        });
                    }
                    tokio::spawn(self.clone().reap_exec(x, None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_with_their_exit_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = ExecConfig {
            cmd: Some(vec!["true".into()]),
            ..Default::default()
        };
        let e = Exec::new("e1".into(), "c1".into(), cfg, Some(dir.path()));
        e.save();
        e.update(|s| s.started = true);
        e.finish(7);
        let back = Exec::load_all(dir.path());
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].state().exit_code, Some(7));
        assert_eq!(
            back[0].config.cmd.as_deref(),
            Some(&["true".to_string()][..])
        );
        assert!(*back[0].done.borrow());
    }

    #[test]
    fn execs_are_forgotten_with_their_container() {
        let x = Execs::default();
        for (id, c, running) in [
            ("e1", "c1", true),
            ("e2", "c2", true),
            ("e3", "c1", true),
            ("e4", "c1", false),
        ] {
            let e = Exec::new(id.into(), c.into(), ExecConfig::default(), None);
            e.update(|s| s.running = running);
            x.insert(Arc::new(e));
        }
        assert_eq!(x.of_container("c1"), ["e1", "e3"]);
        x.forget_container("c1");
        assert!(x.get("e1").is_none() && x.get("e2").is_some());
    }

    #[test]
    fn a_runs_end_takes_its_execs_and_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let x = Execs::default();
        for (id, c) in [("e1", "c1"), ("e2", "c2")] {
            let e = Exec::new(id.into(), c.into(), ExecConfig::default(), Some(dir.path()));
            e.save();
            x.insert(Arc::new(e));
        }
        x.end_of_run("c1");
        assert!(x.get("e1").is_none() && x.get("e2").is_some());
        let left: Vec<_> = Exec::load_all(dir.path())
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, ["e2"]);
    }
}
