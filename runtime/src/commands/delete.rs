//! `delete`: stops what is left of a container and removes its cgroup and state.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

use crate::cgroups::Cgroup;
use crate::cli::{DeleteArgs, GlobalOpts};
use crate::container::{self, Container, Status};
use crate::error::{Error, Result};
use crate::hooks;

pub fn run(g: &GlobalOpts, a: &DeleteArgs) -> Result<i32> {
    let c = match Container::load(&g.root, &a.id) {
        Ok(c) => c,
        Err(Error::NotExist(_)) if a.force => {
            // An aborted create can leave a directory without state.json.
            let dir = container::state_dir(&g.root, &a.id);
            if dir.exists() {
                let _ = fs::remove_dir_all(&dir);
            }
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    match c.status() {
        Status::Stopped | Status::Created | Status::Creating => {}
        s if a.force => {
            let _ = s;
        }
        s => {
            return Err(Error::BadState {
                id: c.id().into(),
                status: s.as_str(),
                action: "cannot delete a container that is not stopped (use --force)",
            });
        }
    }
    destroy(&c, None)?;
    Ok(0)
}

/// Kills the container if it still lives, then removes its cgroup, runs the
/// poststop hooks and removes its state.
pub fn destroy(c: &Container, cgroup: Option<Cgroup>) -> Result<()> {
    let cgroup = cgroup.or_else(|| Cgroup::open(&c.state.cgroup_path).ok());
    if container::process_alive(c.state.pid, c.state.pid_start) {
        if let Some(cg) = &cgroup {
            // A frozen process cannot die until thawed.
            let _ = cg.freeze(false);
        }
        let _ = kill(c.pid(), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while container::process_alive(c.state.pid, c.state.pid_start) {
            if Instant::now() > deadline {
                return Err(Error::Invalid(format!(
                    "container {} did not die after SIGKILL",
                    c.id()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(cg) = &cgroup {
        cg.remove()?;
    }
    let state = c.oci_state(Status::Stopped).to_string();
    hooks::run_warn(
        "poststop",
        c.state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().as_ref()),
        &state,
    );
    fs::remove_dir_all(&c.dir).map_err(|e| Error::io("removing state directory", &c.dir, e))
}
