//! The WebSocket transport (`channel.k8s.io` and its versions): every
//! message starts with the number of its channel (0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize; for port forwarding two per port), binary,
//! or as an ASCII digit and base64 under the `base64.` protocols. v5 adds a
//! message (255, channel) that closes a channel, so stdin can end.

use std::sync::Arc;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::remotecommand::{self, Client, Opts, Out, Target};
use super::{Body, header_list, plain};
use crate::cri::Cri;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closes one of its channels.
const CLOSE: u8 = 255;

/// A negotiated WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proto {
    pub name: &'static str,
    pub version: u8,
    pub base64: bool,
}

const REMOTE_COMMAND: [Proto; 7] = [
    Proto {
        name: "v5.channel.k8s.io",
        version: 5,
        base64: false,
    },
    Proto {
        name: "v4.channel.k8s.io",
        version: 4,
        base64: false,
    },
    Proto {
        name: "v4.base64.channel.k8s.io",
        version: 4,
        base64: true,
    },
    Proto {
        name: "v3.channel.k8s.io",
        version: 3,
        base64: false,
    },
    Proto {
        name: "v2.channel.k8s.io",
        version: 2,
        base64: false,
    },
    Proto {
        name: "channel.k8s.io",
        version: 1,
        base64: false,
    },
    Proto {
        name: "base64.channel.k8s.io",
        version: 1,
        base64: true,
    },
];

pub const PORT_FORWARD: [Proto; 3] = [
    Proto {
        name: "v4.channel.k8s.io",
        version: 4,
        base64: false,
    },
    Proto {
        name: "v4.base64.channel.k8s.io",
        version: 4,
        base64: true,
    },
    Proto {
        name: "channel.k8s.io",
        version: 1,
        base64: false,
    },
];

pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    header_list(req, "upgrade")
        .iter()
        .any(|u| u.eq_ignore_ascii_case("websocket"))
}

/// The handshake: the first protocol of the client's this server knows
/// (none offered: plain binary channels, as the oldest clients expect).
pub fn accept(
    req: &Request<Incoming>,
    known: &[Proto],
) -> Result<(Response<Body>, Proto), Box<Response<Body>>> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key",
        )));
    };
    let offered = header_list(req, "sec-websocket-protocol");
    let proto = if offered.is_empty() {
        Proto {
            name: "",
            version: 1,
            base64: false,
        }
    } else {
        match offered
            .iter()
            .find_map(|o| known.iter().find(|p| p.name == o.as_str()))
        {
            Some(p) => *p,
            None => {
                let server: Vec<&str> = known.iter().map(|p| p.name).collect();
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "requested protocol(s) are not supported: {offered:?}; supports {server:?}"
                    ),
                )));
            }
        }
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        "Upgrade".parse().expect("a header value"),
    );
    h.insert(
        hyper::header::UPGRADE,
        "websocket".parse().expect("a header value"),
    );
    if let Ok(v) = accept.parse() {
        h.insert("sec-websocket-accept", v);
    }
    if !proto.name.is_empty()
        && let Ok(v) = proto.name.parse()
    {
        h.insert("sec-websocket-protocol", v);
    }
    Ok((r, proto))
}

/// A message on `channel` as `proto` frames it.
pub fn frame(proto: Proto, channel: u8, data: &[u8]) -> Message {
    if proto.base64 {
        let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        s.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut b = Vec::with_capacity(1 + data.len());
        b.push(channel);
        b.extend_from_slice(data);
        Message::binary(b)
    }
}

/// The channel and data of a client's message; None for anything else.
pub fn unframe(proto: Proto, msg: Message) -> Option<(u8, Vec<u8>)> {
    match msg {
        Message::Binary(b) if !b.is_empty() => Some((b[0], b[1..].to_vec())),
        Message::Text(t) if proto.base64 && !t.is_empty() => {
            let s = t.as_str();
            let channel = s.as_bytes()[0].wrapping_sub(b'0');
            let data = base64::engine::general_purpose::STANDARD
                .decode(&s[1..])
                .ok()?;
            Some((channel, data))
        }
        _ => None,
    }
}

pub type Ws = WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

pub async fn upgraded(upgrade: hyper::upgrade::OnUpgrade) -> Option<Ws> {
    match upgrade.await {
        Ok(io) => Some(
            WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(io), Role::Server, None)
                .await,
        ),
        Err(e) => {
            tracing::debug!("WebSocket upgrade: {e}");
            None
        }
    }
}

pub fn remote_command(cri: Arc<Cri>, req: Request<Incoming>, target: Target) -> Response<Body> {
    let (resp, proto) = match accept(&req, &REMOTE_COMMAND) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let opts = target.opts();
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Some(ws) = upgraded(upgrade).await {
            session(cri, ws, proto, target, opts).await;
        }
    });
    resp
}

async fn session(cri: Arc<Cri>, ws: Ws, proto: Proto, target: Target, opts: Opts) {
    let (mut sink, mut stream) = ws.split();
    // The lowest channel the client reads says the session is open.
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    if sink.send(frame(proto, first, &[])).await.is_err() {
        return;
    }
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Vec<u8>>(4);
    let (gone_tx, gone) = oneshot::channel();
    tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        let mut resize_tx = Some(resize_tx);
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_close() {
                break;
            }
            let Some((channel, data)) = unframe(proto, msg) else {
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(tx) = &stdin_tx
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        stdin_tx = None;
                    }
                }
                RESIZE => {
                    if let Some(tx) = &resize_tx
                        && tx.send(data).await.is_err()
                    {
                        resize_tx = None;
                    }
                }
                CLOSE if proto.version >= 5 => match data.first() {
                    Some(&STDIN) => stdin_tx = None,
                    Some(&RESIZE) => resize_tx = None,
                    _ => {}
                },
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    });
    let resize = (opts.tty && proto.version >= 3).then(|| {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(remotecommand::resize_events(resize_rx, tx));
        rx
    });
    let (out_tx, mut out_rx) = mpsc::channel::<(Out, Vec<u8>)>(16);
    let client = Client {
        stdin: opts.stdin.then_some(stdin_rx),
        resize,
        out: out_tx,
        gone,
    };
    let run = remotecommand::run(&cri, target, opts, client);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            o = &mut run => break o,
            Some((which, data)) = out_rx.recv() => {
                let channel = if which == Out::Stderr { STDERR } else { STDOUT };
                if sink.send(frame(proto, channel, &data)).await.is_err() {
                    // The client is gone; the session notices and ends.
                    continue;
                }
            }
        }
    };
    while let Ok((which, data)) = out_rx.try_recv() {
        let channel = if which == Out::Stderr { STDERR } else { STDOUT };
        let _ = sink.send(frame(proto, channel, &data)).await;
    }
    if let Some(bytes) = outcome.encode(proto.version) {
        let _ = sink.send(frame(proto, ERROR, &bytes)).await;
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_frame_in_binary_and_base64() {
        let bin = REMOTE_COMMAND[1];
        let b64 = REMOTE_COMMAND[2];
        assert_eq!(
            frame(bin, STDOUT, b"hi"),
            Message::binary(vec![1, b'h', b'i'])
        );
        assert_eq!(frame(b64, STDERR, b"hi"), Message::text("2aGk="));
        assert_eq!(
            unframe(b64, Message::text("0aGk=")),
            Some((STDIN, b"hi".to_vec()))
        );
        assert_eq!(
            unframe(bin, Message::binary(vec![4, b'{'])),
            Some((RESIZE, b"{".to_vec()))
        );
        assert_eq!(unframe(bin, Message::binary(Vec::<u8>::new())), None);
    }
}
