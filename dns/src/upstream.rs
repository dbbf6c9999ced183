//! The host's resolvers, for every name that is not a container's: the
//! query goes out as the asker sent it and the answer comes back as is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream server is given before the next is asked: two
/// of them fit in a resolver's usual 5 s.
const PER_SERVER: Duration = Duration::from_secs(2);

/// The `nameserver` lines of a resolv.conf, on port 53.
pub fn from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "nameserver").then_some(())?;
            // A scoped IPv6 address (fe80::1%eth0) names the host's link.
            let addr = f.next()?.split('%').next()?;
            Some(SocketAddr::new(addr.parse::<IpAddr>().ok()?, 53))
        })
        .collect()
}

/// Asks `servers` in turn over UDP; the first answer to `query` wins.
pub async fn over_udp(servers: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    in_turn(servers, "udp", |server| udp_once(server, query)).await
}

/// Asks `servers` in turn over TCP (the asker came over TCP: the answer
/// is too big for UDP).
pub async fn over_tcp(servers: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    in_turn(servers, "tcp", |server| tcp_once(server, query)).await
}

/// Each server in turn, each given [`PER_SERVER`]; the first answer.
async fn in_turn<F, Fut>(servers: &[SocketAddr], how: &str, ask: F) -> Option<Vec<u8>>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<u8>>>,
{
    for &server in servers {
        match tokio::time::timeout(PER_SERVER, ask(server)).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => tracing::debug!("upstream {server} ({how}): {e}"),
            Err(_) => tracing::debug!("upstream {server} ({how}): no answer"),
        }
    }
    None
}

/// A socket of its own per query: a fresh source port, and only the
/// server it is connected to can answer on it.
async fn udp_once(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Another query's late answer is not this one's.
        if n >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_once(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut s = TcpStream::connect(server).await?;
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(query);
    s.write_all(&msg).await?;
    let n = s.read_u16().await?;
    let mut reply = vec![0u8; usize::from(n)];
    s.read_exact(&mut reply).await?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_read_and_the_rest_left() {
        let text = "# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:2\nnameserver 127.0.0.53 # local\n";
        assert_eq!(
            from_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "127.0.0.53:53".parse().unwrap(),
            ]
        );
    }

    #[tokio::test]
    async fn the_first_server_that_answers_wins() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let answering = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a, s) = (
            answering.local_addr().unwrap(),
            silent.local_addr().unwrap(),
        );
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = answering.recv_from(&mut buf).await.unwrap();
            // A stray answer first (another id), then the real one.
            answering.send_to(b"\xff\xffstray", from).await.unwrap();
            let mut reply = buf[..n].to_vec();
            reply.extend_from_slice(b"answer");
            answering.send_to(&reply, from).await.unwrap();
        });
        let got = over_udp(&[a], b"\x12\x34query").await.unwrap();
        assert_eq!(got, b"\x12\x34queryanswer");
        // A closed port is an error (the next server is asked), not a wait.
        drop(silent);
        let once = tokio::time::timeout(Duration::from_secs(30), udp_once(s, b"\x12\x34query"));
        let e = once.await.expect("refused, not waited on").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
