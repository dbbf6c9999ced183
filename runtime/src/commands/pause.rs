//! `pause` and `resume`: the cgroup freezer.

use crate::cgroups::Cgroup;
use crate::cli::{GlobalOpts, IdArg};
use crate::container::{Container, Status};
use crate::error::{Error, Result};

pub fn pause(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        s => {
            return Err(Error::BadState {
                id: c.id().into(),
                status: s.as_str(),
                action: "only a running container can be paused",
            });
        }
    }
    Cgroup::open(&c.state.cgroup_path)?.freeze(true)?;
    Ok(0)
}

pub fn resume(g: &GlobalOpts, a: &IdArg) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    if c.status() != Status::Paused {
        return Err(Error::BadState {
            id: c.id().into(),
            status: c.status().as_str(),
            action: "only a paused container can be resumed",
        });
    }
    Cgroup::open(&c.state.cgroup_path)?.freeze(false)?;
    Ok(0)
}
