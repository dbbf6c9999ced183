//! The container's rootfs as lifecycled describes it: a bind of a directory, or
//! an overlay of snapshot layers, mounted at `<bundle>/rootfs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_proto::types::v1::Mount;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

fn flags_and_data(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags -= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

/// Mounts each of `mounts` under `bundle` (at `rootfs` unless it names a
/// target); returns what was mounted, innermost last, for unmounting.
pub fn mount_all(bundle: &Path, mounts: &[Mount]) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for m in mounts {
        let target = if m.target.is_empty() {
            bundle.join("rootfs")
        } else {
            bundle.join(m.target.trim_start_matches('/'))
        };
        std::fs::create_dir_all(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        let (flags, data) = flags_and_data(&m.options);
        let result = if m.r#type == "bind" || flags.contains(MsFlags::MS_BIND) {
            let bind = MsFlags::MS_BIND | (flags & MsFlags::MS_REC);
            mount(
                Some(m.source.as_str()),
                &target,
                None::<&str>,
                bind,
                None::<&str>,
            )
            .and_then(|_| {
                let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
                if extra.is_empty() {
                    Ok(())
                } else {
                    mount(
                        None::<&str>,
                        &target,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra,
                        None::<&str>,
                    )
                }
            })
        } else {
            mount(
                Some(m.source.as_str()),
                &target,
                Some(m.r#type.as_str()),
                flags,
                (!data.is_empty()).then_some(data.as_str()),
            )
        };
        if let Err(e) = result {
            unmount_all(&done);
            return Err(e).with_context(|| {
                format!(
                    "mounting {} ({}) on {}",
                    m.source,
                    m.r#type,
                    target.display()
                )
            });
        }
        done.push(target);
    }
    Ok(done)
}

pub fn unmount_all(mounted: &[PathBuf]) {
    for p in mounted.iter().rev() {
        if let Err(e) = umount2(p, MntFlags::MNT_DETACH)
            && e != nix::errno::Errno::EINVAL
            && e != nix::errno::Errno::ENOENT
        {
            tracing::warn!("unmounting {}: {e}", p.display());
        }
    }
}
