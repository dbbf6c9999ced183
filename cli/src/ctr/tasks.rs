//! `berth-ctr tasks …`

use std::str::FromStr;

use anyhow::{Context, Result};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use clap::Subcommand;

use super::attach;
use super::client::{Ctx, daemon, time};
use crate::table;

#[derive(Subcommand)]
pub enum Cmd {
    /// Create the container's task and start it; attach unless --detach
    Start {
        #[arg(short, long)]
        detach: bool,
        id: String,
    },
    /// List tasks
    #[command(visible_alias = "ls")]
    List {
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Send a signal (name or number) to a task or one of its execs
    Kill {
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        /// Every process in the container
        #[arg(short, long)]
        all: bool,
        #[arg(long, default_value = "")]
        exec_id: String,
        id: String,
    },
    /// Run another process in a running task
    Exec {
        #[arg(long, required = true)]
        exec_id: String,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        cwd: Option<String>,
        /// UID[:GID]
        #[arg(short, long)]
        user: Option<String>,
        #[arg(long = "env")]
        env: Vec<String>,
        id: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Processes of a task
    Ps { id: String },
    /// Attach to a running task's streams
    Attach { id: String },
    /// Delete a stopped task (or an exec); --force kills it first
    #[command(visible_alias = "rm")]
    Delete {
        #[arg(short, long)]
        force: bool,
        #[arg(long, default_value = "")]
        exec_id: String,
        id: String,
    },
    /// Wait for a task (or exec) to exit; exits with its status
    Wait {
        #[arg(long, default_value = "")]
        exec_id: String,
        id: String,
    },
    /// Resource usage, as JSON
    Stats { id: String },
    /// Freeze a task
    Pause { id: String },
    /// Thaw a task
    Resume { id: String },
}

pub fn parse_signal(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|s| s as u32)
        .with_context(|| format!("unknown signal {s:?}"))
}

fn status_name(s: i32) -> &'static str {
    match pb::Status::try_from(s).unwrap_or(pb::Status::Unknown) {
        pb::Status::Created => "created",
        pb::Status::Running => "running",
        pb::Status::Stopped => "stopped",
        pb::Status::Paused => "paused",
        pb::Status::Unknown => "unknown",
    }
}

/// Creates the task, attaches (unless detached), starts it and waits: the
/// exit status of the process, or 0 when detached.
pub async fn start_task(ctx: &Ctx, id: &str, detach: bool) -> Result<i32> {
    let container = ctx
        .containers()
        .get(ctx.req(api::ContainerRequest { id: id.into() }))
        .await
        .map_err(daemon)?
        .into_inner();
    let spec: serde_json::Value = serde_json::from_slice(&container.spec).unwrap_or_default();
    let tty = spec["process"]["terminal"].as_bool().unwrap_or(false);
    let (w, h) = crate::term::size().unwrap_or((80, 24));
    let mut t = ctx.tasks();
    t.create(ctx.req(api::CreateTaskRequest {
        container_id: id.into(),
        stdio: Some(pb::Stdio {
            stdin: !detach,
            terminal: tty,
            console_width: w as u32,
            console_height: h as u32,
            ..Default::default()
        }),
    }))
    .await
    .map_err(daemon)?;
    run_process(ctx, id, "", !detach, tty, detach).await
}

/// Attach (unless detached), start, copy output, wait.
pub async fn run_process(
    ctx: &Ctx,
    id: &str,
    exec_id: &str,
    stdin: bool,
    tty: bool,
    detach: bool,
) -> Result<i32> {
    let mut t = ctx.tasks();
    let attached = if detach {
        None
    } else {
        Some(attach::open(ctx, id, exec_id, stdin, tty).await?)
    };
    t.start(ctx.req(api::ProcessRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
    }))
    .await
    .map_err(daemon)?;
    let Some(attached) = attached else {
        return Ok(0);
    };
    attached.copy_output().await?;
    let exit = t
        .wait(ctx.req(api::ProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        }))
        .await
        .map_err(daemon)?
        .into_inner();
    Ok(exit.exit_status as i32)
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    let mut t = ctx.tasks();
    match cmd {
        Cmd::Start { detach, id } => return start_task(ctx, &id, detach).await,
        Cmd::List { format } => {
            let tasks = t
                .list(ctx.req(api::ListTasksRequest::default()))
                .await
                .map_err(daemon)?
                .into_inner()
                .tasks;
            if format == "json" {
                let v: Vec<_> = tasks
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "id": p.container_id, "pid": p.pid, "status": status_name(p.status),
                            "exitStatus": p.exit_status, "exitedAt": time(&p.exited_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = tasks
                    .iter()
                    .map(|p| {
                        let status = if p.status == pb::Status::Stopped as i32 {
                            format!("stopped ({})", p.exit_status)
                        } else {
                            status_name(p.status).to_string()
                        };
                        vec![p.container_id.clone(), p.pid.to_string(), status]
                    })
                    .collect();
                print!("{}", table::render(&["TASK", "PID", "STATUS"], &rows));
            }
        }
        Cmd::Kill {
            signal,
            all,
            exec_id,
            id,
        } => {
            t.kill(ctx.req(api::KillRequest {
                container_id: id,
                exec_id,
                signal: parse_signal(&signal)?,
                all,
            }))
            .await
            .map_err(daemon)?;
        }
        Cmd::Exec {
            exec_id,
            tty,
            detach,
            cwd,
            user,
            env,
            id,
            command,
        } => {
            let container = ctx
                .containers()
                .get(ctx.req(api::ContainerRequest { id: id.clone() }))
                .await
                .map_err(daemon)?
                .into_inner();
            let spec: serde_json::Value = serde_json::from_slice(&container.spec)?;
            let mut process = spec["process"].clone();
            process["args"] = serde_json::json!(command);
            process["terminal"] = serde_json::json!(tty);
            if let Some(cwd) = cwd {
                process["cwd"] = serde_json::json!(cwd);
            }
            if let Some(u) = user {
                let (uid, gid) = u.split_once(':').unwrap_or((&u, "0"));
                process["user"] = serde_json::json!({
                    "uid": uid.parse::<u32>().with_context(|| format!("--user {u}: UID[:GID]"))?,
                    "gid": gid.parse::<u32>().with_context(|| format!("--user {u}: UID[:GID]"))?,
                });
            }
            if let Some(e) = process["env"].as_array_mut() {
                e.extend(env.into_iter().map(serde_json::Value::from));
            }
            let (w, h) = crate::term::size().unwrap_or((80, 24));
            t.exec(ctx.req(api::ExecRequest {
                container_id: id.clone(),
                exec_id: exec_id.clone(),
                spec: process.to_string().into_bytes(),
                stdio: Some(pb::Stdio {
                    stdin: !detach,
                    terminal: tty,
                    console_width: w as u32,
                    console_height: h as u32,
                    ..Default::default()
                }),
            }))
            .await
            .map_err(daemon)?;
            let code = run_process(ctx, &id, &exec_id, !detach, tty, detach).await?;
            if !detach {
                let _ = t
                    .delete(ctx.req(api::ProcessRequest {
                        container_id: id,
                        exec_id,
                    }))
                    .await;
            }
            return Ok(code);
        }
        Cmd::Ps { id } => {
            let procs = t
                .pids(ctx.req(api::ContainerRequest { id }))
                .await
                .map_err(daemon)?
                .into_inner()
                .processes;
            let rows: Vec<Vec<String>> = procs
                .iter()
                .map(|p| {
                    vec![
                        p.pid.to_string(),
                        if p.exec_id.is_empty() {
                            "-".into()
                        } else {
                            p.exec_id.clone()
                        },
                    ]
                })
                .collect();
            print!("{}", table::render(&["PID", "EXEC"], &rows));
        }
        Cmd::Attach { id } => {
            let p = t
                .get(ctx.req(api::ProcessRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            attach::open(ctx, &id, "", p.stdin, p.terminal)
                .await?
                .copy_output()
                .await?;
            let exit = t
                .wait(ctx.req(api::ProcessRequest {
                    container_id: id,
                    exec_id: String::new(),
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            return Ok(exit.exit_status as i32);
        }
        Cmd::Delete { force, exec_id, id } => {
            if force {
                let _ = t
                    .kill(ctx.req(api::KillRequest {
                        container_id: id.clone(),
                        exec_id: exec_id.clone(),
                        signal: 9,
                        all: exec_id.is_empty(),
                    }))
                    .await;
                let _ = t
                    .wait(ctx.req(api::ProcessRequest {
                        container_id: id.clone(),
                        exec_id: exec_id.clone(),
                    }))
                    .await;
            }
            let r = t
                .delete(ctx.req(api::ProcessRequest {
                    container_id: id,
                    exec_id,
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            println!("exited with {}", r.exit_status);
        }
        Cmd::Wait { exec_id, id } => {
            let exit = t
                .wait(ctx.req(api::ProcessRequest {
                    container_id: id,
                    exec_id,
                }))
                .await
                .map_err(daemon)?
                .into_inner();
            println!("{}", exit.exit_status);
            return Ok(exit.exit_status as i32);
        }
        Cmd::Stats { id } => {
            let s = t
                .stats(ctx.req(api::ContainerRequest { id }))
                .await
                .map_err(daemon)?
                .into_inner();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "cpuUsageNs": s.cpu_usage_total, "memoryUsage": s.memory_usage,
                    "memoryLimit": s.memory_limit, "pids": s.pids_current, "pidsLimit": s.pids_limit,
                }))?
            );
        }
        Cmd::Pause { id } => {
            t.pause(ctx.req(api::ContainerRequest { id }))
                .await
                .map_err(daemon)?;
        }
        Cmd::Resume { id } => {
            t.resume(ctx.req(api::ContainerRequest { id }))
                .await
                .map_err(daemon)?;
        }
    }
    Ok(0)
}
