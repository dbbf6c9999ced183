//! The attach socket: Attach's raw form (`berth.shim.v1.RawAttach`). A
//! client that moves bulk data (the engine's `exec -i`, `attach`) reads and
//! writes the process's streams as plain bytes, framed as Docker's clients
//! want them, with no message, no HTTP/2 frame and no hop through
//! lifecycled in between.

use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_proto::raw::{read_message, write_message};
use berth_proto::shim::v1 as shim;
use berth_proto::types::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::task::Task;

/// Binds the socket at `path` (replacing a stale one).
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub async fn serve(listener: UnixListener, task: Arc<Task>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(attach(conn, task.clone()));
            }
            Err(e) => {
                tracing::warn!("accepting on the attach socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a client has to say what it attaches to.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn attach(mut conn: UnixStream, task: Arc<Task>) {
    let req = match tokio::time::timeout(OPEN_TIMEOUT, read_message(&mut conn)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!("attach socket: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("attach socket: no open message");
            return;
        }
    };
    let req: shim::RawAttach = req;
    let open = req.open.unwrap_or_default();
    let proc = match task.process(&open.exec_id) {
        Ok(p) => p,
        Err(status) => {
            let error = status.message().to_string();
            let _ = write_message(&mut conn, &shim::RawAttachReply { error }).await;
            return;
        }
    };
    let io = proc.io.clone();
    // Attached before the reply, so the client misses nothing it starts.
    let mut output = io.attach(open.stdout, open.stderr);
    if write_message(&mut conn, &shim::RawAttachReply::default())
        .await
        .is_err()
    {
        return;
    }
    let (mut rd, mut wr) = conn.into_split();
    // The client's side: stdin, and its end. Without close_stdin_on_eof the
    // client never half-closes, so its end is the end of the attach.
    let (gone_tx, gone) = tokio::sync::oneshot::channel::<()>();
    // Fused: polled again after it ended unsent, a oneshot panics.
    let mut gone = futures::FutureExt::fuse(gone);
    let input_io = io.clone();
    tokio::spawn(async move {
        let mut stdin_open = open.stdin;
        let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if stdin_open => {
                    if let Err(e) = input_io.write_stdin(&buf[..n]).await {
                        tracing::debug!("attach socket stdin: {e:#}");
                        stdin_open = false;
                    }
                }
                Ok(_) => {}
            }
        }
        if req.close_stdin_on_eof && open.stdin {
            // Half-closed: the output goes on until it ends (gone_tx is
            // dropped unsent).
            if stdin_open {
                input_io.close_stdin().await;
            }
            return;
        }
        let _ = gone_tx.send(());
    });
    loop {
        let chunk = tokio::select! {
            c = output.recv() => match c {
                Some(c) => c,
                None => break,
            },
            Ok(()) = &mut gone => return,
        };
        if write_chunk(&mut wr, &chunk, req.multiplexed).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// One chunk, in its multiplexed frame (stream, three zero bytes,
/// big-endian length) when asked: one write for both.
async fn write_chunk<W: AsyncWrite + Unpin>(
    wr: &mut W,
    chunk: &pb::Chunk,
    multiplexed: bool,
) -> std::io::Result<()> {
    if !multiplexed {
        return wr.write_all(&chunk.data).await;
    }
    let stream = if chunk.stream == pb::chunk::Stream::Stderr as i32 {
        2
    } else {
        1
    };
    let len = u32::try_from(chunk.data.len()).map_err(std::io::Error::other)?;
    let header = berth_proto::raw::frame_header(stream, len);
    let (mut head, mut body) = (&header[..], &chunk.data[..]);
    while !head.is_empty() {
        let n = wr
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    wr.write_all(body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_is_whole_however_the_writes_split_it() {
        let (mut a, mut b) = tokio::io::duplex(3);
        let chunk = pb::Chunk {
            stream: pb::chunk::Stream::Stderr as i32,
            data: b"hello".to_vec(),
        };
        let writer = tokio::spawn(async move {
            write_chunk(&mut a, &chunk, true).await.unwrap();
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 2];
        while got.len() < 13 {
            let n = b.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert_eq!(got, b"\x02\0\0\0\0\0\0\x05hello");
    }
}
