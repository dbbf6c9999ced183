//! The API's listeners: unix sockets, mode 0660, group `berth` (or the
//! configured group) when it exists.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::ServiceExt;
use axum::extract::Request;
use tokio::net::UnixListener;
use tower::Layer;

use crate::daemon::Daemon;
use crate::hosts::Host;

fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
}

fn bind_unix(path: &Path, group: &str) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("{} is in use: is another berthd running?", path.display());
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group_id(group) {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("chgrp {group} {}", path.display()))?;
    }
    Ok(l)
}

pub async fn serve(
    d: Arc<Daemon>,
    hosts: Vec<Host>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = crate::api::router(d.clone());
    let app =
        tower::util::MapRequestLayer::new(|r: Request| crate::api::strip_version(r)).layer(app);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for h in &hosts {
        match h {
            Host::Unix(p) => {
                let l = bind_unix(p, &d.cfg.group)?;
                tracing::info!("API listening on unix://{}", p.display());
                let svc = app.clone();
                let mut stop = stop_tx.subscribe();
                tasks.push(tokio::spawn(async move {
                    axum::serve(l, svc.into_make_service())
                        .with_graceful_shutdown(async move {
                            let _ = stop.recv().await;
                        })
                        .await
                }));
            }
        }
    }
    shutdown.await;
    let _ = stop_tx.send(());
    for h in &hosts {
        let Host::Unix(p) = h;
        let _ = std::fs::remove_file(p);
    }
    for t in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    Ok(())
}
