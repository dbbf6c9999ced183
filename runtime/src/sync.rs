//! The channel between the runtime and the process it clones into the
//! container: a SOCK_SEQPACKET pair, one JSON message per packet. Each side
//! learns of the other's death as end-of-file, so neither waits forever.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, send, socketpair};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, SysContext};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// Runtime → child: the cgroup and id mappings are in place, go on. Carries
    /// the state JSON the container's own hooks get on stdin.
    Go(String),
    /// Runtime → child: the container's cgroup exists and holds the child.
    CgroupReady,

    /// Child → runtime: namespaces exist; run prestart and createRuntime hooks.
    RunHooks,
    /// Runtime → child: the hooks are done.
    HooksDone,
    /// Child → runtime: set up and waiting for `start`.
    Ready,
    /// Intermediate exec child → runtime: the host pid of the process it cloned.
    Pid(i32),
    /// Child → runtime: setup failed; the text is the whole error chain.
    Error(String),
}

pub struct Channel(OwnedFd);

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .ctx(|| "creating sync socket pair".into())?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::Invalid(e.to_string()))?;
        send(self.0.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .ctx(|| "sending on sync socket".into())?;
        Ok(())
    }

    /// The next message, or None when the other side has gone.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    return serde_json::from_slice(&buf[..n])
                        .map(Some)
                        .map_err(|e| Error::Invalid(format!("bad sync message: {e}")));
                }
                // A peer that exits with our messages unread makes the next
                // recv fail once with ECONNRESET, even if its own last message
                // (often the error we want) is still queued: read on.
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => continue,

                Err(e) => return Err(Error::sys("reading sync socket", e)),
            }
        }
    }

    /// Waits for one particular message; an Error message or EOF becomes an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(e)) => Err(Error::Init(e)),
            Some(m) => Err(Error::Invalid(format!(
                "sync: expected {want:?}, got {m:?}"
            ))),
            None => Err(Error::Init(format!(
                "sync: the other side exited while waiting for {want:?}"
            ))),
        }
    }

    pub fn raw(&self) -> i32 {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_of_a_peer_that_left_our_message_unread_arrive() {
        let (parent, child) = Channel::pair().unwrap();
        parent.send(&Msg::CgroupReady).unwrap(); // never read by the child
        child.send(&Msg::Error("mknod failed".into())).unwrap();
        drop(child);
        assert_eq!(
            parent.recv().unwrap(),
            Some(Msg::Error("mknod failed".into()))
        );
        assert_eq!(parent.recv().unwrap(), None);
    }
}
