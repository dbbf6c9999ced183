//! Exec instances: Docker's two-step `exec` (create a config, then start
//! it) over lifecycled's Exec, Start, Attach, Wait and Delete of an extra
//! process in a running container's task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    pub tty: bool,
    pub console_size: Option<Vec<u32>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
}

#[derive(Debug, Clone, Default)]
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
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
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
}

/// Env of the container's process with the exec's own on top (same name
/// replaced, as Docker merges them).
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |s: &str| s.split('=').next().unwrap_or("").to_string();
    let mut out: Vec<String> = base
        .iter()
        .filter(|b| !extra.iter().any(|e| key(e) == key(b)))
        .cloned()
        .collect();
    out.extend(extra.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_overrides_the_containers() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let extra = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&base, &extra), ["PATH=/bin", "A=2", "B=3"]);
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
            x.insert(Arc::new(Exec {
                id: id.into(),
                container_id: c.into(),
                config: ExecConfig::default(),
                state: Mutex::new(ExecState {
                    running,
                    ..Default::default()
                }),
                done: tokio::sync::watch::channel(false).0,
            }));
        }
        assert_eq!(x.of_container("c1"), ["e1", "e3"]);
        x.forget_container("c1");
        assert!(x.get("e1").is_none() && x.get("e2").is_some());
    }
}
