//! SPDY/3.1, the server side, as far as Kubernetes' streaming protocols use
//! it (the kubelet and kubectl speak it through moby/spdystream): the client
//! opens streams (SYN_STREAM with a `streamtype` header), both sides send
//! DATA on them and half-close with FIN; header blocks are zlib-compressed
//! with the protocol's dictionary, one compression context per direction
//! for the whole connection. Flow control is not enforced, as spdystream
//! does not enforce it either.

use std::collections::HashMap;
use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The zlib dictionary of SPDY/3 header blocks (draft-mbelshe-httpbis-spdy
/// section 2.6.10.1).
pub const DICTIONARY: &[u8] = include_bytes!("spdy3-dictionary.bin");

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// How long a client has to close the connection after our GOAWAY.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);
/// Frames longer than this are refused (a header block or data of 16 MiB
/// is the protocol's own limit).
const MAX_FRAME: usize = 1 << 24;

pub type Headers = Vec<(String, String)>;

#[derive(Debug, PartialEq)]
pub enum Frame {
    SynStream {
        id: u32,
        headers: Headers,
        fin: bool,
    },
    SynReply {
        id: u32,
        headers: Headers,
        fin: bool,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last: u32,
    },
    Data {
        id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// SETTINGS, HEADERS, WINDOW_UPDATE and anything newer: read and left.
    Other,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| invalid("short SPDY frame"))
}

/// Header blocks in: one zlib stream for the connection's life.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    fn inflate(&mut self, mut input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let (before_in, before_out) = (self.0.total_in(), self.0.total_out());
            match self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| invalid(format!("SPDY header dictionary: {e}")))?;
                }
                Err(e) => return Err(invalid(format!("SPDY header block: {e}"))),
            }
            let used = (self.0.total_in() - before_in) as usize;
            input = &input[used..];
            let produced = self.0.total_out() - before_out;
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if used == 0 && produced == 0 && out.len() < out.capacity() {
                return Err(invalid("SPDY header block does not decompress"));
            }
        }
    }
}

/// Header blocks out: one zlib stream for the connection's life, flushed
/// after each block so the peer can read it whole.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // A fresh compressor takes a dictionary before its first byte.
        c.set_dictionary(DICTIONARY)
            .expect("a dictionary on a fresh zlib stream");
        Deflater(c)
    }
}

impl Deflater {
    fn deflate(&mut self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.0.total_in();
            let status = self
                .0
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap_or(Status::BufError);
            input = &input[(self.0.total_in() - before) as usize..];
            // Done when everything went in and the flush left room to spare.
            if input.is_empty() && out.len() < out.capacity() || status == Status::BufError {
                return out;
            }
        }
    }
}

fn header_block(headers: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        for s in [k.to_ascii_lowercase().as_bytes(), v.as_bytes()] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s);
        }
    }
    b
}

fn parse_headers(b: &[u8]) -> io::Result<Headers> {
    let n = u32_at(b, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(64));
    let field = |at: &mut usize| -> io::Result<String> {
        let len = u32_at(b, *at)? as usize;
        let s = b
            .get(*at + 4..*at + 4 + len)
            .ok_or_else(|| invalid("short SPDY header block"))?;
        *at += 4 + len;
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    for _ in 0..n {
        let name = field(&mut at)?.to_ascii_lowercase();
        // Several values of a name travel NUL-separated.
        for v in field(&mut at)?.split('\0') {
            out.push((name.clone(), v.to_string()));
        }
    }
    Ok(out)
}

/// Reads one frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    inflater: &mut Inflater,
) -> io::Result<Frame> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let first = u32_at(&head, 0)?;
    let flags = head[4];
    let len = (u32_at(&head, 4)? & 0xff_ffff) as usize;
    if len > MAX_FRAME {
        return Err(invalid("SPDY frame too long"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let fin = flags & FLAG_FIN != 0;
    if first & 0x8000_0000 == 0 {
        return Ok(Frame::Data {
            id: first & 0x7fff_ffff,
            fin,
            data: body,
        });
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(invalid(format!(
            "SPDY version {version} is not spoken here"
        )));
    }
    let id = || Ok::<_, io::Error>(u32_at(&body, 0)? & 0x7fff_ffff);
    Ok(match (first & 0xffff) as u16 {
        SYN_STREAM => {
            let block = body.get(10..).ok_or_else(|| invalid("short SYN_STREAM"))?;
            Frame::SynStream {
                id: id()?,
                headers: parse_headers(&inflater.inflate(block)?)?,
                fin,
            }
        }
        SYN_REPLY => {
            let block = body.get(4..).ok_or_else(|| invalid("short SYN_REPLY"))?;
            Frame::SynReply {
                id: id()?,
                headers: parse_headers(&inflater.inflate(block)?)?,
                fin,
            }
        }
        RST_STREAM => Frame::RstStream {
            id: id()?,
            status: u32_at(&body, 4)?,
        },
        PING => Frame::Ping(u32_at(&body, 0)?),
        GOAWAY => Frame::GoAway { last: id()? },
        // Header blocks of HEADERS frames share the stream's zlib context:
        // inflate them to keep it in step, though nothing here uses them.
        8 => {
            if let Some(block) = body.get(4..) {
                inflater.inflate(block)?;
            }
            Frame::Other
        }
        _ => Frame::Other,
    })
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + body.len());
    b.extend_from_slice(
        &(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind)).to_be_bytes(),
    );
    b.extend_from_slice(&((u32::from(flags) << 24) | body.len() as u32).to_be_bytes());
    b.extend_from_slice(body);
    b
}

/// The bytes of a frame (header blocks through `deflater`).
pub fn encode(frame: &Frame, deflater: &mut Deflater) -> Vec<u8> {
    let fin = |f: bool| if f { FLAG_FIN } else { 0 };
    match frame {
        Frame::SynStream {
            id,
            headers,
            fin: f,
        } => {
            let mut body = Vec::new();
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&0u32.to_be_bytes());
            body.extend_from_slice(&[0, 0]);
            body.extend(deflater.deflate(&header_block(headers)));
            control(SYN_STREAM, fin(*f), &body)
        }
        Frame::SynReply {
            id,
            headers,
            fin: f,
        } => {
            let mut body = id.to_be_bytes().to_vec();
            body.extend(deflater.deflate(&header_block(headers)));
            control(SYN_REPLY, fin(*f), &body)
        }
        Frame::RstStream { id, status } => {
            let mut body = id.to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &body)
        }
        Frame::Ping(id) => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last } => {
            let mut body = last.to_be_bytes().to_vec();
            body.extend_from_slice(&0u32.to_be_bytes());
            control(GOAWAY, 0, &body)
        }
        Frame::Data { id, fin: f, data } => {
            let mut b = Vec::with_capacity(8 + data.len());
            b.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
            b.extend_from_slice(&((u32::from(fin(*f)) << 24) | data.len() as u32).to_be_bytes());
            b.extend_from_slice(data);
            b
        }
        Frame::Other => Vec::new(),
    }
}

/// A stream the client opened: its headers and what it sends on it (the
/// channel ends at its FIN or reset).
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    pub data: mpsc::Receiver<Vec<u8>>,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The writing side of a connection, cheap to clone: frames go out in the
/// order they are sent.
#[derive(Clone)]
pub struct Sender(mpsc::Sender<Frame>);

impl Sender {
    pub async fn data(&self, id: u32, data: Vec<u8>) -> bool {
        self.0
            .send(Frame::Data {
                id,
                fin: false,
                data,
            })
            .await
            .is_ok()
    }

    /// Our half of the stream is done.
    pub async fn close(&self, id: u32) {
        let _ = self
            .0
            .send(Frame::Data {
                id,
                fin: true,
                data: Vec::new(),
            })
            .await;
    }

    /// No more streams: the connection ends once the client has read
    /// what was sent.
    pub async fn go_away(&self, last: u32) {
        let _ = self.0.send(Frame::GoAway { last }).await;
    }
}

/// Serves a connection: answers every stream the client opens (the
/// streams come out of the returned receiver) and pings, and writes
/// what the returned sender is given. Ends with the connection.
pub fn serve<S>(io: S) -> (mpsc::Receiver<Stream>, Sender)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let (gone_away, mut going) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut deflater = Deflater::default();
        while let Some(frame) = out_rx.recv().await {
            let bytes = encode(&frame, &mut deflater);
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
            if matches!(frame, Frame::GoAway { .. }) {
                let _ = wr.flush().await;
                gone_away.send_replace(true);
            }
        }
        let _ = wr.shutdown().await;
    });
    // After our GOAWAY the client closes the connection; one that does not
    // is left after LINGER, so no connection outlives its session.
    let linger = async move {
        while !*going.borrow_and_update() {
            if going.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(LINGER).await;
    };
    let replies = out_tx.clone();
    tokio::spawn(async move {
        let mut inflater = Inflater::default();
        let mut open: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
        tokio::pin!(linger);
        loop {
            let read = tokio::select! {
                r = read_frame(&mut rd, &mut inflater) => r,
                _ = &mut linger => break,
            };
            let frame = match read {
                Ok(f) => f,
                Err(e) => {
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        tracing::debug!("SPDY connection: {e}");
                    }
                    break;
                }
            };
            match frame {
                Frame::SynStream { id, headers, fin } => {
                    let (tx, rx) = mpsc::channel(64);
                    if !fin {
                        open.insert(id, tx);
                    }
                    let reply = Frame::SynReply {
                        id,
                        headers: Vec::new(),
                        fin: false,
                    };
                    if replies.send(reply).await.is_err() {
                        break;
                    }
                    let stream = Stream {
                        id,
                        headers,
                        data: rx,
                    };
                    if streams_tx.send(stream).await.is_err() {
                        break;
                    }
                }
                Frame::Data { id, fin, data } => {
                    if let Some(tx) = open.get(&id)
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        open.remove(&id);
                    }
                    if fin {
                        open.remove(&id);
                    }
                }
                Frame::RstStream { id, .. } => {
                    open.remove(&id);
                }
                // A ping of the client's (odd id) goes back as it came.
                Frame::Ping(n) if n % 2 == 1 => {
                    let _ = replies.send(Frame::Ping(n)).await;
                }
                Frame::GoAway { .. } => break,
                _ => {}
            }
        }
    });
    (streams_rx, Sender(out_tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Its zlib id (Adler-32), which every SPDY/3 header block names.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
        assert_eq!(DICTIONARY.len(), 1423);
    }

    #[tokio::test]
    async fn frames_round_trip_with_one_zlib_context_per_direction() {
        let frames = [
            Frame::SynStream {
                id: 1,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "80".into()),
                ],
                fin: false,
            },
            Frame::SynStream {
                id: 3,
                headers: vec![("streamtype".into(), "stdout".into())],
                fin: true,
            },
            Frame::SynReply {
                id: 3,
                headers: Vec::new(),
                fin: false,
            },
            Frame::Data {
                id: 3,
                fin: true,
                data: b"hello".to_vec(),
            },
            Frame::RstStream { id: 5, status: 5 },
            Frame::Ping(7),
            Frame::GoAway { last: 3 },
        ];
        let mut deflater = Deflater::default();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(encode(f, &mut deflater));
        }
        let mut r = wire.as_slice();
        let mut inflater = Inflater::default();
        for f in frames {
            assert_eq!(read_frame(&mut r, &mut inflater).await.expect("a frame"), f);
        }
        assert!(r.is_empty());
    }

    #[test]
    fn several_values_of_a_header_are_split() {
        let block = header_block(&vec![("A".into(), "x\0y".into())]);
        assert_eq!(
            parse_headers(&block).expect("headers"),
            vec![("a".to_string(), "x".to_string()), ("a".into(), "y".into())]
        );
    }
}
