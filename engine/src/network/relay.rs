//! Published ports on the host's IPv6 addresses. The portmap plugin
//! forwards a port on the host's IPv4 addresses to the container with
//! firewall rules; a container on an IPv4-only network has no IPv6
//! address to forward `[::]:port` to. dockerd's userland proxy listens
//! there and relays each connection (each UDP peer) to the container's
//! IPv4 address; so does this, inside berthd: software that asks for
//! `localhost` gets `::1` first (Node.js does, without falling back).
//! Like docker-proxy (which dies with dockerd), the relays stop while
//! berthd restarts and are bound again when it recovers its containers;
//! the IPv4 ports keep answering throughout.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How long a UDP peer's relay lives without traffic, as docker-proxy's
/// connection tracking.
const UDP_IDLE: Duration = Duration::from_secs(90);
/// How long a connection to the container is tried.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// A port bound at `[::]` and not yet relayed anywhere.
pub enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl Bound {
    /// Binds `[::]:port` (IPv6 only: the IPv4 port is portmap's).
    /// `Ok(None)` when the host has no IPv6 (as dockerd then publishes
    /// IPv4 only); an error when something holds the port.
    pub fn at(port: u16, proto: &str) -> std::io::Result<Option<Bound>> {
        use socket2::{Domain, Protocol, Socket, Type};
        let (kind, protocol) = match proto {
            "udp" => (Type::DGRAM, Protocol::UDP),
            _ => (Type::STREAM, Protocol::TCP),
        };
        let sock = match Socket::new(Domain::IPV6, kind, Some(protocol)) {
            Ok(s) => s,
            Err(e) if no_ipv6(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        sock.set_only_v6(true)?;
        if proto != "udp" {
            sock.set_reuse_address(true)?;
        }
        let at = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        match sock.bind(&at.into()) {
            Ok(()) => {}
            Err(e) if no_ipv6(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        sock.set_nonblocking(true)?;
        Ok(Some(if proto == "udp" {
            Bound::Udp(sock.into())
        } else {
            sock.listen(1024)?;
            Bound::Tcp(sock.into())
        }))
    }
}

fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

/// Every container's relays, by container id.
#[derive(Default)]
pub struct Relays {
    held: Mutex<HashMap<String, Vec<Bound>>>,
    running: Mutex<HashMap<String, Vec<JoinHandle<()>>>>,
}

impl Relays {
    /// Keeps a bound port for the container until its address is known.
    pub fn hold(&self, container_id: &str, bound: Bound) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(container_id.to_string())
            .or_default()
            .push(bound);
    }

    /// Relays the container's held ports to `target`'s address, each to
    /// the container port it was bound for (`ports`: host port → container
    /// port). Must run inside the runtime.
    pub fn serve(
        &self,
        container_id: &str,
        target: std::net::IpAddr,
        ports: &HashMap<(String, u16), u16>,
    ) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container_id)
            .unwrap_or_default();
        let mut tasks = Vec::new();
        for b in held {
            let task = match b {
                Bound::Tcp(l) => {
                    let Some(port) = local_port(l.local_addr()) else {
                        continue;
                    };
                    let Some(to) = ports.get(&("tcp".to_string(), port)) else {
                        continue;
                    };
                    match TcpListener::from_std(l) {
                        Ok(l) => tokio::spawn(relay_tcp(l, SocketAddr::new(target, *to))),
                        Err(e) => {
                            tracing::warn!("relaying [::]:{port}/tcp: {e}");
                            continue;
                        }
                    }
                }
                Bound::Udp(s) => {
                    let Some(port) = local_port(s.local_addr()) else {
                        continue;
                    };
                    let Some(to) = ports.get(&("udp".to_string(), port)) else {
                        continue;
                    };
                    match UdpSocket::from_std(s) {
                        Ok(s) => tokio::spawn(relay_udp(Arc::new(s), SocketAddr::new(target, *to))),
                        Err(e) => {
                            tracing::warn!("relaying [::]:{port}/udp: {e}");
                            continue;
                        }
                    }
                }
            };
            tasks.push(task);
        }
        if !tasks.is_empty() {
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(container_id.to_string())
                .or_default()
                .extend(tasks);
        }
    }

    /// Whether the container's ports are relayed.
    pub fn serving(&self, container_id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(container_id)
    }

    /// The container's ports let go: held ones closed, relays ended (their
    /// connections with them, as the container's network goes).
    pub fn stop(&self, container_id: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container_id);
        let tasks = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container_id);
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    }
}

fn local_port(addr: std::io::Result<SocketAddr>) -> Option<u16> {
    addr.ok().map(|a| a.port())
}

/// Each connection to the listener, relayed to `to` both ways until
/// either side closes. Ending this task ends the connections it relays.
async fn relay_tcp(listener: TcpListener, to: SocketAddr) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (mut inbound, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: a moment.
                    tracing::debug!("accepting on {:?}: {e}", listener.local_addr());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        conns.spawn(async move {
            let out = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(to)).await;
            let mut outbound = match out {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("relaying {peer} to {to}: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("relaying {peer} to {to}: no answer");
                    return;
                }
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// Each peer's datagrams relayed to `to` from a socket of its own, and
/// the answers back to the peer, until it is quiet for [`UDP_IDLE`].
async fn relay_udp(sock: Arc<UdpSocket>, to: SocketAddr) {
    let peers: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut answers = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = tokio::select! {
            got = sock.recv_from(&mut buf) => match got {
                Ok(g) => g,
                Err(e) => {
                    tracing::debug!("receiving on {:?}: {e}", sock.local_addr());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = answers.join_next(), if !answers.is_empty() => continue,
        };
        let known = peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        let upstream = match known {
            Some(u) => u,
            None => {
                let local: SocketAddr = match to {
                    SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let u = match UdpSocket::bind(local).await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::debug!("relaying {peer} to {to}: {e}");
                        continue;
                    }
                };
                if let Err(e) = u.connect(to).await {
                    tracing::debug!("relaying {peer} to {to}: {e}");
                    continue;
                }
                let u = Arc::new(u);
                peers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(peer, u.clone());
                let (sock, peers, up) = (sock.clone(), peers.clone(), u.clone());
                answers.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
                        let _ = sock.send_to(&buf[..n], peer).await;
                    }
                    peers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&peer);
                });
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free port for both protocols on [::].
    fn free_v6_port() -> Option<u16> {
        let l = std::net::TcpListener::bind("[::]:0").ok()?;
        Some(l.local_addr().ok()?.port())
    }

    #[tokio::test]
    async fn tcp_and_udp_on_ipv6_reach_the_ipv4_target() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Some(port) = free_v6_port() else {
            eprintln!("skipped: no IPv6 on this host");
            return;
        };
        // The "container": an echo on 127.0.0.1, over TCP and UDP.
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let uecho = UdpSocket::bind(("127.0.0.1", echo_port)).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = uecho.recv_from(&mut buf).await {
                let _ = uecho.send_to(&buf[..n], from).await;
            }
        });
        let relays = Relays::default();
        let (Some(tcp), Some(udp)) = (
            Bound::at(port, "tcp").unwrap(),
            Bound::at(port, "udp").unwrap(),
        ) else {
            eprintln!("skipped: no IPv6 on this host");
            return;
        };
        // The IPv4 port stays free for portmap's rules.
        assert!(std::net::TcpListener::bind(("0.0.0.0", port)).is_ok());
        // Taken: refused, as dockerd's proxy is.
        assert!(Bound::at(port, "tcp").is_err());
        relays.hold("c1", tcp);
        relays.hold("c1", udp);
        let ports: HashMap<(String, u16), u16> = [
            (("tcp".to_string(), port), echo_port),
            (("udp".to_string(), port), echo_port),
        ]
        .into();
        relays.serve("c1", "127.0.0.1".parse().unwrap(), &ports);
        let mut c = TcpStream::connect(("::1", port)).await.unwrap();
        c.write_all(b"over tcp").await.unwrap();
        let mut got = [0u8; 8];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"over tcp");
        let u = UdpSocket::bind("[::1]:0").await.unwrap();
        u.connect(("::1", port)).await.unwrap();
        u.send(b"over udp").await.unwrap();
        let mut got = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), u.recv(&mut got))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(&got[..n], b"over udp");
        relays.stop("c1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Let go: the connection and the port.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(Bound::at(port, "tcp").unwrap().is_some());
    }
}
