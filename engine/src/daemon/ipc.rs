//! A container's IPC mode as dockerd gives it: `private` (its own
//! namespace and a /dev/shm tmpfs of its own), `shareable` (the same, with
//! the /dev/shm tmpfs mounted on the host so that others can bind it),
//! `container:<id>` (the namespace and the /dev/shm of a shareable one),
//! `host`, and `none` (its own namespace, no /dev/shm at all).

use std::path::{Path, PathBuf};

use crate::error::{ApiError, Result};

/// dockerd's default /dev/shm size, for a container that sets none.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// Whether `mode` is one dockerd knows; an unknown one fails the start
/// with dockerd's 500 (its create takes anything; its CLI checks first).
pub fn check_mode(mode: &str) -> Result<()> {
    let known = match mode.strip_prefix("container:") {
        Some(other) => !other.is_empty(),
        None => matches!(mode, "" | "none" | "private" | "shareable" | "host"),
    };
    if known {
        Ok(())
    } else {
        Err(ApiError::internal(format!("Invalid IPC mode: {mode}")))
    }
}

/// Where a shareable container's /dev/shm lives on the host, under its own
/// directory: the engine mounts it there, the container and those joining
/// its IPC bind it.
pub fn shm_path(container_dir: &Path) -> PathBuf {
    container_dir.join("mounts").join("shm")
}

/// Mounts a shareable container's /dev/shm tmpfs before its start (each
/// start gets an empty one: its stop unmounted the last, as dockerd's).
pub fn mount_shm(container_dir: &Path, size: i64) -> Result<()> {
    let path = shm_path(container_dir);
    if super::volumes::is_mount_point(&path) {
        return Ok(());
    }
    std::fs::create_dir_all(&path)
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", path.display())))?;
    let size = if size > 0 { size } else { DEFAULT_SHM_SIZE };
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("shm"),
        &path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={size}").as_str()),
    )
    .map_err(|e| ApiError::internal(format!("mounting /dev/shm at {}: {e}", path.display())))
}

/// Undoes [`mount_shm`] once the container stopped or goes: detached, as
/// dockerd does, so that a container still joined to it keeps its bind.
pub fn unmount_shm(container_dir: &Path) {
    let path = shm_path(container_dir);
    if !super::volumes::is_mount_point(&path) {
        return;
    }
    if let Err(e) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
        tracing::warn!("unmounting {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_dockerd_knows_them() {
        for ok in ["", "none", "private", "shareable", "host", "container:web"] {
            assert!(check_mode(ok).is_ok(), "{ok}");
        }
        for bad in ["bogus", "Private", "container:", "container"] {
            let err = check_mode(bad).unwrap_err();
            assert_eq!(err.message, format!("Invalid IPC mode: {bad}"));
            assert_eq!(err.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}
