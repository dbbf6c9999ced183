//! Docker's stream formats: the 8-byte multiplexed frame, and hijacking an
//! HTTP connection (`Upgrade: tcp` → 101) for attach and exec.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One multiplexed frame: stream, three zero bytes, big-endian length, data.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Bytes for the client: raw with a terminal, else in a frame of its stream.
pub fn for_client(chunk: berth_proto::types::v1::Chunk, tty: bool) -> Vec<u8> {
    if tty {
        chunk.data
    } else {
        let s = if chunk.stream == berth_proto::types::v1::chunk::Stream::Stderr as i32 {
            STDERR
        } else {
            STDOUT
        };
        frame(s, &chunk.data)
    }
}

/// Copies a process's output to the client until it ends; false when the
/// client went away.
pub async fn copy_output<W: tokio::io::AsyncWrite + Unpin>(
    output: &mut tonic::Streaming<berth_proto::types::v1::Chunk>,
    wr: &mut W,
    tty: bool,
) -> bool {
    use tokio::io::AsyncWriteExt;
    while let Ok(Some(chunk)) = output.message().await {
        if wr.write_all(&for_client(chunk, tty)).await.is_err() {
            return false;
        }
    }
    true
}

/// Forwards the client's input to a process as attach requests; when the
/// client half-closes (or goes), the process's stdin is closed.
pub fn forward_stdin<R>(
    mut rd: R,
    tx: tokio::sync::mpsc::Sender<berth_proto::lifecycle::v1::AttachRequest>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use berth_proto::lifecycle::v1::{AttachRequest, attach_request::Kind};
    use tokio::io::AsyncReadExt;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let kind = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => Kind::CloseStdin(true),
                Ok(n) => Kind::Stdin(buf[..n].to_vec()),
            };
            let last = matches!(kind, Kind::CloseStdin(_));
            if tx.send(AttachRequest { kind: Some(kind) }).await.is_err() || last {
                break;
            }
        }
    });
}

/// A line of text as the only output of a stream, then the end.
pub async fn write_line_and_close<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    tty: bool,
    text: &str,
) {
    use tokio::io::AsyncWriteExt;
    let line = format!("{text}\r\n");
    let data = if tty {
        line.into_bytes()
    } else {
        frame(STDOUT, line.as_bytes())
    };
    let _ = wr.write_all(&data).await;
    let _ = wr.shutdown().await;
}

pub fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Answers 101 and hands the raw connection to `f` once hyper lets go of it.
pub fn hijack<F, Fut>(mut req: Request, tty: bool, f: F) -> Response
where
    F: FnOnce(TokioIo<Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => f(TokioIo::new(up)).await,
            Err(e) => tracing::debug!("hijack: {e}"),
        }
    });
    let mut b = Response::builder().header(header::CONTENT_TYPE, content_type(tty));
    b = if wants_upgrade {
        b.status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
    } else {
        b.status(StatusCode::OK)
    };
    b.body(Body::empty()).unwrap_or_default()
}

/// A stream of lifecycled's data chunks (archives, exports) as an HTTP
/// body; an error midway ends the body with it.
pub fn chunk_body(mut s: tonic::Streaming<berth_proto::lifecycle::v1::Chunk>) -> Body {
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::result::Result<axum::body::Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            match s.message().await {
                Ok(Some(c)) => {
                    if tx.send(Ok(axum::body::Bytes::from(c.data))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx
                        .send(Err(std::io::Error::other(e.message().to_string())))
                        .await;
                    return;
                }
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}
