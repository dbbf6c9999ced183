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

use super::containers::AttachPlan;
use super::query::Params;
use super::stream::forward_stdin;
use super::{ClientVersion, State};
use crate::error::Result;

pub async fn attach_ws(
    s: State,
    Path(id): Path<String>,
    Query(q): Query<Params>,
    Extension(version): Extension<ClientVersion>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let plan = AttachPlan::new(s.0, &id, &q, false).await?;
    let binary = version.0.is_none_or(|(v, _)| v >= (1, 42));
    Ok(ws.on_upgrade(move |socket: WebSocket| async move {
        let (mut sink, mut incoming) = socket.split();
        let message = |data: Vec<u8>| {
            if binary {
                Message::Binary(data.into())
            } else {
                Message::Text(String::from_utf8_lossy(&data).into_owned().into())
            }
        };
        for line in plan.replay(true).await {
            if sink.send(message(line)).await.is_err() {
                return;
            }
        }
        plan.announce();
        if !plan.stream {
            let _ = sink.close().await;
            return;
        }
        let (want_stdin, rules, id) = (plan.stdin, plan.rules.clone(), plan.e_id());
        let (in_tx, in_rx) = tokio::sync::mpsc::channel::<api::AttachRequest>(16);
        let mut output = match plan.open(in_rx).await {
            Ok(o) => o,
            Err(err) => {
                tracing::debug!("attach/ws {id}: {}", err.message);
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
                // Without stdin, or once it is closed: read and dropped, so
                // that a Close is still seen.
                if want_stdin {
                    let _ = pipe_wr.write_all(&data).await;
                }
            }
        });
        // Fused: the loop polls it again after it ended unsent (stdin
        // closed), and a oneshot panics when polled after its end.
        let mut ended =
            want_stdin.then(|| futures::FutureExt::fuse(forward_stdin(pipe_rd, in_tx, rules)));
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
