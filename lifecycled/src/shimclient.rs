//! Starting a shim and talking to it over its unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_proto::shim::v1::shim_client::ShimClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub type Client = ShimClient<Channel>;

/// Connects to a shim's socket (eagerly, so a dead shim fails here).
pub async fn connect(socket: &Path, timeout: Duration) -> Result<Client> {
    let path = socket.to_path_buf();
    let endpoint = Endpoint::try_from("http://[::]:50051")?
        .connect_timeout(timeout)
        .initial_stream_window_size(berth_proto::STREAM_WINDOW)
        .initial_connection_window_size(berth_proto::CONNECTION_WINDOW);
    let channel = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    }));
    let channel = tokio::time::timeout(timeout, channel)
        .await
        .with_context(|| format!("connecting to shim {}: timed out", socket.display()))?
        .with_context(|| format!("connecting to shim {}", socket.display()))?;
    Ok(ShimClient::new(channel))
}

/// Runs `berth-shim start`, which returns once the detached shim serves.
pub async fn spawn(
    shim: &Path,
    namespace: &str,
    id: &str,
    state_dir: &Path,
    socket: &Path,
    debug: bool,
) -> Result<PathBuf> {
    let mut cmd = tokio::process::Command::new(shim);
    cmd.args(["start", "--id", id, "--namespace", namespace])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--socket")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    if debug {
        cmd.arg("--debug");
    }
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .with_context(|| format!("starting {}: timed out", shim.display()))?
        .with_context(|| format!("starting {}", shim.display()))?;
    if !out.status.success() {
        bail!(
            "{} start: {}",
            shim.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if addr.is_empty() {
        bail!("{} start printed no address", shim.display());
    }
    Ok(PathBuf::from(addr))
}
