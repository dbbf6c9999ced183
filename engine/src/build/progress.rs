//! Docker's build output: a JSON message per line, `stream` for text,
//! `aux` for the image id, `errorDetail`/`error` for the failure, as the
//! docker CLI, docker-py and docker-compose read them.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// With `q` (quiet) nothing is sent while the build runs, as dockerd's
/// builder writes to a buffer then: a success answers the image id alone
/// (a `stream` line, which the docker CLI prints for `-q`), a failure
/// sends what was held, then the error.
#[derive(Clone)]
pub struct Progress {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    quiet: bool,
    /// Something was sent: a failure from now on goes in the stream, not
    /// as the HTTP status.
    started: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// What a quiet build would have said, for its failure.
    held: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Progress {
    pub fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>, quiet: bool) -> Progress {
        Progress {
            tx,
            quiet,
            started: Default::default(),
            held: Default::default(),
        }
    }

    /// Whether a failure now is told in the stream: something was sent,
    /// or a quiet build holds something to send before it.
    pub fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::SeqCst) || !self.held_lines().is_empty()
    }

    fn held_lines(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sent now, or held when the build is quiet.
    async fn say(&self, v: Value) {
        if self.quiet {
            self.held_lines().push(v);
        } else {
            self.send(v).await;
        }
    }

    async fn send(&self, v: Value) {
        let mut line = v.to_string();
        line.push_str("\r\n");
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(Ok(Bytes::from(line))).await;
    }

    /// Text the client prints as it comes.
    pub async fn stream(&self, text: &str) {
        if !text.is_empty() {
            self.say(json!({ "stream": text })).await;
        }
    }

    /// The image built; the CLI's --iidfile takes it from here.
    pub async fn aux(&self, id: &str) {
        self.say(json!({ "aux": { "ID": id } })).await;
    }

    /// The build succeeded: a quiet one answers the image id now.
    pub async fn built(&self, id: &str) {
        if self.quiet {
            self.send(json!({ "stream": format!("{id}\n") })).await;
        }
    }

    pub async fn error(&self, message: &str, code: Option<i32>) {
        let held = std::mem::take(&mut *self.held_lines());
        for v in held {
            self.send(v).await;
        }
        let detail = match code {
            Some(code) => json!({ "code": code, "message": message }),
            None => json!({ "message": message }),
        };
        self.send(json!({ "errorDetail": detail, "error": message }))
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

impl crate::api::images::PullOutput for Progress {
    async fn line(&self, v: Value) -> bool {
        self.say(v).await;
        !self.closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sent(rx: &mut mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Ok(b)) = rx.try_recv() {
            out.push(serde_json::from_slice(&b).expect("a JSON line"));
        }
        out
    }

    #[tokio::test]
    async fn a_quiet_build_answers_its_id_alone() {
        let (tx, mut rx) = mpsc::channel(16);
        let p = Progress::new(tx, true);
        p.stream("Step 1/1 : FROM busybox\n").await;
        p.aux("sha256:abc").await;
        assert!(
            p.started(),
            "what it holds makes a failure go in the stream"
        );
        p.built("sha256:abc").await;
        assert_eq!(sent(&mut rx).await, [json!({"stream": "sha256:abc\n"})]);
    }

    #[tokio::test]
    async fn a_quiet_build_that_fails_tells_what_it_held_then_the_error() {
        let (tx, mut rx) = mpsc::channel(16);
        let p = Progress::new(tx, true);
        assert!(!p.started(), "nothing held: the failure is the HTTP status");
        p.stream("Step 1/2 : RUN exit 3\n").await;
        p.error("it failed", Some(3)).await;
        let lines = sent(&mut rx).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], json!({"stream": "Step 1/2 : RUN exit 3\n"}));
        assert_eq!(lines[1]["errorDetail"]["code"], 3);
    }

    #[tokio::test]
    async fn a_build_that_is_not_quiet_says_everything_as_it_comes() {
        let (tx, mut rx) = mpsc::channel(16);
        let p = Progress::new(tx, false);
        p.stream("Step 1/1 : FROM busybox\n").await;
        p.aux("sha256:abc").await;
        p.built("sha256:abc").await;
        assert_eq!(
            sent(&mut rx).await,
            [
                json!({"stream": "Step 1/1 : FROM busybox\n"}),
                json!({"aux": {"ID": "sha256:abc"}})
            ]
        );
    }
}
