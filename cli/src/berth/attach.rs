//! Streams of a container: the hijacked attach connection (stdin in,
//! multiplexed or raw output back), log frames, terminal size and signals.

use std::io::Write;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Ctx;
use super::client::{Io, q};

/// Copies Docker's multiplexed stream (8-byte header: stream, 0, 0, 0,
/// big-endian length) to our stdout and stderr until EOF. Read in large
/// pieces whatever the frames' sizes; each piece of a frame is one write.
pub async fn demux<R: AsyncRead + Unpin>(r: R) -> Result<()> {
    demux_to(r, write_fd).await
}

/// The frames' pieces to `out`, with the descriptor of their stream.
async fn demux_to<R, F>(mut r: R, mut out: F) -> Result<()>
where
    R: AsyncRead + Unpin,
    F: FnMut(std::os::fd::RawFd, &[u8]) -> std::io::Result<()>,
{
    let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    // The frame being copied: its stream and the bytes of it still to come.
    let (mut stream, mut left) = (STDOUT_FD, 0usize);
    loop {
        while start < end {
            if left > 0 {
                let n = left.min(end - start);
                out(stream, &buf[start..start + n])?;
                start += n;
                left -= n;
            } else if end - start >= 8 {
                let h = &buf[start..start + 8];
                stream = if h[0] == 2 { STDERR_FD } else { STDOUT_FD };
                left = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                start += 8;
            } else {
                break;
            }
        }
        // What is left is part of a header: to the front.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = r.read(&mut buf[end..]).await?;
        if n == 0 {
            if left > 0 {
                anyhow::bail!("the stream ended in the middle of a frame");
            }
            return Ok(());
        }
        end += n;
    }
}

/// Copies a raw stream (a terminal's output) to stdout until EOF.
pub async fn raw<R: AsyncRead + Unpin>(mut r: R) -> Result<()> {
    let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        write_fd(STDOUT_FD, &buf[..n])?;
    }
}

const STDOUT_FD: std::os::fd::RawFd = 1;
const STDERR_FD: std::os::fd::RawFd = 2;

/// Writes to our stdout or stderr as it is: std's stdout buffers by line,
/// which would split binary output into many writes.
fn write_fd(fd: std::os::fd::RawFd, data: &[u8]) -> std::io::Result<()> {
    // Whatever std still holds for stdout goes first.
    std::io::stdout().flush()?;
    // SAFETY: 1 and 2 stay open for the life of the process; ManuallyDrop
    // keeps this File from closing them.
    let f = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    (&*f).write_all(data)
}

/// Our stdin into the socket `sock` until EOF, then its write side shut
/// down (the daemon reads that as the end of input). On a thread of its
/// own, in blocking reads: tokio's stdin hands every read to its blocking
/// pool and back. (splice(2) from a stdin pipe was measured too: into a
/// unix socket it cost more than the copy.)
fn pump_stdin(sock: std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
    let mut input = std::io::stdin().lock();
    loop {
        let n = match std::io::Read::read(&mut input, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n == 0 {
            // SAFETY: shutdown on our own descriptor.
            unsafe { libc::shutdown(fd, libc::SHUT_WR) };
            return;
        }
        if write_socket(fd, &buf[..n]).is_err() {
            return;
        }
    }
}

/// All of `data` to a non-blocking socket.
fn write_socket(fd: std::os::fd::RawFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        // SAFETY: writes from a slice we hold to our own descriptor.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => wait_writable(fd)?,
                Some(libc::EINTR) => {}
                _ => return Err(e),
            }
            continue;
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn wait_writable(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one pollfd we own.
        let r = unsafe { libc::poll(&mut p, 1, -1) };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Detach keys as bytes: Docker's default is ctrl-p,ctrl-q.
fn detach_keys(spec: &str) -> Vec<u8> {
    spec.split(',')
        .filter_map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let c = c.chars().next()?;
                match c {
                    'a'..='z' => Some(c as u8 - b'a' + 1),
                    '@' => Some(0),
                    '[' => Some(27),
                    '\\' => Some(28),
                    ']' => Some(29),
                    '^' => Some(30),
                    '_' => Some(31),
                    _ => None,
                }
            } else {
                k.bytes().next()
            }
        })
        .collect()
}

/// How an attached session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container closed its output.
    Output,
    /// The user typed the detach keys.
    Detached,
}

/// Runs an attach session over a hijacked connection: our stdin to the
/// container (when `stdin`), its output to ours. Returns when the output
/// ends or the user detaches. With a terminal, our terminal is put in raw
/// mode for the session.
pub async fn session<S>(conn: S, tty: bool, stdin: bool, keys: &str) -> Result<Ended>
where
    S: Io + 'static,
{
    // Without detach keys to look for, stdin goes to the socket by a
    // thread of its own, on a duplicate of the descriptor so that it stays
    // valid however the session ends.
    let pumped = (stdin && !tty)
        .then(|| conn.raw_fd())
        .flatten()
        .and_then(|fd| {
            // SAFETY: the connection holds fd open for this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            fd.try_clone_to_owned().ok()
        })
        .and_then(|fd| {
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || pump_stdin(fd))
                .ok()
        })
        .is_some();
    let stdin = stdin && !pumped;
    let (rd, mut wr) = tokio::io::split(conn);
    let _raw = if tty && stdin && crate::term::is_tty(0) {
        crate::term::RawMode::enter()
    } else {
        None
    };
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    if stdin {
        let keys = if tty { detach_keys(keys) } else { Vec::new() };
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
            let mut matched = 0usize;
            let mut detach_tx = Some(detach_tx);
            loop {
                let n = match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if keys.is_empty() {
                    if wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    continue;
                }
                let mut out = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if b == keys[matched] {
                        matched += 1;
                        if matched == keys.len() {
                            if let Some(tx) = detach_tx.take() {
                                let _ = tx.send(());
                            }
                            return;
                        }
                        continue;
                    }
                    // A partial detach sequence that did not complete is input.
                    out.extend_from_slice(&keys[..matched]);
                    matched = 0;
                    if b == keys[0] {
                        matched = 1;
                    } else {
                        out.push(b);
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            // stdin ended: half-close so the container sees EOF.
            let _ = wr.shutdown().await;
        });
    }
    let output = async move { if tty { raw(rd).await } else { demux(rd).await } };
    tokio::select! {
        r = output => { r?; Ok(Ended::Output) }
        Ok(()) = &mut detach_rx => Ok(Ended::Detached),
    }
}

/// Keeps the container's terminal the size of ours: now and on SIGWINCH.
pub fn follow_resize(ctx: &Ctx, path_prefix: String) -> Option<tokio::task::JoinHandle<()>> {
    let client = ctx.client.clone();
    let resize = move |client: super::client::Client, prefix: String| async move {
        if let Some((w, h)) = crate::term::size() {
            let _ = client
                .post(&format!("{prefix}/resize?h={h}&w={w}"), None)
                .await;
        }
    };
    let mut sig =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()?;
    Some(tokio::spawn(async move {
        resize(client.clone(), path_prefix.clone()).await;
        while sig.recv().await.is_some() {
            resize(client.clone(), path_prefix.clone()).await;
        }
    }))
}

/// Forwards the signals a user sends us to the container, as Docker's
/// --sig-proxy does. The handlers are in place when this returns, so a
/// signal that comes right after cannot kill the CLI instead.
pub fn proxy_signals(ctx: &Ctx, id: String) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let client = ctx.client.clone();
    let kinds = [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    for (kind, name) in kinds {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(name).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    tokio::spawn(async move {
        while let Some(name) = rx.recv().await {
            let _ = client
                .post(&format!("/containers/{}/kill?signal={name}", q(&id)), None)
                .await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn demuxed(input: Vec<u8>, piece: usize) -> (Result<()>, Vec<u8>, Vec<u8>) {
        let (mut tx, rx) = tokio::io::duplex(piece);
        tokio::spawn(async move {
            for c in input.chunks(piece) {
                let _ = tx.write_all(c).await;
            }
        });
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let r = demux_to(rx, |fd, data| {
            if fd == STDERR_FD {
                e.extend_from_slice(data);
            } else {
                o.extend_from_slice(data);
            }
            Ok(())
        })
        .await;
        (r, o, e)
    }

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(data.len() as u32).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    #[tokio::test]
    async fn frames_come_apart_however_the_reads_split_them() {
        let big = vec![7u8; 300_000];
        let mut input = frame(1, b"out\n");
        input.extend(frame(2, b"err"));
        input.extend(frame(1, b""));
        input.extend(frame(1, &big));
        input.extend(frame(2, b"!"));
        for piece in [1, 5, 8, 9, 4096, 1 << 20] {
            let (r, o, e) = demuxed(input.clone(), piece).await;
            assert!(r.is_ok(), "{piece}");
            assert_eq!(o.len(), 4 + big.len(), "{piece}");
            assert_eq!(&o[..4], b"out\n");
            assert_eq!(e, b"err!", "{piece}");
        }
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_an_error_and_between_frames_is_not() {
        let mut cut = frame(1, b"whole");
        cut.extend(&frame(1, b"cut short")[..12]);
        let (r, o, _) = demuxed(cut, 3).await;
        assert!(r.is_err());
        assert_eq!(&o[..5], b"whole");
        let mut half_header = frame(1, b"whole");
        half_header.extend([1, 0, 0]);
        let (r, o, _) = demuxed(half_header, 3).await;
        assert!(r.is_ok());
        assert_eq!(o, b"whole");
    }
}
