//! Attaching the user's terminal (or pipes) to a process's streams.

use std::io::Write;

use anyhow::Result;
use berth_proto::lifecycle::v1 as api;
use berth_proto::types::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use super::client::{Ctx, daemon};
use crate::term;

pub struct Attached {
    output: tonic::Streaming<pb::Chunk>,
    _raw: Option<term::RawMode>,
}

/// Opens the attach stream (before the process starts, so nothing is missed)
/// and starts feeding it stdin and window sizes.
pub async fn open(
    ctx: &Ctx,
    container_id: &str,
    exec_id: &str,
    stdin: bool,
    tty: bool,
) -> Result<Attached> {
    let (tx, rx) = tokio::sync::mpsc::channel::<api::AttachRequest>(16);
    tx.send(api::AttachRequest {
        kind: Some(api::attach_request::Kind::Open(api::AttachOpen {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdin,
            stdout: true,
            stderr: true,
        })),
    })
    .await?;
    let output = ctx
        .tasks()
        .attach(ctx.req(ReceiverStream::new(rx)))
        .await
        .map_err(daemon)?
        .into_inner();
    let raw = if tty && term::is_tty(0) {
        term::RawMode::enter()
    } else {
        None
    };
    if tty {
        let (container_id, exec_id) = (container_id.to_string(), exec_id.to_string());
        let resize = move |tx: tokio::sync::mpsc::Sender<api::AttachRequest>| {
            let (container_id, exec_id) = (container_id.clone(), exec_id.clone());
            async move {
                if let Some((w, h)) = term::size() {
                    let _ = tx
                        .send(api::AttachRequest {
                            kind: Some(api::attach_request::Kind::Resize(api::ResizePtyRequest {
                                container_id,
                                exec_id,
                                width: w as u32,
                                height: h as u32,
                            })),
                        })
                        .await;
                }
            }
        };
        resize(tx.clone()).await;
        let txw = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut s) = signal(SignalKind::window_change()) {
                while s.recv().await.is_some() {
                    resize(txw.clone()).await;
                }
            }
        });
    }
    if stdin {
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx
                            .send(api::AttachRequest {
                                kind: Some(api::attach_request::Kind::CloseStdin(true)),
                            })
                            .await;
                        break;
                    }
                    Ok(n) => {
                        let msg = api::AttachRequest {
                            kind: Some(api::attach_request::Kind::Stdin(buf[..n].to_vec())),
                        };
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    Ok(Attached { output, _raw: raw })
}

impl Attached {
    /// Copies output until the process's streams end.
    pub async fn copy_output(mut self) -> Result<()> {
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        while let Some(chunk) = self.output.message().await.map_err(daemon)? {
            if chunk.stream == pb::chunk::Stream::Stderr as i32 {
                let mut e = stderr.lock();
                e.write_all(&chunk.data)?;
                e.flush()?;
            } else {
                let mut o = stdout.lock();
                o.write_all(&chunk.data)?;
                o.flush()?;
            }
        }
        Ok(())
    }
}
