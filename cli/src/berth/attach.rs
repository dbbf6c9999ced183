//! Streams of a container: the hijacked attach connection (stdin in,
//! multiplexed or raw output back), log frames, terminal size and signals.

use std::io::Write;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Ctx;
use super::client::q;

/// Copies Docker's multiplexed stream (8-byte header: stream, 0, 0, 0,
/// big-endian length) to our stdout and stderr until EOF.
pub async fn demux<R: AsyncRead + Unpin>(mut r: R) -> Result<()> {
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        r.read_exact(&mut buf).await?;
        if header[0] == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(&buf)?;
            e.flush()?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(&buf)?;
            o.flush()?;
        }
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
        let mut o = std::io::stdout().lock();
        o.write_all(&buf[..n])?;
        o.flush()?;
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
    S: AsyncRead + AsyncWrite + Send + 'static,
{
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
