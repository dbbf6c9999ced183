//! Mounts as data (what a snapshot needs to become a rootfs), and the two
//! system calls that carry them out, for callers that mount in-process.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One mount, in the shape containerd and the OCI runtime spec use.
/// `target` is relative to the rootfs it is mounted under; snapshots give an
/// empty target, meaning the rootfs itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `overlay` or `bind`.
    pub r#type: String,
    pub source: String,
    pub target: String,
    /// For overlay: `lowerdir=`, `upperdir=`, `workdir=` and the like, in
    /// the order the kernel gets them; for bind: `rbind`, `rw` or `ro`.
    pub options: Vec<String>,
}

impl Mount {
    fn target_under(&self, root: &Path) -> PathBuf {
        let t = self.target.trim_start_matches('/');
        if t.is_empty() {
            root.to_path_buf()
        } else {
            root.join(t)
        }
    }

    /// Mounts this at `root` (joined with `target`).
    pub fn mount(&self, root: &Path) -> Result<()> {
        let target = self.target_under(root);
        let err = |source| Error::Mount {
            kind: self.r#type.clone(),
            target: target.clone(),
            source,
        };
        match self.r#type.as_str() {
            "bind" => {
                let mut flags = MsFlags::MS_BIND;
                if self.options.iter().any(|o| o == "rbind") {
                    flags |= MsFlags::MS_REC;
                }
                nix::mount::mount(
                    Some(self.source.as_str()),
                    &target,
                    None::<&str>,
                    flags,
                    None::<&str>,
                )
                .map_err(err)?;
                if self.options.iter().any(|o| o == "ro") {
                    nix::mount::mount(
                        None::<&str>,
                        &target,
                        None::<&str>,
                        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        None::<&str>,
                    )
                    .map_err(err)?;
                }
                Ok(())
            }
            fstype => {
                let mut flags = MsFlags::empty();
                let data: Vec<&str> = self
                    .options
                    .iter()
                    .filter(|o| match o.as_str() {
                        "ro" => {
                            flags |= MsFlags::MS_RDONLY;
                            false
                        }
                        "rw" => false,
                        _ => true,
                    })
                    .map(String::as_str)
                    .collect();
                let data = data.join(",");
                nix::mount::mount(
                    Some(self.source.as_str()),
                    &target,
                    Some(fstype),
                    flags,
                    Some(data.as_str()),
                )
                .map_err(err)
            }
        }
    }
}

/// Mounts every entry in order at `root`; on a failure, unmounts what it
/// mounted before returning the error.
pub fn mount_all(mounts: &[Mount], root: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = m.mount(root) {
            for done in mounts[..i].iter().rev() {
                let _ = unmount(&done.target_under(root));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts `target`; if it is busy, detaches it so that it goes once the
/// last user does.
pub fn unmount(target: &Path) -> Result<()> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            nix::mount::umount2(target, MntFlags::MNT_DETACH).map_err(|source| Error::Unmount {
                target: target.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(Error::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Whether any mount of this process's mount namespace uses `dir` as its
/// overlay upper dir or bind source.
pub(crate) fn in_use(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = dir.to_string_lossy();
    let upper = format!("upperdir={dir}");
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let superopts = line.rsplit(' ').next().unwrap_or("");
        if superopts.split(',').any(|o| o == upper) || *root == dir {
            return Some(point.to_string());
        }
    }
    None
}
