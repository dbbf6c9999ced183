//! /containers/{id}/exec and /exec/…: a further process in a running
//! container, as `docker exec` drives it (create, start attached or
//! detached, resize, inspect for the exit code).

use std::sync::Arc;

use crate::api::json::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::State;
use super::query::Params;
use super::stream::{Copied, StdinRules, Streams, hijack, write_line_and_close};
use crate::daemon::Daemon;
use crate::daemon::container::Status;
use crate::daemon::exec::{Exec, ExecConfig};
use crate::daemon::files;
use crate::daemon::spec::replace_or_append_env;
use crate::error::{ApiError, Result};

fn no_such_exec(id: &str) -> ApiError {
    ApiError::not_found(format!("No such exec instance: {id}"))
}

/// POST /containers/{id}/exec
pub async fn create(s: State, Path(id): Path<String>, body: Bytes) -> Result<Response> {
    let d = s.0;
    let config: ExecConfig = super::body::json(&body, "exec configuration")?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if !config.detach_keys.is_empty() {
        // An exec's keys are "escape keys" in dockerd's words.
        super::stream::parse_detach_keys(&config.detach_keys).map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid escape keys ({}) provided",
                config.detach_keys
            ))
        })?;
    }
    let e = d.find(&id)?;
    let c = e.c.lock().await;
    match c.state.status {
        Status::Running => {}
        // dockerd names a paused one as the caller did, a stopped one by id.
        Status::Paused => {
            return Err(ApiError::conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            )));
        }
        _ => {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
    }
    let exec_id = hex::encode(rand::random::<[u8; 32]>());
    let action = exec_action("exec_create", config.cmd.as_deref().unwrap_or_default());
    let x = Exec::new(
        exec_id.clone(),
        c.id.clone(),
        config,
        Some(&c.dir.join("execs")),
    );
    x.save();
    d.execs.insert(Arc::new(x));
    d.container_event(&c, &action, &[("execID", exec_id.clone())]);
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

/// An exec event's action as dockerd writes it: the program, a space,
/// then its arguments (`exec_start: true ` for one without any).
fn exec_action(verb: &str, cmd: &[String]) -> String {
    match cmd.split_first() {
        Some((program, args)) => format!("{verb}: {program} {}", args.join(" ")),
        None => format!("{verb}: "),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<Vec<u32>>,
}

/// POST /exec/{id}/start: detached, or hijacked with the process's output
/// (multiplexed without a terminal) and the client's input.
pub async fn start(s: State, Path(id): Path<String>, req: Request) -> Result<Response> {
    let d = s.0;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    let sb: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        super::body::json(&body, "exec start body")?
    };
    let x = d.execs.get(&id).ok_or_else(|| no_such_exec(&id))?;
    // The process has a terminal if the exec was made with one; the start's
    // Tty only says how the output is framed (raw, or multiplexed), as
    // dockerd reads it.
    let terminal = x.config.tty;
    let tty = sb.tty.unwrap_or(terminal);
    let rules = StdinRules::new(terminal, true, Some(&x.config.detach_keys))
        .map_err(ApiError::bad_request)?;
    // A paused container's exec waits (409) and can start once it is
    // unpaused, as dockerd's.
    if d.find(&x.container_id)
        .is_ok_and(|e| e.c.seen().state.status == Status::Paused)
    {
        return Err(ApiError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            x.container_id
        )));
    }
    {
        let mut st = x.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.started {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        st.started = true;
    }
    // Written ahead of lifecycled hearing of the process: an engine that
    // dies from here on finds the record and asks lifecycled how it went.
    x.save();
    let stdin = x.config.attach_stdin && !sb.detach;
    let console = sb.console_size.or_else(|| x.config.console_size.clone());
    let attached =
        !sb.detach && (x.config.attach_stdin || x.config.attach_stdout || x.config.attach_stderr);

    match register(&d, &x, terminal, stdin, console).await {
        Ok(()) => {}
        // The container stopped meanwhile: an HTTP error, as Docker's.
        Err(err) if err.status == StatusCode::CONFLICT => {
            x.finish(126);
            return Err(err);
        }
        // What the process could not be made of (a user that does not
        // exist…) is reported like a failed start, in its own words as
        // dockerd's (the runtime never saw it).
        Err(err) => return failed_start(&x, parts, attached, tty, err.message),
    }
    if !attached {
        return match start_process(&d, &x).await {
            Ok(()) => {
                tokio::spawn(d.clone().reap_exec(x.clone(), None));
                Ok(StatusCode::OK.into_response())
            }
            Err(m) => {
                let _ = d.delete_exec_process(&x).await;
                failed_start(&x, parts, false, tty, m)
            }
        };
    }
    // Subscribed before the start, so no output is missed.
    let open = api::AttachOpen {
        container_id: x.container_id.clone(),
        exec_id: x.id.clone(),
        stdin,
        stdout: x.config.attach_stdout,
        stderr: x.config.attach_stderr,
    };
    let attachment = Streams::open(&d.lc, open, tty, &rules).await?;
    let req = Request::from_parts(parts, Body::empty());
    Ok(hijack(req, tty, move |io| async move {
        let (rd, mut wr) = tokio::io::split(io);
        // Started only now that the client has our 101: clients that read
        // the 101 through a buffered reader (docker-py) lose whatever
        // arrives with it.
        if let Err(m) = start_process(&d, &x).await {
            let _ = d.delete_exec_process(&x).await;
            x.finish(start_failure_code(&m));
            write_line_and_close(&mut wr, tty, &m).await;
            return;
        }
        // lifecycled forgets the process once it is deleted: not before its
        // output has reached the client.
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(d.clone().reap_exec(x.clone(), Some(drained_rx)));
        let _drained = drained_tx;
        match attachment
            .relay(stdin.then_some(rd), &mut wr, tty, rules)
            .await
        {
            Copied::Gone => return,
            // dockerd says why the stream ends, then ends it; the process
            // runs on.
            Copied::Detached => {
                let msg = "exec attach failed: error on attach stdin: read escape sequence";
                write_line_and_close(&mut wr, tty, msg).await;
                return;
            }
            Copied::Done => {}
        }
        // The exit code is recorded before the client asks for it.
        let mut done = x.done.subscribe();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), done.wait_for(|d| *d)).await;
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    }))
}

/// Starts the registered process; the runtime's reason when it cannot.
async fn start_process(d: &Arc<Daemon>, x: &Exec) -> std::result::Result<(), String> {
    let pid =
        d.lc.tasks()
            .start(d.lc.req(api::ProcessRequest {
                container_id: x.container_id.clone(),
                exec_id: x.id.clone(),
            }))
            .await
            .map_err(|st| st.message().to_string())?
            .into_inner()
            .pid;
    berth_fault::point("berthd:exec.after-process-start");
    x.update(|s| {
        s.running = true;
        s.pid = pid;
    });
    if let Ok(e) = d.find(&x.container_id) {
        let c = e.c.lock().await;
        let action = exec_action("exec_start", x.config.cmd.as_deref().unwrap_or_default());
        d.container_event(&c, &action, &[("execID", x.id.clone())]);
    }
    Ok(())
}

/// Docker's exit codes for a process that could not start: 127 when the
/// command was not found, 126 otherwise.
fn start_failure_code(_message: &str) -> i32 {
    // dockerd 20.10 ends every exec the runtime could not start with 126,
    // a command not found included (`run` tells 127 from 126; exec not).
    126
}

/// A process that could not start: its exit code is 126, as dockerd
/// 20.10 gives it; an attached client reads
/// the reason in its stream, a detached one gets it as the error.
fn failed_start(
    x: &Exec,
    parts: axum::http::request::Parts,
    attached: bool,
    tty: bool,
    text: String,
) -> Result<Response> {
    x.finish(start_failure_code(&text));
    if !attached {
        // A command that is missing or cannot be run is the caller's
        // mistake (400), as dockerd tells it; anything else the engine's.
        return Err(if crate::daemon::ops::exit_code_for(&text) == 128 {
            ApiError::internal(text)
        } else {
            ApiError::bad_request(text)
        });
    }
    let req = Request::from_parts(parts, Body::empty());
    Ok(hijack(req, tty, move |io| async move {
        let (_, mut wr) = tokio::io::split(io);
        write_line_and_close(&mut wr, tty, &text).await;
    }))
}

/// Registers the process with lifecycled: the container's process spec
/// with the exec's command, terminal, env, working dir, user and privileges.
async fn register(
    d: &Arc<Daemon>,
    x: &Exec,
    tty: bool,
    stdin: bool,
    console: Option<Vec<u32>>,
) -> Result<()> {
    let mut p = d.lc.process_spec(&x.container_id).await?;
    let cfg = &x.config;
    p["args"] = json!(cfg.cmd.clone().unwrap_or_default());
    p["terminal"] = json!(tty);
    let base: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    p["env"] = json!(replace_or_append_env(
        base,
        cfg.env.as_deref().unwrap_or(&[])
    ));
    if !cfg.working_dir.is_empty() {
        p["cwd"] = json!(cfg.working_dir);
    }
    if !cfg.user.is_empty() {
        // The container's --group-add holds for its execs' users too, as
        // dockerd's.
        let group_add = match d.find(&x.container_id) {
            Ok(e) => e.c.lock().await.host_config.group_add.to_vec(),
            Err(_) => Vec::new(),
        };
        let (uid, gid, groups) =
            files::resolve_user(&d.lc, &x.container_id, &cfg.user, &group_add).await?;
        p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": groups});
    }
    if cfg.privileged {
        let all: Vec<&str> = specgen::defaults::ALL_CAPS.to_vec();
        p["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all, "inheritable": all, "ambient": [],
        });
    }
    if let Some(c) = &console {
        p["consoleSize"] = json!({"height": c.first().copied().unwrap_or(0), "width": c.get(1).copied().unwrap_or(0)});
    }
    let size = console.unwrap_or_default();
    d.lc.tasks()
        .exec(d.lc.req(api::ExecRequest {
            container_id: x.container_id.clone(),
            exec_id: x.id.clone(),
            spec: p.to_string().into_bytes(),
            stdio: Some(pb::Stdio {
                stdin,
                terminal: tty,
                console_height: size.first().copied().unwrap_or(0),
                console_width: size.get(1).copied().unwrap_or(0),
                ..Default::default()
            }),
        }))
        .await
        .map_err(|st| {
            if st.code() == tonic::Code::NotFound || st.code() == tonic::Code::FailedPrecondition {
                ApiError::conflict(format!("Container {} is not running", x.container_id))
            } else {
                st.into()
            }
        })?;
    Ok(())
}

/// GET /exec/{id}/json
pub async fn inspect(s: State, Path(id): Path<String>) -> Result<Json<Value>> {
    let x = s.0.execs.get(&id).ok_or_else(|| no_such_exec(&id))?;
    let st = x.state();
    let cmd = x.config.cmd.clone().unwrap_or_default();
    let mut process = json!({
        "tty": x.config.tty,
        "entrypoint": cmd.first(),
        "arguments": cmd.get(1..).unwrap_or(&[]),
        "privileged": x.config.privileged,
    });
    // dockerd leaves out a user the exec was not given (omitempty).
    if !x.config.user.is_empty() {
        process["user"] = json!(x.config.user);
    }
    Ok(Json(json!({
        "ID": x.id,
        "ContainerID": x.container_id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "Pid": st.pid,
        "CanRemove": false,
        "DetachKeys": x.config.detach_keys,
        "OpenStdin": x.config.attach_stdin,
        "OpenStdout": x.config.attach_stdout,
        "OpenStderr": x.config.attach_stderr,
        "ProcessConfig": process,
    })))
}

/// POST /exec/{id}/resize?h=&w=
pub async fn resize(s: State, Path(id): Path<String>, Query(q): Query<Params>) -> Result<Response> {
    let d = s.0;
    let (h, w) = super::containers::terminal_size(&q)?;
    let x = d.execs.get(&id).ok_or_else(|| no_such_exec(&id))?;
    if !x.state().running {
        return Err(ApiError::conflict(format!("Exec {id} is not running")));
    }
    d.lc.tasks()
        .resize_pty(d.lc.req(api::ResizePtyRequest {
            container_id: x.container_id.clone(),
            exec_id: x.id.clone(),
            width: w,
            height: h,
        }))
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::exec_action;

    #[test]
    fn exec_actions_are_worded_as_dockerd_writes_them() {
        let cmd = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exec_action("exec_start", &cmd(&["true"])),
            "exec_start: true "
        );
        assert_eq!(
            exec_action("exec_create", &cmd(&["sh", "-c", "echo hi"])),
            "exec_create: sh -c echo hi"
        );
    }
}
