//! Kubernetes' remote-command protocol (`kubectl exec` and `attach`) on
//! either transport: the client's stdin and terminal sizes go to the
//! process through its shim, its output comes back on stdout and stderr,
//! and how it ended goes out last on the error stream.

use std::sync::Arc;

use berth_proto::cri::v1 as cri;
use berth_proto::lifecycle::v1 as api;
use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::status::Outcome;
use super::{Body, STREAM_CREATION_TIMEOUT, header_list, plain, spdy, websocket};
use crate::cri::{Cri, NAMESPACE, container_meta, new_id};

pub enum Target {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
}

/// Which streams the client asked for.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Target {
    pub fn opts(&self) -> Opts {
        match self {
            Target::Exec(r) => Opts {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                tty: r.tty,
            },
            Target::Attach(r) => Opts {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                tty: r.tty,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Out {
    Stdout,
    Stderr,
}

/// The client's end of a session, whichever transport carries it.
pub struct Client {
    /// What the client types; the channel ends when it closes its stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Terminal sizes (width, height).
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
    pub out: mpsc::Sender<(Out, Vec<u8>)>,
    /// Fires when the client has gone.
    pub gone: oneshot::Receiver<()>,
}

/// The remote-command protocols over SPDY, newest first, as the kubelet
/// offers them (v5 exists over WebSockets only).
const SPDY_PROTOCOLS: [(&str, u8); 4] = [
    ("v4.channel.k8s.io", 4),
    ("v3.channel.k8s.io", 3),
    ("v2.channel.k8s.io", 2),
    ("channel.k8s.io", 1),
];

pub fn serve(cri: Arc<Cri>, req: Request<Incoming>, target: Target) -> Response<Body> {
    if websocket::is_upgrade(&req) {
        return websocket::remote_command(cri, req, target);
    }
    let Some(version) = negotiate_spdy(&req, &SPDY_PROTOCOLS) else {
        return spdy_refusal(&req, &SPDY_PROTOCOLS);
    };
    let (name, version) = version;
    let opts = target.opts();
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => spdy_session(cri, io, target, opts, version).await,
            Err(e) => tracing::debug!("SPDY upgrade: {e}"),
        }
    });
    spdy_switch(name)
}

/// The protocol both sides speak: the first of the client's the server
/// knows, as the kubelet's handshake picks it.
pub fn negotiate_spdy(
    req: &Request<Incoming>,
    known: &[(&'static str, u8)],
) -> Option<(&'static str, u8)> {
    let upgrade = header_list(req, "upgrade");
    if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        return None;
    }
    header_list(req, "x-stream-protocol-version")
        .iter()
        .find_map(|p| known.iter().find(|(n, _)| n == p).copied())
}

pub fn spdy_refusal(req: &Request<Incoming>, known: &[(&str, u8)]) -> Response<Body> {
    let upgrade = header_list(req, "upgrade");
    if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        return plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request: the connection must be upgraded to SPDY/3.1 or a WebSocket",
        );
    }
    let offered = header_list(req, "x-stream-protocol-version");
    let server: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
    let mut r = plain(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {server:?}"
        ),
    );
    if let Ok(v) = server.join(", ").parse() {
        r.headers_mut()
            .insert("x-accepted-stream-protocol-versions", v);
    }
    r
}

pub fn spdy_switch(protocol: &str) -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("SPDY/3.1"),
    );
    if let Ok(v) = protocol.parse() {
        h.insert("x-stream-protocol-version", v);
    }
    r
}

/// Reads the terminal sizes the client sends as consecutive JSON objects
/// (`{"Width":80,"Height":24}`) into `tx`.
pub async fn resize_events(mut rx: mpsc::Receiver<Vec<u8>>, tx: mpsc::Sender<(u16, u16)>) {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    let mut buf = Vec::new();
    while let Some(data) = rx.recv().await {
        buf.extend_from_slice(&data);
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Size>();
        let mut used = 0;
        loop {
            match it.next() {
                Some(Ok(s)) => {
                    used = it.byte_offset();
                    if tx.send((s.width, s.height)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    tracing::debug!("resize stream: {e}");
                    return;
                }
                None => {
                    used = buf.len();
                    break;
                }
            }
        }
        buf.drain(..used);
    }
}

async fn spdy_session(
    cri: Arc<Cri>,
    io: hyper::upgrade::Upgraded,
    target: Target,
    opts: Opts,
    version: u8,
) {
    let (mut streams, tx) = spdy::serve(hyper_util::rt::TokioIo::new(io));
    let wanted = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && version >= 3);
    let mut got: Vec<spdy::Stream> = Vec::new();
    let collect = async {
        while got.len() < wanted {
            match streams.recv().await {
                Some(s) => got.push(s),
                None => return false,
            }
        }
        true
    };
    match tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracing::debug!("SPDY exec: timed out waiting for client to create streams");
            tx.go_away(0).await;
            return;
        }
    }
    let last = got.iter().map(|s| s.id).max().unwrap_or(0);
    let mut ids = std::collections::HashMap::new();
    let (mut stdin, mut resize) = (None, None);
    for s in got {
        let kind = s.header("streamtype").unwrap_or("").to_string();
        ids.insert(kind.clone(), s.id);
        match kind.as_str() {
            "stdin" => stdin = Some(s.data),
            "resize" => resize = Some(s.data),
            _ => {}
        }
    }
    let Some(&error_id) = ids.get("error") else {
        tracing::debug!("SPDY exec: the client opened no error stream");
        tx.go_away(last).await;
        return;
    };
    let resize = resize.map(|rx| {
        let (rtx, rrx) = mpsc::channel(4);
        tokio::spawn(resize_events(rx, rtx));
        rrx
    });
    let (out_tx, mut out_rx) = mpsc::channel::<(Out, Vec<u8>)>(16);
    let (gone_tx, gone) = oneshot::channel();
    // The connection's end (its reader stops) is the client going away.
    tokio::spawn(async move {
        while streams.recv().await.is_some() {}
        let _ = gone_tx.send(());
    });
    let writer = {
        let tx = tx.clone();
        let (stdout, stderr) = (ids.get("stdout").copied(), ids.get("stderr").copied());
        tokio::spawn(async move {
            while let Some((which, data)) = out_rx.recv().await {
                let id = match which {
                    Out::Stdout => stdout,
                    Out::Stderr => stderr,
                };
                if let Some(id) = id
                    && !tx.data(id, data).await
                {
                    return;
                }
            }
        })
    };
    let client = Client {
        stdin,
        resize,
        out: out_tx,
        gone,
    };
    let outcome = run(&cri, target, opts, client).await;
    let _ = writer.await;
    if let Some(bytes) = outcome.encode(version) {
        tx.data(error_id, bytes).await;
    }
    for id in ids.values() {
        tx.close(*id).await;
    }
    tx.go_away(last).await;
}

/// Runs the session: the exec's or the container's streams joined to the
/// client's until the process is done (or the client is).
pub async fn run(cri: &Cri, target: Target, opts: Opts, client: Client) -> Outcome {
    match target {
        Target::Exec(r) => exec(cri, r, opts, client).await,
        Target::Attach(r) => attach(cri, r, opts, client).await,
    }
}

async fn exec(cri: &Cri, req: cri::ExecRequest, opts: Opts, client: Client) -> Outcome {
    let r = match cri.running(&req.container_id) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.message().to_string()),
    };
    let id = r.id.clone();
    let spec: serde_json::Value = serde_json::from_str(&r.spec).unwrap_or_default();
    let mut process = spec["process"].clone();
    process["args"] = json!(req.cmd);
    process["terminal"] = json!(opts.tty);
    let exec_id = match new_id() {
        Ok(i) => format!("exec-{}", &i[..16]),
        Err(e) => return Outcome::Failed(e.message().to_string()),
    };
    let created = cri
        .tasks
        .exec(
            NAMESPACE,
            api::ExecRequest {
                container_id: id.clone(),
                exec_id: exec_id.clone(),
                spec: process.to_string().into_bytes(),
                stdio: Some(pb::Stdio {
                    stdin: opts.stdin,
                    terminal: opts.tty,
                    ..Default::default()
                }),
            },
        )
        .await;
    if let Err(e) = created {
        return Outcome::Failed(format!("failed to exec in container: {}", e.message()));
    }
    let ran = join(cri, &id, &exec_id, opts, client, true).await;
    let outcome = match ran {
        Err(e) => {
            cri.kill_exec(&id, &exec_id).await;
            Outcome::Failed(e)
        }
        Ok(()) => match cri.tasks.wait(NAMESPACE, &id, &exec_id).await {
            Ok(exit) if exit.exit_status == 0 => Outcome::Success,
            Ok(exit) => Outcome::Exited {
                code: exit.exit_status as i32,
                cmd: req.cmd.clone(),
            },
            Err(e) => Outcome::Failed(e.message().to_string()),
        },
    };
    let _ = cri.tasks.delete(NAMESPACE, &id, &exec_id).await;
    outcome
}

async fn attach(cri: &Cri, req: cri::AttachRequest, opts: Opts, client: Client) -> Outcome {
    let r = match cri.running(&req.container_id) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.message().to_string()),
    };
    let m = container_meta(&r).unwrap_or_default();
    // The container's stdin is there only if its config asked for one;
    // closing the attached client's stdin closes the container's only
    // when the container wanted that (stdin_once).
    let opts = Opts {
        stdin: opts.stdin && m.stdin,
        stderr: opts.stderr && !m.tty,
        ..opts
    };
    match join(cri, &r.id, "", opts, client, m.stdin_once).await {
        Ok(()) => Outcome::Success,
        Err(e) => Outcome::Failed(e),
    }
}

/// Joins the client to process `exec_id` of `id` through the shim's
/// attach stream; returns when the process's output has ended. For an
/// exec, the process is started once the client is joined, so no output
/// is lost.
async fn join(
    cri: &Cri,
    id: &str,
    exec_id: &str,
    opts: Opts,
    client: Client,
    close_stdin_at_end: bool,
) -> Result<(), String> {
    let task = cri
        .tasks
        .get(NAMESPACE, id)
        .map_err(|e| e.message().to_string())?;
    let (req_tx, req_rx) = mpsc::channel::<shim::AttachRequest>(16);
    let open = shim::AttachRequest {
        kind: Some(shim::attach_request::Kind::Open(shim::AttachOpen {
            exec_id: exec_id.to_string(),
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        })),
    };
    req_tx
        .send(open)
        .await
        .map_err(|_| "the attach stream closed".to_string())?;
    let mut output = task
        .client
        .clone()
        .attach(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await
        .map_err(|e| format!("attaching to the process: {}", e.message()))?
        .into_inner();
    if !exec_id.is_empty() {
        cri.tasks
            .start(NAMESPACE, id, exec_id)
            .await
            .map_err(|e| format!("starting the command: {}", e.message()))?;
    }
    let Client {
        stdin,
        resize,
        out,
        mut gone,
    } = client;
    let input = {
        let req_tx = req_tx.clone();
        let exec_id = exec_id.to_string();
        async move {
            let stdin_open = stdin.is_some() && opts.stdin;
            let (mut stdin, mut resize) = (stdin, resize);
            let mut stdin_done = !stdin_open;
            loop {
                tokio::select! {
                    data = async { stdin.as_mut()?.recv().await }, if !stdin_done => match data {
                        Some(d) => {
                            let k = shim::attach_request::Kind::Stdin(d);
                            if req_tx.send(shim::AttachRequest { kind: Some(k) }).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            stdin_done = true;
                            if close_stdin_at_end {
                                let k = shim::attach_request::Kind::CloseStdin(true);
                                let _ = req_tx.send(shim::AttachRequest { kind: Some(k) }).await;
                            }
                        }
                    },
                    size = async { resize.as_mut()?.recv().await }, if resize.is_some() => match size {
                        Some((w, h)) => {
                            let k = shim::attach_request::Kind::Resize(shim::ResizePtyRequest {
                                exec_id: exec_id.clone(),
                                width: u32::from(w),
                                height: u32::from(h),
                            });
                            if req_tx.send(shim::AttachRequest { kind: Some(k) }).await.is_err() {
                                return;
                            }
                        }
                        None => resize = None,
                    },
                    else => std::future::pending::<()>().await,
                }
            }
        }
    };
    let input = tokio::spawn(input);
    let relay = async {
        loop {
            let chunk = tokio::select! {
                c = output.message() => c,
                _ = &mut gone => return Err("the client went away".to_string()),
            };
            match chunk {
                Ok(Some(c)) => {
                    let which = if c.stream == pb::chunk::Stream::Stderr as i32 {
                        Out::Stderr
                    } else {
                        Out::Stdout
                    };
                    if out.send((which, c.data)).await.is_err() {
                        return Err("the client went away".to_string());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("the process's output: {}", e.message())),
            }
        }
    };
    let r = relay.await;
    input.abort();
    drop(req_tx);
    r
}
