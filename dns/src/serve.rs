//! The listeners, one UDP socket and one TCP listener per served address
//! (and, with a namespace directory, per container at 127.0.0.11 inside
//! its own network namespace), and the records they answer from. A reload swaps the records in one
//! step and touches only the listeners of addresses that came or went: a
//! query that arrives during a reload is answered from the records before
//! or after it, never refused.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
    sockopt,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::answer::{Outcome, TCP_MOST, UDP_PLAIN, answer, server_failure};
use crate::upstream;
use crate::zone::Zone;

/// Where a container finds Docker's embedded DNS from inside its own
/// namespace: software is configured with it (nginx's `resolver
/// 127.0.0.11`), whatever resolv.conf says.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// How long the listeners of an address no network is served on any
/// more are kept: a network made again at once (compose down, then up)
/// gets the same gateway, and answers still being forwarded hold the
/// old socket.
const LINGER: Duration = Duration::from_secs(30);
/// Forwarded queries in flight, and TCP askers, at most: past that a
/// query waits for the asker's retry.
const FORWARDS: usize = 512;
const TCP_ASKERS: usize = 128;
/// An idle TCP asker is let go after this.
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct Config {
    pub dir: PathBuf,
    pub port: u16,
    pub resolv_conf: PathBuf,
    /// Instead of the resolv.conf's servers.
    pub upstreams: Vec<SocketAddr>,
    /// The containers' network namespaces, one file per container named
    /// by its id: each is served at [`RESOLVER`] inside its own.
    pub netns_dir: Option<PathBuf>,
}

/// The directory, beside the network files, of the resolvers containers
/// name themselves (`--dns`): one file per container, named by its id,
/// with resolv.conf's `nameserver` lines.
pub const UPSTREAMS_DIR: &str = "upstreams";

/// What the listeners answer from, replaced whole on a reload.
struct Served {
    zone: Zone,
    upstreams: Vec<SocketAddr>,
    /// The resolvers of containers that name their own, by id.
    own: HashMap<String, Vec<SocketAddr>>,
}

impl Served {
    /// Where a name `asker` asks that is not here goes: the resolvers
    /// its container names (as Docker's resolver forwards to the
    /// container's `--dns` servers), else the host's.
    fn upstreams_for(&self, asker: IpAddr) -> &[SocketAddr] {
        self.zone
            .askers(asker)
            .iter()
            .find_map(|id| self.own.get(*id))
            .unwrap_or(&self.upstreams)
    }
}

pub struct Server {
    cfg: Config,
    served: RwLock<Arc<Served>>,
    listeners: Mutex<HashMap<IpAddr, Listener>>,
    /// By container id.
    inside: Mutex<HashMap<String, Inside>>,
    /// Where sockets inside namespaces are made (with a namespace
    /// directory).
    ns_worker: Option<std::sync::mpsc::Sender<NsRequest>>,
    forwards: Arc<Semaphore>,
    tcp_askers: Arc<Semaphore>,
}

#[derive(Default)]
struct Listener {
    udp: Option<JoinHandle<()>>,
    tcp: Option<JoinHandle<()>>,
    /// Since when no network is served here.
    retired: Option<Instant>,
}

/// A container's listeners at [`RESOLVER`] in its namespace.
struct Inside {
    /// The namespace file's device and inode: a container started again
    /// has a new namespace at the same path, and is listened for in it.
    ns: (u64, u64),
    /// None while its sockets are being made.
    listener: Option<Listener>,
}

/// Sockets to make at `at` inside the namespace held at `ns`.
struct NsRequest {
    ns: PathBuf,
    at: SocketAddr,
    reply: tokio::sync::oneshot::Sender<std::io::Result<(OwnedFd, OwnedFd)>>,
}

/// Who asks on a listener: on a gateway, the asker's address tells; at
/// [`RESOLVER`] every asker comes from the namespace's loopback, and the
/// listener tells which container it is.
#[derive(Clone)]
enum Who {
    Peer,
    Container(Arc<str>),
}

impl Who {
    /// The address the asker is answered as: a container asks as one of
    /// its addresses (and sees the names of all its networks); one whose
    /// records are gone asks as its loopback, which no record has.
    fn asker(&self, zone: &Zone, peer: IpAddr) -> IpAddr {
        match self {
            Who::Peer => peer,
            Who::Container(id) => zone.address_of(id).unwrap_or(peer),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in [&self.udp, &self.tcp].into_iter().flatten() {
            t.abort();
        }
    }
}

impl Server {
    pub fn new(cfg: Config) -> Arc<Server> {
        let ns_worker = cfg.netns_dir.is_some().then(ns_worker);
        Arc::new(Server {
            cfg,
            served: RwLock::new(Arc::new(Served {
                zone: Zone::default(),
                upstreams: Vec::new(),
                own: HashMap::new(),
            })),
            listeners: Mutex::new(HashMap::new()),
            inside: Mutex::new(HashMap::new()),
            ns_worker,
            forwards: Arc::new(Semaphore::new(FORWARDS)),
            tcp_askers: Arc::new(Semaphore::new(TCP_ASKERS)),
        })
    }

    fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the records and the host's resolvers again, listens on new
    /// addresses, then answers from the new records. Returns how many
    /// networks are served. Must run inside the runtime.
    pub fn reload(self: &Arc<Self>) -> std::io::Result<usize> {
        let (zone, warnings) = Zone::load(&self.cfg.dir)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        let upstreams = if self.cfg.upstreams.is_empty() {
            let text = std::fs::read_to_string(&self.cfg.resolv_conf).unwrap_or_default();
            upstream::from_resolv_conf(&text)
        } else {
            self.cfg.upstreams.clone()
        };
        let wanted = zone.listen_addresses();
        let networks = zone.networks.len();
        {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            for ip in &wanted {
                listeners.entry(*ip).or_default().retired = None;
            }
            for (ip, l) in listeners.iter_mut() {
                if !wanted.contains(ip) && l.retired.is_none() {
                    l.retired = Some(Instant::now());
                }
            }
        }
        self.listen_gateways();
        let own = self.own_upstreams(&zone);
        let served = Arc::new(Served {
            zone,
            upstreams,
            own,
        });
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = served.clone();
        self.listen_inside(&served.zone);
        Ok(networks)
    }

    /// The resolvers the containers with records name themselves.
    fn own_upstreams(&self, zone: &Zone) -> HashMap<String, Vec<SocketAddr>> {
        let dir = self.cfg.dir.join(UPSTREAMS_DIR);
        zone.containers()
            .into_iter()
            .filter_map(|id| {
                let text = std::fs::read_to_string(dir.join(id)).ok()?;
                let servers = upstream::from_resolv_conf(&text);
                (!servers.is_empty()).then(|| (id.to_string(), servers))
            })
            .collect()
    }

    /// Binds what is not bound yet (an address another process held a
    /// moment ago is tried again on the next tick) and lets go of
    /// listeners retired long enough.
    pub fn listen(self: &Arc<Self>) {
        self.listen_gateways();
        self.listen_inside(&self.served().zone);
    }

    fn listen_gateways(self: &Arc<Self>) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|_, l| l.retired.is_none_or(|at| at.elapsed() < LINGER));
        for (ip, l) in listeners.iter_mut() {
            if l.retired.is_some() {
                continue;
            }
            if l.udp.is_none() {
                match udp_socket(*ip, self.cfg.port) {
                    Ok(sock) => {
                        tracing::debug!("serving {ip} over UDP");
                        l.udp = Some(tokio::spawn(
                            self.clone().serve_udp(Arc::new(sock), Who::Peer),
                        ));
                    }
                    Err(e) => tracing::warn!("listening on {ip} port {} (UDP): {e}", self.cfg.port),
                }
            }
            if l.tcp.is_none() {
                match tcp_listener(*ip, self.cfg.port) {
                    Ok(lis) => l.tcp = Some(tokio::spawn(self.clone().serve_tcp(lis, Who::Peer))),
                    Err(e) => tracing::warn!("listening on {ip} port {} (TCP): {e}", self.cfg.port),
                }
            }
        }
    }

    /// Each container with a record (and a namespace file) listened for
    /// at [`RESOLVER`] in its namespace; the listeners of containers gone
    /// let go at once (a socket holds its namespace alive). One that
    /// cannot be bound now is tried again on the next tick.
    fn listen_inside(self: &Arc<Self>, zone: &Zone) {
        let (Some(dir), Some(worker)) = (&self.cfg.netns_dir, &self.ns_worker) else {
            return;
        };
        let wanted = zone.containers();
        let mut inside = self.inside.lock().unwrap_or_else(|e| e.into_inner());
        inside.retain(|id, _| wanted.contains(id.as_str()));
        for id in wanted {
            let path = dir.join(id);
            let Ok(meta) = std::fs::metadata(&path) else {
                inside.remove(id);
                continue;
            };
            let ns = (meta.dev(), meta.ino());
            if inside.get(id).is_some_and(|i| i.ns == ns) {
                continue;
            }
            // The old namespace's go first (they hold it alive); the new
            // ones are made on the worker while the server goes on
            // answering.
            inside.insert(id.to_string(), Inside { ns, listener: None });
            let (reply, made) = tokio::sync::oneshot::channel();
            let at = SocketAddr::new(RESOLVER.into(), self.cfg.port);
            if worker
                .send(NsRequest {
                    ns: path,
                    at,
                    reply,
                })
                .is_err()
            {
                inside.remove(id);
                continue;
            }
            let (me, id) = (self.clone(), id.to_string());
            tokio::spawn(async move {
                let made = made
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("the namespace worker ended")));
                me.inside_made(&id, ns, made);
            });
        }
    }

    /// A container's sockets made (or not): served if the container still
    /// wants them in that namespace; dropped otherwise. One that failed is
    /// tried again on the next tick.
    fn inside_made(
        self: &Arc<Self>,
        id: &str,
        ns: (u64, u64),
        made: std::io::Result<(OwnedFd, OwnedFd)>,
    ) {
        let mut inside = self.inside.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = inside
            .get_mut(id)
            .filter(|i| i.ns == ns && i.listener.is_none())
        else {
            return;
        };
        match made.and_then(|(udp, tcp)| self.serve_inside(id, udp, tcp)) {
            Ok(listener) => {
                tracing::debug!("serving container {id} at {RESOLVER}");
                entry.listener = Some(listener);
            }
            Err(e) => {
                tracing::debug!("listening at {RESOLVER} for container {id}: {e}");
                inside.remove(id);
            }
        }
    }

    fn serve_inside(
        self: &Arc<Self>,
        id: &str,
        udp: OwnedFd,
        tcp: OwnedFd,
    ) -> std::io::Result<Listener> {
        let udp = UdpSocket::from_std(std::net::UdpSocket::from(udp))?;
        let tcp = TcpListener::from_std(std::net::TcpListener::from(tcp))?;
        let who = Who::Container(Arc::from(id));
        Ok(Listener {
            udp: Some(tokio::spawn(
                self.clone().serve_udp(Arc::new(udp), who.clone()),
            )),
            tcp: Some(tokio::spawn(self.clone().serve_tcp(tcp, who))),
            retired: None,
        })
    }

    async fn serve_udp(self: Arc<Self>, sock: Arc<UdpSocket>, who: Who) {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, asker) = match sock.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    // Not expected on an unconnected socket: a moment,
                    // rather than a loop at full speed on an error that stays.
                    tracing::debug!("receiving: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let query = &buf[..n];
            let served = self.served();
            let asking = who.asker(&served.zone, asker.ip());
            match answer(&served.zone, asking, query, UDP_PLAIN) {
                Outcome::Reply(reply) => {
                    let _ = sock.send_to(&reply, asker).await;
                }
                Outcome::Forward => {
                    let Ok(permit) = self.forwards.clone().try_acquire_owned() else {
                        continue;
                    };
                    let (sock, query) = (sock.clone(), query.to_vec());
                    tokio::spawn(async move {
                        let reply = upstream::over_udp(served.upstreams_for(asking), &query)
                            .await
                            .or_else(|| server_failure(&query));
                        if let Some(reply) = reply {
                            let _ = sock.send_to(&reply, asker).await;
                        }
                        drop(permit);
                    });
                }
                Outcome::Drop => {}
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, listener: TcpListener, who: Who) {
        loop {
            let (stream, asker) = match listener.accept().await {
                Ok(got) => got,
                Err(e) => {
                    // Out of descriptors, most likely: a moment for askers
                    // to finish.
                    tracing::debug!("accepting: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.tcp_askers.clone().try_acquire_owned() else {
                continue;
            };
            let (me, who) = (self.clone(), who.clone());
            tokio::spawn(async move {
                if let Err(e) = me.tcp_asker(stream, asker, &who).await {
                    tracing::debug!("{asker} over TCP: {e}");
                }
                drop(permit);
            });
        }
    }

    /// Queries one after another on one connection, each with its length
    /// in front (RFC 1035 4.2.2).
    async fn tcp_asker(
        &self,
        mut stream: TcpStream,
        asker: SocketAddr,
        who: &Who,
    ) -> std::io::Result<()> {
        loop {
            let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
                Ok(Ok(len)) => len,
                _ => return Ok(()),
            };
            let mut query = vec![0u8; usize::from(len)];
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)??;
            let served = self.served();
            let asking = who.asker(&served.zone, asker.ip());
            let reply = match answer(&served.zone, asking, &query, TCP_MOST) {
                Outcome::Reply(reply) => Some(reply),
                Outcome::Forward => upstream::over_tcp(served.upstreams_for(asking), &query)
                    .await
                    .or_else(|| server_failure(&query)),
                Outcome::Drop => None,
            };
            let Some(reply) = reply else { return Ok(()) };
            let Ok(n) = u16::try_from(reply.len()) else {
                return Ok(());
            };
            let mut msg = n.to_be_bytes().to_vec();
            msg.extend_from_slice(&reply);
            stream.write_all(&msg).await?;
        }
    }
}

/// A socket on `ip` even before the address is on an interface (a
/// network's bridge gets its gateway when its first container joins).
fn socket_on(ip: IpAddr, port: u16, kind: SockType) -> std::io::Result<OwnedFd> {
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if ip.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    if kind == SockType::Stream {
        // A listener bound again at once (the server restarted) must not
        // wait for its old connections' TIME_WAIT. Not for UDP: there it
        // would let two servers share the address and split the queries.
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(ip, port)),
    )?;
    Ok(fd)
}

/// The thread that makes sockets inside containers' namespaces, for the
/// server's life: setns moves only the calling thread, and a thread made
/// and waited for per container held up every answer while it was
/// scheduled. It goes back to the server's namespace after each request:
/// a thread left in a container's would keep that namespace alive after
/// the container.
fn ns_worker() -> std::sync::mpsc::Sender<NsRequest> {
    let (tx, rx) = std::sync::mpsc::channel::<NsRequest>();
    let home = std::fs::File::open("/proc/thread-self/ns/net");
    let spawned = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            for r in rx {
                let made = match &home {
                    Ok(home) => sockets_in(&r.ns, r.at, home),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                let _ = r.reply.send(made);
            }
        });
    if let Err(e) = spawned {
        // The requests then fail (their replies are dropped) and are
        // tried again on each tick.
        tracing::warn!("starting the namespace thread: {e}");
    }
    tx
}

/// A UDP socket and a TCP listener at `at` inside the network namespace
/// held at `ns`, made by the calling thread, which returns to `home`.
fn sockets_in(
    ns: &Path,
    at: SocketAddr,
    home: &std::fs::File,
) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sched::{CloneFlags, setns};
    let target = std::fs::File::open(ns)?;
    setns(&target, CloneFlags::CLONE_NEWNET)?;
    let made = (|| {
        let udp = socket_on(at.ip(), at.port(), SockType::Datagram)?;
        let tcp = socket_on(at.ip(), at.port(), SockType::Stream)?;
        listen(&tcp, Backlog::new(128).map_err(std::io::Error::from)?)?;
        Ok((udp, tcp))
    })();
    if let Err(e) = setns(home, CloneFlags::CLONE_NEWNET) {
        tracing::error!("back to the server's network namespace: {e}");
    }
    made
}

fn udp_socket(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let fd = socket_on(ip, port, SockType::Datagram)?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

fn tcp_listener(ip: IpAddr, port: u16) -> std::io::Result<TcpListener> {
    let fd = socket_on(ip, port, SockType::Stream)?;
    listen(&fd, Backlog::new(128).map_err(std::io::Error::from)?)?;
    TcpListener::from_std(std::net::TcpListener::from(fd))
}
