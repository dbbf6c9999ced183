//! Kubernetes' port-forward protocol (`kubectl port-forward`): each
//! connection the client forwards reaches `localhost:<port>` inside the
//! pod's network namespace. Over SPDY the client opens a pair of streams
//! per connection (`streamtype` error and data, the same `requestid` and
//! `port`); over a WebSocket the ports are named in the URL's query and
//! each has a data and an error channel.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::cri::v1 as cri;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::remotecommand::{negotiate_spdy, spdy_refusal, spdy_switch};
use super::{Body, plain, spdy, websocket};
use crate::cri::{Cri, sandbox_meta};

const SPDY_PROTOCOLS: [(&str, u8); 1] = [("portforward.k8s.io", 1)];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `localhost:port` in the network namespace at `netns` (the
/// node's own without one). setns applies to the calling thread only, so
/// the socket is made on a thread of its own that ends right after.
pub async fn dial(netns: Option<PathBuf>, port: u16) -> io::Result<tokio::net::TcpStream> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("portforward".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let connect = || -> io::Result<std::net::TcpStream> {
                if let Some(ns) = &netns {
                    let f = std::fs::File::open(ns)?;
                    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(io::Error::from)?;
                }
                let s = std::net::TcpStream::connect_timeout(
                    &(std::net::Ipv4Addr::LOCALHOST, port).into(),
                    CONNECT_TIMEOUT,
                )?;
                s.set_nonblocking(true)?;
                Ok(s)
            };
            let _ = tx.send(connect());
        })?;
    let s = rx
        .await
        .map_err(|_| io::Error::other("the connecting thread died"))??;
    tokio::net::TcpStream::from_std(s)
}

/// The pod's network namespace, or why it cannot be reached.
fn target(cri: &Cri, req: &cri::PortForwardRequest) -> Result<(String, Option<PathBuf>), String> {
    let r = cri
        .find("sandbox", &req.pod_sandbox_id)
        .map_err(|e| e.message().to_string())?;
    let m = sandbox_meta(&r).unwrap_or_default();
    if !m.ready {
        return Err(format!("pod sandbox {} is not ready", r.id));
    }
    Ok((r.id, m.netns))
}

fn failure(id: &str, port: u16, e: &io::Error) -> String {
    format!(
        "error forwarding port {port} to pod {id}, uid : failed to connect to localhost:{port} inside namespace {id:?}: {e}"
    )
}

pub fn serve(cri: Arc<Cri>, req: Request<Incoming>, pf: cri::PortForwardRequest) -> Response<Body> {
    let (id, netns) = match target(&cri, &pf) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if websocket::is_upgrade(&req) {
        return over_websocket(req, id, netns);
    }
    let Some((name, _)) = negotiate_spdy(&req, &SPDY_PROTOCOLS) else {
        return spdy_refusal(&req, &SPDY_PROTOCOLS);
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => over_spdy(io, id, netns).await,
            Err(e) => tracing::debug!("SPDY upgrade: {e}"),
        }
    });
    spdy_switch(name)
}

/// Copies between a client's data stream and a connection in the pod: the
/// client's end of input shuts the connection's write side; the pod's end
/// of output ends the forward.
async fn pump(
    conn: tokio::net::TcpStream,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    to_client: impl Fn(Vec<u8>) -> futures::future::BoxFuture<'static, bool> + Send + 'static,
) {
    let (mut rd, mut wr) = conn.into_split();
    let upstream = tokio::spawn(async move {
        while let Some(data) = from_client.recv().await {
            if wr.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 32 << 10];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !to_client(buf[..n].to_vec()).await {
                    break;
                }
            }
        }
    }
    upstream.abort();
}

async fn over_spdy(io: hyper::upgrade::Upgraded, id: String, netns: Option<PathBuf>) {
    let (mut streams, tx) = spdy::serve(hyper_util::rt::TokioIo::new(io));
    // Halves of pairs, by request id, until the other half comes.
    let mut waiting: HashMap<String, spdy::Stream> = HashMap::new();
    let mut last = 0;
    while let Some(s) = streams.recv().await {
        last = last.max(s.id);
        let request = s.header("requestid").unwrap_or("").to_string();
        let Some(other) = waiting.remove(&request) else {
            waiting.insert(request, s);
            continue;
        };
        let (data, error) = if s.header("streamtype") == Some("data") {
            (s, other)
        } else {
            (other, s)
        };
        let port = data.header("port").and_then(|p| p.parse::<u16>().ok());
        let (tx, id, netns) = (tx.clone(), id.clone(), netns.clone());
        tokio::spawn(async move {
            let (data_id, error_id) = (data.id, error.id);
            let result = match port {
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the data stream names no valid port",
                )),
                Some(p) => dial(netns, p).await,
            };
            match result {
                Ok(conn) => {
                    let out = tx.clone();
                    pump(conn, data.data, move |d| {
                        let out = out.clone();
                        Box::pin(async move { out.data(data_id, d).await })
                    })
                    .await;
                }
                Err(e) => {
                    let msg = failure(&id, port.unwrap_or(0), &e);
                    tracing::debug!("{msg}");
                    tx.data(error_id, msg.into_bytes()).await;
                }
            }
            tx.close(data_id).await;
            tx.close(error_id).await;
        });
    }
    tx.go_away(last).await;
}

fn over_websocket(req: Request<Incoming>, id: String, netns: Option<PathBuf>) -> Response<Body> {
    let ports: Result<Vec<u16>, _> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("port="))
        .map(str::parse::<u16>)
        .collect();
    let ports = match ports {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "query parameter \"port\" is required",
            );
        }
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("invalid port: {e}")),
    };
    let (resp, proto) = match websocket::accept(&req, &websocket::PORT_FORWARD) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Some(ws) = websocket::upgraded(upgrade).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        // Each channel first carries its port, little-endian.
        for (i, port) in ports.iter().enumerate() {
            for channel in [2 * i as u8, 2 * i as u8 + 1] {
                if sink
                    .send(websocket::frame(proto, channel, &port.to_le_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
        let mut inputs = Vec::new();
        let mut forwards = Vec::new();
        for (i, port) in ports.iter().copied().enumerate() {
            let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(16);
            inputs.push(in_tx);
            let (out, id, netns) = (out_tx.clone(), id.clone(), netns.clone());
            let data_channel = 2 * i as u8;
            forwards.push(tokio::spawn(async move {
                match dial(netns, port).await {
                    Ok(conn) => {
                        pump(conn, in_rx, move |d| {
                            let out = out.clone();
                            Box::pin(async move { out.send((data_channel, d)).await.is_ok() })
                        })
                        .await
                    }
                    Err(e) => {
                        let msg = failure(&id, port, &e);
                        let _ = out.send((data_channel + 1, msg.into_bytes())).await;
                    }
                }
            }));
        }
        drop(out_tx);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if msg.is_close() {
                    break;
                }
                if let Some((channel, data)) = websocket::unframe(proto, msg)
                    && channel % 2 == 0
                    && let Some(tx) = inputs.get(usize::from(channel / 2))
                {
                    let _ = tx.send(data).await;
                }
            }
        });
        // Until every forward has ended (their senders are dropped then).
        while let Some((channel, data)) = out_rx.recv().await {
            if sink
                .send(websocket::frame(proto, channel, &data))
                .await
                .is_err()
            {
                break;
            }
        }
        reader.abort();
        for f in forwards {
            f.abort();
        }
        let _ = sink.send(Message::Close(None)).await;
    });
    resp
}
