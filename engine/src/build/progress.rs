//! Docker's build output: a JSON message per line, `stream` for text,
//! `aux` for the image id, `errorDetail`/`error` for the failure, as the
//! docker CLI, docker-py and docker-compose read them.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Progress {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    quiet: bool,
    /// Something was sent: a failure from now on goes in the stream, not
    /// as the HTTP status.
    started: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    pub fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>, quiet: bool) -> Progress {
        Progress {
            tx,
            quiet,
            started: Default::default(),
        }
    }

    pub fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn send(&self, v: Value) {
        let mut line = v.to_string();
        line.push_str("\r\n");
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(Ok(Bytes::from(line))).await;
    }

    /// Text the client prints as it comes (nothing with `q`).
    pub async fn stream(&self, text: &str) {
        if !self.quiet && !text.is_empty() {
            self.send(json!({ "stream": text })).await;
        }
    }

    /// A status line (pulls).
    pub async fn status(&self, status: &str, id: &str) {
        if !self.quiet {
            self.send(json!({ "status": status, "id": id })).await;
        }
    }

    /// The image built; the CLI's -q and --iidfile take it from here.
    pub async fn aux(&self, id: &str) {
        self.send(json!({ "aux": { "ID": id } })).await;
    }

    pub async fn error(&self, message: &str, code: i32) {
        self.send(json!({
            "errorDetail": { "code": code, "message": message },
            "error": message,
        }))
        .await;
    }

    /// Whether the client went away.
    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the client goes away.
    pub async fn gone(&self) {
        self.tx.closed().await
    }
}
