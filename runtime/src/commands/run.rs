//! `run`: create and start in one process; unless detached, wait for the
//! container (copying its terminal, passing on signals), delete it and exit
//! with its status.

use crate::cli::{GlobalOpts, RunArgs};
use crate::error::Result;
use crate::process::wait;

pub fn run(g: &GlobalOpts, a: &RunArgs) -> Result<i32> {
    let launched = super::create::launch(g, &a.create, !a.detach)?;
    let c = launched.container;
    let cgroup = launched.cgroup;
    if let Err(e) = super::start::start(&c) {
        let _ = super::delete::destroy(&c, cgroup);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let Some(signals) = launched.signals else {
        return Ok(0);
    };
    let code = wait::supervise(c.pid(), signals, launched.console)?;
    if !a.keep {
        super::delete::destroy(&c, cgroup)?;
    }
    Ok(code)
}
