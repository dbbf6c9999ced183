//! GET /containers/{id}/attach/ws: a container's stdio over a WebSocket,
//! for browsers and other clients that cannot hijack HTTP. As Docker: the
//! output unmultiplexed, one message per chunk (binary from API 1.42, text
//! before), the client's messages as stdin under the same rules as attach.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, Query};
use axum::response::Response;
use berth_proto::lifecycle::v1 as api;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

use super::containers::{encode_line, open_task_attach, wait_for_start};
use super::query::{Params, flag};
use super::stream::{StdinRules, forward_stdin};
use super::{ClientVersion, State};
use crate::daemon::container::Status;
use crate::daemon::logs;
use crate::error::{ApiError, Result};

pub async fn attach_ws(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
    Extension(version): Extension<ClientVersion>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let d = s.0;
    let e = d.find(&id)?;
    let (tty, open_stdin, stdin_once, log_path) = {
        let c = e.c.lock().await;
        if matches!(c.state.status, Status::Removing | Status::Dead) {
            return Err(ApiError::conflict(
                "You cannot attach to a stopped container, start it first".to_string(),
            ));
        }
        (
            c.config.tty,
            c.config.open_stdin,
            c.config.stdin_once,
            c.log_path(),
        )
    };
    let want_stdin = flag(&q, "stdin") && open_stdin;
    let (want_stdout, want_stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    let (replay, stream) = (flag(&q, "logs"), flag(&q, "stream"));
    let rules = StdinRules::new(tty, stdin_once, q.get("detachKeys").map(String::as_str))
        .map_err(ApiError::bad_request)?;
    let binary = version.0.is_none_or(|(v, _)| v >= (1, 42));
    let waiter = if stream {
        wait_for_start(&e).await
    } else {
        None
    };
    Ok(ws.on_upgrade(move |socket: WebSocket| async move {
        let (mut sink, mut incoming) = socket.split();
        let message = |data: Vec<u8>| {
            if binary {
                Message::Binary(data.into())
            } else {
                Message::Text(String::from_utf8_lossy(&data).into_owned().into())
            }
        };
        if replay {
            let o = logs::Options {
                stdout: want_stdout,
                stderr: want_stderr,
                ..Default::default()
            };
            for l in logs::read_all(&log_path, &o) {
                if sink
                    .send(message(encode_line(&l, true, false)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if !stream {
            let _ = sink.close().await;
            return;
        }
        let (in_tx, in_rx) = tokio::sync::mpsc::channel::<api::AttachRequest>(16);
        let mut output =
            match open_task_attach(&d, &e, waiter, want_stdin, want_stdout, want_stderr, in_rx)
                .await
            {
                Ok(o) => o,
                Err(err) => {
                    tracing::debug!("attach/ws {}: {}", e.id, err.message);
                    let _ = sink.close().await;
                    return;
                }
            };
        // The client's messages become a byte stream, so that detach keys
        // and EOF follow the same rules as a hijacked attach.
        let (pipe_rd, mut pipe_wr) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            while let Some(Ok(m)) = incoming.next().await {
                let data = match m {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) => t.as_bytes().to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if !want_stdin || pipe_wr.write_all(&data).await.is_err() {
                    continue;
                }
            }
        });
        let mut ended = want_stdin.then(|| forward_stdin(pipe_rd, in_tx, rules));
        loop {
            let chunk = match ended.as_mut() {
                Some(rx) => tokio::select! {
                    m = output.message() => m,
                    Ok(()) = rx => break,
                },
                None => output.message().await,
            };
            match chunk {
                Ok(Some(c)) => {
                    if sink.send(message(c.data)).await.is_err() {
                        return;
                    }
                }
                _ => break,
            }
        }
        let _ = sink.close().await;
    }))
}
