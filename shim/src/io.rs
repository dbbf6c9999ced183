//! A process's standard streams as the shim holds them: pipes (or a pty
//! master) whose far ends the runtime hands to the process. Output is read as
//! soon as it comes, written to the log and handed to each attached client
//! through a queue of its own: with no client attached nothing waits; a
//! client that reads slowly holds the output back (as Docker's attached
//! streams do) rather than losing any of it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_proto::types::v1::{self as pb, chunk::Stream};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::logfile::{LineBuffer, LogFile, LogWriter, Sink};

/// How long output may go on after the process exits (held open by a leftover
/// child) before the shim stops reading it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

pub enum StdinWriter {
    Pipe(pipe::Sender),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// A process's streams. It exists from the moment the process is known (before
/// it starts), so a client can attach first and miss nothing.
pub struct Io {
    /// The attached clients' queues. Output waits for each of them, as
    /// Docker's attached streams do: a client that reads slowly slows the
    /// container down instead of losing output; one that leaves is dropped.
    attached: std::sync::Mutex<Vec<Attached>>,
    pub stdin: tokio::sync::Mutex<Option<StdinWriter>>,
    /// The pty master, for resizing.
    console: std::sync::OnceLock<Arc<AsyncFd<OwnedFd>>>,
    done: watch::Sender<bool>,
    exited: watch::Sender<bool>,
    /// The log's writer, for reopening the file.
    log: std::sync::OnceLock<LogWriter>,
}

impl Default for Io {
    fn default() -> Self {
        Io {
            attached: std::sync::Mutex::new(Vec::new()),
            stdin: tokio::sync::Mutex::new(None),
            console: std::sync::OnceLock::new(),
            done: watch::channel(false).0,
            exited: watch::channel(false).0,
            log: std::sync::OnceLock::new(),
        }
    }
}

/// What the runtime's process is given, and what the shim keeps until the
/// runtime has started it.
pub struct Prepared {
    child: Option<(Stdio, Stdio, Stdio)>,
    pub console_socket: Option<PathBuf>,
    keep: Keep,
    log: Option<LogWriter>,
}

enum Keep {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Console(UnixListener, PathBuf),
}

/// The kernel's default pipe (64 KiB) holds half a chunk: a process
/// writing fast would be woken for every read we make.
const PIPE_SIZE: i32 = 1 << 20;

fn pipe2() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    // Above the unprivileged limit (fs.pipe-max-size) the default stays.
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&r),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE),
    );
    Ok((r, w))
}

/// Makes the pipes, or the console socket for a terminal (at `console_path`).
pub fn prepare(
    cfg: &pb::Stdio,
    console_path: &Path,
    reaper: &std::sync::Arc<crate::reaper::Reaper>,
) -> Result<Prepared> {
    // Before the runtime runs: a log that cannot be written fails the
    // create with nothing to undo.
    let log = open_log(cfg, reaper)?;
    if cfg.terminal {
        let _ = std::fs::remove_file(console_path);
        let l = UnixListener::bind(console_path)
            .with_context(|| format!("binding console socket {}", console_path.display()))?;
        return Ok(Prepared {
            child: Some((Stdio::null(), Stdio::null(), Stdio::null())),
            console_socket: Some(console_path.to_path_buf()),
            keep: Keep::Console(l, console_path.to_path_buf()),
            log,
        });
    }
    let (stdin, keep_stdin) = if cfg.stdin {
        let (r, w) = pipe2()?;
        (Stdio::from(r), Some(w))
    } else {
        (Stdio::null(), None)
    };
    let (out_r, out_w) = pipe2()?;
    let (err_r, err_w) = pipe2()?;
    Ok(Prepared {
        child: Some((stdin, Stdio::from(out_w), Stdio::from(err_w))),
        console_socket: None,
        keep: Keep::Pipes {
            stdin: keep_stdin,
            stdout: out_r,
            stderr: err_r,
        },
        log,
    })
}

/// The writer of the container's log, as `cfg` asks: the journal, a
/// json-file, or none.
fn open_log(
    cfg: &pb::Stdio,
    reaper: &std::sync::Arc<crate::reaper::Reaper>,
) -> Result<Option<LogWriter>> {
    let sink = if cfg.journald {
        let journal = crate::journal::Journal::open(&cfg.journal_fields)
            .context("failed to initialize logging driver")?;
        Some(Sink::Journal(journal))
    } else if cfg.log_path.is_empty() {
        None
    } else if !matches!(cfg.log_format.as_str(), "" | "json-file" | "cri") {
        anyhow::bail!("unknown log format {:?}", cfg.log_format);
    } else if cfg.log_format == "cri" {
        let file = crate::crilog::CriLog::open(Path::new(&cfg.log_path))
            .with_context(|| format!("opening log {}", cfg.log_path))?;
        Some(Sink::Cri(file))
    } else {
        let attrs = cfg.log_attrs.clone().into_iter().collect();
        let file = LogFile::with_attrs(
            Path::new(&cfg.log_path),
            cfg.log_max_size,
            cfg.log_max_files,
            &attrs,
        )
        .and_then(|f| {
            f.compressing_rotated(
                cfg.log_compress
                    .then(|| crate::logfile::reaped_gzip(reaper.clone())),
            )
        })
        .with_context(|| format!("opening log {}", cfg.log_path))?;
        if cfg.log_fifo.is_empty() {
            Some(Sink::File(file))
        } else {
            let plugin = crate::pluginlog::PluginLog::open(Path::new(&cfg.log_fifo), Some(file))
                .with_context(|| format!("opening the log plugin's FIFO {}", cfg.log_fifo))?;
            Some(Sink::Plugin(plugin))
        }
    };
    let log = match sink {
        Some(sink) => Some(LogWriter::spawn(sink).context("starting the log writer")?),
        None => None,
    };
    Ok(log)
}

fn nonblocking(fd: &OwnedFd) -> Result<()> {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}

fn recv_master(listener: &UnixListener) -> Result<OwnedFd> {
    use std::io::IoSliceMut;
    use std::os::fd::FromRawFd;
    listener.set_nonblocking(true)?;
    let (conn, _) = listener
        .accept()
        .context("the runtime did not connect to the console socket")?;
    conn.set_nonblocking(false)?;
    let mut buf = [0u8; 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receiving the pty master")?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    anyhow::bail!("no pty master on the console socket")
}

impl Prepared {
    /// The runtime's stdin, stdout and stderr (the process inherits them); our
    /// copies close when the runtime call has taken them.
    pub fn child_stdio(&mut self) -> Result<(Stdio, Stdio, Stdio)> {
        self.child.take().context("stdio already handed out")
    }

    /// Once the runtime has started the process: drop the far ends, take the
    /// pty master if there is one, and start reading output into `io`.
    pub async fn start(self, io: &Arc<Io>, cfg: &pb::Stdio) -> Result<()> {
        let Prepared { keep, log, .. } = self;
        if let Some(l) = &log {
            let _ = io.log.set(l.clone());
        }
        match keep {
            Keep::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                if let Some(fd) = stdin {
                    *io.stdin.lock().await =
                        Some(StdinWriter::Pipe(pipe::Sender::from_owned_fd(fd)?));
                }
                let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(2));
                for (fd, stream) in [(stdout, Stream::Stdout), (stderr, Stream::Stderr)] {
                    let rx = pipe::Receiver::from_owned_fd(fd)?;
                    tokio::spawn(pump(
                        Reader::Pipe(rx),
                        stream,
                        log.clone(),
                        io.clone(),
                        remaining.clone(),
                    ));
                }
            }
            Keep::Console(listener, path) => {
                let master = recv_master(&listener);
                let _ = std::fs::remove_file(&path);
                let master = master?;
                nonblocking(&master)?;
                if cfg.console_width > 0 && cfg.console_height > 0 {
                    set_size(
                        master.as_fd(),
                        cfg.console_width as u16,
                        cfg.console_height as u16,
                    );
                }
                // SAFETY: an OwnedFd always returns the same open descriptor.
                let master = Arc::new(
                    unsafe { AsyncFd::register(master) }.map_err(|e| anyhow::anyhow!("{e}"))?,
                );

                *io.stdin.lock().await = Some(StdinWriter::Pty(master.clone()));
                let _ = io.console.set(master.clone());
                let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(1));
                tokio::spawn(pump(
                    Reader::Pty(master),
                    Stream::Stdout,
                    log,
                    io.clone(),
                    remaining,
                ));
            }
        }
        Ok(())
    }
}

pub fn set_size(fd: std::os::fd::BorrowedFd<'_>, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own for the duration of the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

enum Reader {
    Pipe(pipe::Receiver),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

impl Reader {
    /// Ok(0) at the end of the stream (for a pty: when the last slave closes).
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Reader::Pipe(p) => {
                use tokio::io::AsyncReadExt;
                p.read(buf).await
            }
            Reader::Pty(fd) => loop {
                let mut guard = fd.readable().await?;
                match guard.try_io(|inner| {
                    nix::unistd::read(inner.as_raw_fd(), buf).map_err(std::io::Error::from)
                }) {
                    Ok(Ok(n)) => return Ok(n),
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

async fn pump(
    mut reader: Reader,
    stream: Stream,
    log: Option<LogWriter>,
    io: Arc<Io>,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
) {
    let name = if stream == Stream::Stderr {
        "stderr"
    } else {
        "stdout"
    };
    let mut buf = vec![0u8; berth_proto::STDIO_CHUNK];
    let mut lines = LineBuffer::default();
    let mut exited = io.exited.subscribe();
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("reading {name}: {e}");
                    0
                }
            },
            // Something outlived the process and holds its output open.
            _ = drain_deadline(&mut exited) => 0,
        };
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        if let (Some(log), Some(whole)) = (&log, lines.push(data)) {
            log.write(name, whole).await;
        }
        io.offer(pb::Chunk {
            stream: stream as i32,
            data: data.to_vec(),
        })
        .await;
    }
    if let Some(log) = &log {
        if let Some(rest) = lines.flush() {
            log.write_last(name, rest).await;
        }
        // Whoever is told the output is done may read the log next.
        log.flush().await;
    }
    if remaining.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
        // The clients' queues end once they have handed on what they hold;
        // done is set under the same lock, so a client attaching now either
        // is cleared here or sees it.
        let mut attached = io.lock_attached();
        attached.clear();
        io.done.send_replace(true);
        drop(attached);
    }
}

async fn drain_deadline(exited: &mut watch::Receiver<bool>) {
    while !*exited.borrow_and_update() {
        if exited.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(DRAIN_AFTER_EXIT).await;
}

/// One attached client: what it wants and its queue.
struct Attached {
    stdout: bool,
    stderr: bool,
    tx: tokio::sync::mpsc::Sender<pb::Chunk>,
}

/// Chunks an attached client may have queued before output waits for it
/// (4 MiB at most, Docker's attach buffers 1 MB).
const ATTACH_QUEUE: usize = 32;

impl Io {
    fn lock_attached(&self) -> std::sync::MutexGuard<'_, Vec<Attached>> {
        self.attached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A queue of the process's output from now on, the streams asked for;
    /// it ends when the output does (at once if it already has).
    pub fn attach(&self, stdout: bool, stderr: bool) -> tokio::sync::mpsc::Receiver<pb::Chunk> {
        let (tx, rx) = tokio::sync::mpsc::channel(ATTACH_QUEUE);
        let mut attached = self.lock_attached();
        // Under the lock the pump takes to end the queues: either this
        // client is in before they end, or it sees the output is done.
        if !self.is_done() {
            attached.push(Attached { stdout, stderr, tx });
        }
        rx
    }

    /// Hands a chunk to every client that wants it, waiting for room.
    async fn offer(&self, chunk: pb::Chunk) {
        let stderr = chunk.stream == pb::chunk::Stream::Stderr as i32;
        let targets: Vec<_> = {
            let mut attached = self.lock_attached();
            attached.retain(|a| !a.tx.is_closed());
            attached
                .iter()
                .filter(|a| if stderr { a.stderr } else { a.stdout })
                .map(|a| a.tx.clone())
                .collect()
        };
        for tx in targets {
            // A client gone meanwhile is pruned on the next chunk.
            let _ = tx.send(chunk.clone()).await;
        }
    }

    pub fn process_exited(&self) {
        self.exited.send_replace(true);
    }

    /// Resolves when all output has been read and handed on.
    pub async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        let mut guard = self.stdin.lock().await;
        match guard.as_mut() {
            None => anyhow::bail!("the process's stdin is closed"),
            Some(StdinWriter::Pipe(p)) => {
                use tokio::io::AsyncWriteExt;
                p.write_all(data).await.context("writing stdin")
            }
            Some(StdinWriter::Pty(fd)) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let mut guard = fd.writable().await?;
                    match guard.try_io(|inner| {
                        nix::unistd::write(inner.get_ref(), rest).map_err(std::io::Error::from)
                    }) {
                        Ok(Ok(n)) => rest = &rest[n..],
                        Ok(Err(e)) => return Err(e).context("writing to the terminal"),
                        Err(_would_block) => continue,
                    }
                }
                Ok(())
            }
        }
    }

    /// Closes the process's stdin (a pipe); on a terminal, sends end-of-file.
    pub async fn close_stdin(&self) {
        let mut guard = self.stdin.lock().await;
        if let Some(StdinWriter::Pty(_)) = guard.as_ref() {
            drop(guard);
            let _ = self.write_stdin(&[4]).await;
            return;
        }
        *guard = None;
    }

    pub async fn reopen_log(&self) -> Result<()> {
        let log = self.log.get().context("the process has no log file")?;
        log.reopen().await.context("reopening the log")
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let console = self
            .console
            .get()
            .context("the process has no terminal to resize")?;
        set_size(console.get_ref().as_fd(), width as u16, height as u16);
        Ok(())
    }
}
