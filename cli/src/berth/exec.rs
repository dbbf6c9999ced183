//! `berth exec`: a further process in a running container, as `docker exec`
//! runs it (create the exec, start it attached or detached, then read its
//! exit code from the exec's inspect).

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use super::Ctx;
use super::attach::{self, Ended};
use super::client::q;

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", default_value = "", hide_default_value = true)]
    detach_keys: String,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub async fn exec(ctx: &Ctx, mut a: ExecArgs) -> Result<i32> {
    a.detach_keys = ctx.detach_keys(&a.detach_keys);
    if a.tty && a.interactive && !crate::term::is_tty(0) {
        bail!("the input device is not a TTY");
    }
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(super::opts::env_file(f)?);
    }
    // `-e NAME` takes NAME's value from here, and is left out when unset.
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let attach_output = !a.detach;
    let mut body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": attach_output,
        "AttachStderr": attach_output,
        "Tty": a.tty,
        "Env": env,
        "Cmd": a.command,
        "Privileged": a.privileged,
        "User": a.user.clone().unwrap_or_default(),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "DetachKeys": a.detach_keys,
    });
    if a.tty
        && let Some((w, h)) = crate::term::size()
    {
        body["ConsoleSize"] = json!([h, w]);
    }
    let created = ctx
        .client
        .post(
            &format!("/containers/{}/exec", q(&a.container)),
            Some(&body),
        )
        .await?;
    let Some(id) = created["Id"].as_str().map(str::to_string) else {
        bail!("the daemon did not name the exec instance: {created}");
    };
    let start = json!({"Detach": a.detach, "Tty": a.tty, "ConsoleSize": body["ConsoleSize"]});
    if a.detach {
        ctx.client
            .post(&format!("/exec/{id}/start"), Some(&start))
            .await?;
        return Ok(0);
    }
    let conn = ctx
        .client
        .hijack(&format!("/exec/{id}/start"), Some(&start))
        .await?;
    let _resize = a
        .tty
        .then(|| attach::follow_resize(ctx, format!("/exec/{id}")));
    if attach::session(conn, a.tty, a.interactive, &a.detach_keys).await? == Ended::Detached {
        // Docker's CLI ends a detached exec as a failed one (its escape
        // error is not caught there as it is for run and attach).
        eprintln!("\r\nread escape sequence");
        return Ok(1);
    }
    let info = ctx.client.get(&format!("/exec/{id}/json")).await?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}
