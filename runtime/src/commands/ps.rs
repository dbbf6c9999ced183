//! `ps`: the processes in a container's cgroup, as pids (json) or as ps(1)
//! prints them.

use std::process::Command;

use crate::cgroups::Cgroup;
use crate::cli::{GlobalOpts, PsArgs};
use crate::container::{Container, Status};
use crate::error::{Error, Result};

pub fn run(g: &GlobalOpts, a: &PsArgs) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    // A stopped container has no processes: an empty table (and `null` in
    // JSON), as runc answers, not an error.
    let stopped = c.status() == Status::Stopped;
    let pids: Vec<i32> = if stopped {
        Vec::new()
    } else {
        Cgroup::open(&c.state.cgroup_path)?
            .pids()?
            .into_iter()
            .map(|p| p.as_raw())
            .collect()
    };
    match a.format.as_str() {
        "json" => {
            let text = if stopped {
                "null".to_string()
            } else {
                serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into())
            };
            println!("{text}");
            Ok(0)
        }
        "table" => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args.clone()
            };
            let out = Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| Error::io("running", "ps", e))?;
            if !out.status.success() {
                return Err(Error::Invalid(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::Invalid("ps output has no PID column".into()))?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                    && pids.contains(&p)
                {
                    println!("{l}");
                }
            }
            Ok(0)
        }
        other => Err(Error::Invalid(format!(
            "invalid format {other:?}: use table or json"
        ))),
    }
}
