//! Docker's stream formats: the 8-byte multiplexed frame, and hijacking an
//! HTTP connection (`Upgrade: tcp` → 101) for attach and exec.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One multiplexed frame: stream, three zero bytes, big-endian length, data.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&berth_proto::raw::frame_header(stream, data.len() as u32));
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

/// How a stream to a client ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// The process's output ended.
    Done,
    /// The client's side ended the attach (detach keys, or EOF that
    /// leaves stdin open).
    Detached,
    /// The client went away.
    Gone,
}

/// Copies a process's output to the client until it ends, the client's
/// side ends the attach (`ended` fires) or the client goes.
async fn copy_output<W: tokio::io::AsyncWrite + Unpin>(
    output: &mut tonic::Streaming<berth_proto::types::v1::Chunk>,
    wr: &mut W,
    tty: bool,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Copied {
    use tokio::io::AsyncWriteExt;
    let copy = async {
        while let Ok(Some(chunk)) = output.message().await {
            if wr.write_all(&for_client(chunk, tty)).await.is_err() {
                return Copied::Gone;
            }
        }
        Copied::Done
    };
    until_ended(copy, ended).await
}

/// `copy`, unless the client's side ends the attach first.
async fn until_ended(
    copy: impl std::future::Future<Output = Copied>,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Copied {
    match ended {
        None => copy.await,
        Some(ended) => tokio::select! {
            c = copy => c,
            Ok(()) = ended => Copied::Detached,
        },
    }
}

/// Docker's rules for the client's side of an attach: with a terminal, the
/// detach keys or EOF end the attach and leave the process's stdin open
/// (a shell outlives its client); without one, EOF closes the process's
/// stdin when it was opened for this client (StdinOnce, and every exec),
/// and otherwise only ends the attach.
#[derive(Clone, Debug, Default)]
pub struct StdinRules {
    pub close_on_eof: bool,
    /// Empty: no detaching.
    pub detach_keys: Vec<u8>,
}

impl StdinRules {
    pub fn new(tty: bool, close_on_eof: bool, detach_keys: Option<&str>) -> Result<Self, String> {
        let keys = match detach_keys.filter(|k| !k.is_empty()) {
            Some(k) => parse_detach_keys(k)?,
            None => vec![16, 17],
        };
        Ok(StdinRules {
            close_on_eof: close_on_eof && !tty,
            detach_keys: if tty { keys } else { Vec::new() },
        })
    }
}

/// `ctrl-p,ctrl-q`, `a`, `ctrl-@`… as the bytes a terminal sends.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let invalid = || format!("Invalid detach keys ({spec}) provided");
    spec.split(',')
        .map(|k| {
            let b = k.as_bytes();
            match b {
                [c] => Ok(*c),
                [b'c', b't', b'r', b'l', b'-', c] => match c {
                    b'a'..=b'z' => Ok(c - b'a' + 1),
                    b'@' => Ok(0),
                    b'[' => Ok(27),
                    b'\\' => Ok(28),
                    b']' => Ok(29),
                    b'^' => Ok(30),
                    b'_' => Ok(31),
                    _ => Err(invalid()),
                },
                _ => Err(invalid()),
            }
        })
        .collect()
}

/// Finds the detach sequence in a stream of input; bytes of a partial
/// sequence that does not complete are input after all.
#[derive(Default)]
struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// The input to pass on, and whether the sequence completed (what
    /// follows it is dropped).
    fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (data.to_vec(), false);
        }
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Where the client's input goes: attach requests to lifecycled, or the
/// bytes of an attach socket.
pub enum StdinSink {
    Messages(tokio::sync::mpsc::Sender<berth_proto::lifecycle::v1::AttachRequest>),
    Socket(tokio::net::unix::OwnedWriteHalf),
}

impl From<tokio::sync::mpsc::Sender<berth_proto::lifecycle::v1::AttachRequest>> for StdinSink {
    fn from(tx: tokio::sync::mpsc::Sender<berth_proto::lifecycle::v1::AttachRequest>) -> Self {
        StdinSink::Messages(tx)
    }
}

impl StdinSink {
    /// False once the process's side is gone.
    async fn send(&mut self, data: &[u8]) -> bool {
        use berth_proto::lifecycle::v1::{AttachRequest, attach_request::Kind};
        use tokio::io::AsyncWriteExt;
        match self {
            StdinSink::Messages(tx) => tx
                .send(AttachRequest {
                    kind: Some(Kind::Stdin(data.to_vec())),
                })
                .await
                .is_ok(),
            StdinSink::Socket(w) => w.write_all(data).await.is_ok(),
        }
    }

    /// Closes the process's stdin (an attach socket opened with
    /// close_stdin_on_eof reads its end of input so).
    async fn close(&mut self) {
        use berth_proto::lifecycle::v1::{AttachRequest, attach_request::Kind};
        use tokio::io::AsyncWriteExt;
        match self {
            StdinSink::Messages(tx) => {
                let _ = tx
                    .send(AttachRequest {
                        kind: Some(Kind::CloseStdin(true)),
                    })
                    .await;
            }
            StdinSink::Socket(w) => {
                let _ = w.shutdown().await;
            }
        }
    }
}

/// Forwards the client's input to a process under `rules`. The receiver
/// fires when the client's side ended the attach (detached, or EOF that
/// leaves stdin open); it is dropped unfired when stdin was closed, as the
/// output then runs to its end.
pub fn forward_stdin<R>(
    mut rd: R,
    sink: impl Into<StdinSink>,
    rules: StdinRules,
) -> tokio::sync::oneshot::Receiver<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let mut sink = sink.into();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut scanner = DetachScanner {
            keys: rules.detach_keys,
            matched: 0,
        };
        let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (sent, detached) = if scanner.keys.is_empty() {
                (sink.send(&buf[..n]).await, false)
            } else {
                let (data, detached) = scanner.feed(&buf[..n]);
                (data.is_empty() || sink.send(&data).await, detached)
            };
            if !sent {
                return;
            }
            if detached {
                tracing::debug!("client detached");
                let _ = ended_tx.send(());
                return;
            }
        }
        if rules.close_on_eof {
            sink.close().await;
        } else {
            let _ = ended_tx.send(());
        }
    });
    ended_rx
}

/// A process's streams as the engine holds them once attached: lifecycled's
/// messages, or the raw bytes of the shim's attach socket, already framed
/// for the client (`Lifecycle::attach_raw`, opened with the same rules).
pub enum Streams {
    Messages {
        output: tonic::Streaming<berth_proto::types::v1::Chunk>,
        input: tokio::sync::mpsc::Sender<berth_proto::lifecycle::v1::AttachRequest>,
    },
    Socket(tokio::net::UnixStream),
}

impl Streams {
    /// The process's streams: the shim's attach socket when it has one (no
    /// hop through lifecycled for bulk data), lifecycled's Attach
    /// otherwise. `tty`: the client's output is raw, not multiplexed.
    pub async fn open(
        lc: &crate::daemon::lifecycle::Lifecycle,
        open: berth_proto::lifecycle::v1::AttachOpen,
        tty: bool,
        rules: &StdinRules,
    ) -> Result<Streams, tonic::Status> {
        if let Some(conn) = lc
            .attach_raw(open.clone(), !tty, rules.close_on_eof)
            .await?
        {
            return Ok(Streams::Socket(conn));
        }
        let (input, in_rx) = tokio::sync::mpsc::channel(16);
        let output = lc.attach(open, Some(in_rx)).await?;
        Ok(Streams::Messages { output, input })
    }

    /// Copies the output to the client (`wr`) and, given `rd`, the client's
    /// input to the process under `rules`, until one of them ends.
    pub async fn relay<R, W>(
        self,
        rd: Option<R>,
        wr: &mut W,
        tty: bool,
        rules: StdinRules,
    ) -> Copied
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Streams::Messages { mut output, input } => {
                let ended = rd.map(|rd| forward_stdin(rd, input, rules));
                copy_output(&mut output, wr, tty, ended).await
            }
            Streams::Socket(conn) => {
                let (from_shim, to_shim) = conn.into_split();
                // Without stdin the write half is held to the end: dropping
                // it would half-close the socket, which the shim reads as
                // the client's end.
                let (ended, _held) = match rd {
                    Some(rd) => (
                        Some(forward_stdin(rd, StdinSink::Socket(to_shim), rules)),
                        None,
                    ),
                    None => (None, Some(to_shim)),
                };
                copy_bytes(from_shim, wr, ended).await
            }
        }
    }
}

/// The attach socket's output, as it is, to the client.
async fn copy_bytes<W: tokio::io::AsyncWrite + Unpin>(
    mut from: tokio::net::unix::OwnedReadHalf,
    wr: &mut W,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Copied {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let copy = async {
        let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return Copied::Done,
                Ok(n) => {
                    if wr.write_all(&buf[..n]).await.is_err() {
                        return Copied::Gone;
                    }
                }
            }
        }
    };
    until_ended(copy, ended).await
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

/// The client's end of a hijacked attach or exec.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Conn for T {}

/// The raw descriptor of a unix-socket API connection, put in each
/// request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct ConnFd(pub std::os::fd::RawFd);

/// Answers 101 and hands the raw connection to `f` once hyper lets go of
/// it. A client that did not ask to upgrade gets what dockerd gives it: a
/// 200 whose body is the stream, its request body as stdin.
pub fn hijack<F, Fut>(mut req: Request, tty: bool, f: F) -> Response
where
    F: FnOnce(Box<dyn Conn>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let b = Response::builder().header(header::CONTENT_TYPE, content_type(tty));
    if !wants_upgrade {
        return b
            .status(StatusCode::OK)
            .body(piped(req, f))
            .unwrap_or_default();
    }
    let fd = req.extensions().get::<ConnFd>().copied();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                if let Some(ConnFd(fd)) = fd {
                    headers_read(fd).await;
                }
                f(Box::new(TokioIo::new(up))).await
            }
            Err(e) => tracing::debug!("hijack: {e}"),
        }
    });
    b.status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Resolves once the peer of the connection `fd` hangs up (or half-closes,
/// which Go's server also takes for a client gone), looked at every
/// quarter second. For a handler that has answered nothing yet: hyper
/// does not read the connection then, so it would not see the client go.
/// `fd` must stay the connection's while this is polled: the handler's own
/// future, which hyper drops before it closes the connection, polls it.
pub async fn peer_hung_up(fd: std::os::fd::RawFd) {
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one pollfd, not kept; a zero timeout does not block.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Waits (a bounded time) until the client has read the 101 off the
/// socket. Clients such as docker-py read the response head through a
/// buffered reader and then switch to the raw socket: bytes that arrived
/// with the head (a logs replay is immediate) would sit in that buffer and
/// be lost. dockerd's own latency hides this; here it is made certain.
async fn headers_read(fd: std::os::fd::RawFd) {
    for _ in 0..200 {
        match unread_bytes(fd) {
            Some(0) | None => return,
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
}

nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);

/// Bytes this end wrote on a unix stream socket that the peer has not
/// read yet (SIOCOUTQ).
fn unread_bytes(fd: std::os::fd::RawFd) -> Option<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is the connection's socket, kept open by the upgraded
    // connection the caller holds; the ioctl writes one int into `n`.
    unsafe { siocoutq(fd, &mut n) }.ok().map(|_| n)
}

/// The non-upgrade form: `f` gets one end of a pipe whose other end is the
/// response body; the request body is its input, held open (no EOF) until
/// the response ends, as the connection would be.
fn piped<F, Fut>(req: Request, f: F) -> Body
where
    F: FnOnce(Box<dyn Conn>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (out, mut input) = tokio::io::split(theirs);
    let (keep_tx, keep_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut body = req.into_body().into_data_stream();
        while let Some(Ok(data)) = body.next().await {
            if input.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = keep_tx.send(input);
    });
    tokio::spawn(f(Box::new(ours)));
    let stream = tokio_util::io::ReaderStream::new(out).map(move |x| {
        let _ = &keep_rx;
        x
    });
    Body::from_stream(stream)
}

/// A stream of lifecycled's data chunks (archives, exports) as an HTTP
/// body; an error midway ends the body with it.
pub fn chunk_body(s: tonic::Streaming<berth_proto::lifecycle::v1::Chunk>) -> Body {
    chunk_body_holding(s, ())
}

/// The same, keeping `hold` until the last chunk is sent or the client
/// goes (a frozen container stays frozen while its files stream).
pub fn chunk_body_holding<H: Send + 'static>(
    mut s: tonic::Streaming<berth_proto::lifecycle::v1::Chunk>,
    hold: H,
) -> Body {
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::result::Result<axum::body::Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let _hold = hold;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q"), Ok(vec![16, 17]));
        assert_eq!(parse_detach_keys("a,ctrl-@,ctrl-_"), Ok(vec![b'a', 0, 31]));
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("ctrl-p,").is_err());
    }

    #[test]
    fn the_scanner_passes_partial_sequences_on_and_stops_at_a_whole_one() {
        let mut s = DetachScanner {
            keys: vec![16, 17],
            matched: 0,
        };
        assert_eq!(s.feed(b"ab\x10c"), (b"ab\x10c".to_vec(), false));
        // A sequence split across reads, with a repeated first key.
        assert_eq!(s.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(s.feed(b"\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachScanner::default();
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
