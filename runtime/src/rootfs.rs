//! Building the container's root inside its new mount namespace: propagation,
//! the spec's mounts, /dev, pivot_root, then masked and read-only paths.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, chown, fchdir, pivot_root};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::cgroups;
use crate::error::{Error, Result, SysContext};
use crate::fsutil::{create_mount_point, secure_join};

pub fn propagation_flag(s: &str) -> Option<MsFlags> {
    Some(match s {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// A mount's options split the way mount(2) wants them.
#[derive(Debug)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
}

pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            // Options of other runtimes' features that change nothing here.
            "tmpcopyup" | "idmap" | "ridmap" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    o
}

fn mnt(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(source, target, fstype, flags, data).ctx(|| {
        format!(
            "mounting {} on {} (type {}, flags {:?}{})",
            source.map(|s| s.display().to_string()).unwrap_or_default(),
            target.display(),
            fstype.unwrap_or("none"),
            flags,
            data.map(|d| format!(", data {d}")).unwrap_or_default()
        )
    })
}

/// Flags a remount must keep: in a user namespace the kernel refuses to clear
/// nosuid/nodev/noexec/ro that the original mount has (they are locked).
fn locked_flags(path: &Path) -> MsFlags {
    let mut f = MsFlags::empty();
    if let Ok(st) = statvfs(path) {
        let flags = st.flags();
        for (v, m) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if flags.contains(v) {
                f |= m;
            }
        }
    }
    f
}

pub struct Context<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub cgroup_path: &'a Path,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    /// For each of the spec's mounts, by index: the bind source as a
    /// detached mount tree, when the runtime made one (see `detach_bind_sources`).
    pub bind_trees: &'a [Option<OwnedFd>],

    /// Waits until the runtime has created the cgroup (it does so while we
    /// make the first mounts); called before devices and cgroup mounts.
    pub cgroup_ready: &'a dyn Fn() -> Result<()>,
}

/// Everything before pivot_root: the root is made a mount point, host mounts stop
/// propagating into it, and every mount of the spec is made under it.
pub fn prepare(ctx: &Context<'_>) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mnt(None, Path::new("/"), None, prop, None)?;
    make_parent_private(ctx.rootfs)?;
    mnt(
        Some(ctx.rootfs),
        ctx.rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;

    let mounts = ctx.spec.mounts().as_deref().unwrap_or(&[]);
    // cgroup mounts (and anything mounted inside them) go last: the runtime
    // creates the cgroup while we make every other mount.
    let cgroup_dests: Vec<&Path> = mounts
        .iter()
        .filter(|m| is_cgroup(m))
        .map(|m| m.destination().as_path())
        .collect();
    let (later, now): (Vec<_>, Vec<_>) = mounts
        .iter()
        .enumerate()
        .partition(|(_, m)| cgroup_dests.iter().any(|d| m.destination().starts_with(d)));
    let tree = |i: usize| ctx.bind_trees.get(i).and_then(Option::as_ref);
    for (i, m) in now {
        mount_one(ctx, m, tree(i))?;
    }
    let dev_is_bind = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && is_bind(m));
    // Device nodes wait for the cgroup too: while the runtime writes the device
    // rules (deny all, then allow each), mknod may be refused.
    (ctx.cgroup_ready)()?;
    if !dev_is_bind {
        setup_dev(ctx)?;
    }
    for (i, m) in later {
        mount_one(ctx, m, tree(i))?;
    }
    let dev_ro = mounts.iter().find(|m| {
        m.destination() == Path::new("/dev")
            && !is_bind(m)
            && parse_options(m.options().as_deref().unwrap_or(&[]))
                .flags
                .contains(MsFlags::MS_RDONLY)
    });
    if let Some(m) = dev_ro {
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let data = opts.data.join(",");
        let dev = secure_join(ctx.rootfs, Path::new("/dev"))?;
        mnt(
            None,
            &dev,
            None,
            MsFlags::MS_REMOUNT | opts.flags,
            (!data.is_empty()).then_some(data.as_str()),
        )?;
    }
    Ok(())
}

/// Each bind mount's source as a detached copy of its mount tree
/// (open_tree with OPEN_TREE_CLONE), made by the runtime before the clone,
/// as host root, and inherited by the container's process, which attaches
/// it with move_mount. In a user namespace the container's root may not be
/// able to reach the source at all (a directory closed to others on the
/// way): runc opens the sources before entering the user namespace too.
/// The descriptors are close-on-exec: none reaches the container's program.
pub fn detach_bind_sources(spec: &Spec) -> Result<Vec<Option<OwnedFd>>> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    mounts
        .iter()
        .map(|m| {
            if !is_bind(m) {
                return Ok(None);
            }
            let Some(source) = m.source() else {
                return Ok(None);
            };
            let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
            let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
            if opts.flags.contains(MsFlags::MS_REC) {
                flags |= libc::AT_RECURSIVE as libc::c_uint;
            }
            let path =
                std::ffi::CString::new(source.as_os_str().as_encoded_bytes()).map_err(|_| {
                    Error::Invalid(format!("bind source {} has a NUL", source.display()))
                })?;
            // SAFETY: open_tree takes a NUL-terminated path and integer flags;
            // it returns a new descriptor or -1.
            let fd =
                unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
            if fd < 0 {
                return Err(Error::io(
                    "bind mount source",
                    source,
                    std::io::Error::last_os_error(),
                ));
            }
            // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
        })
        .collect()
}

/// Attaches a tree from `detach_bind_sources` at `dest`.
fn attach_tree(tree: &OwnedFd, dest: &Path) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let target = std::ffi::CString::new(dest.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Invalid(format!("mount point {} has a NUL", dest.display())))?;
    // SAFETY: move_mount takes descriptors, NUL-terminated paths and flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Error::sys(
            format!("attaching the bind source on {}", dest.display()),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

fn is_cgroup(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2"))
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// pivot_root needs the root's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let mut p = rootfs.to_path_buf();
    loop {
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) => {
                // not a mount point: try its parent
                if !p.pop() {
                    return Ok(());
                }
            }
            Err(e) => {
                return Err(Error::sys(
                    format!("making the mount above {} private", rootfs.display()),
                    e,
                ));
            }
        }
    }
}

fn mount_one(ctx: &Context<'_>, m: &Mount, tree: Option<&OwnedFd>) -> Result<()> {
    let dest = secure_join(ctx.rootfs, m.destination())?;
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, &dest, &opts);
    }

    if opts.bind || typ == "bind" {
        let source = m.source().as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "bind mount on {} has no source",
                m.destination().display()
            ))
        })?;
        if let Some(tree) = tree {
            let st = nix::sys::stat::fstat(tree.as_raw_fd())
                .ctx(|| format!("bind mount source {}", source.display()))?;
            let is_dir =
                SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
            create_mount_point(&dest, !is_dir)?;
            attach_tree(tree, &dest)?;
        } else {
            let meta =
                fs::metadata(source).map_err(|e| Error::io("bind mount source", source, e))?;
            create_mount_point(&dest, !meta.is_dir())?;
            let bind = opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC) | MsFlags::MS_BIND;
            mnt(Some(source), &dest, None, bind, None)?;
        }
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | locked_flags(&dest);
            mnt(None, &dest, None, flags, None)?;
        }
    } else {
        // A tmpfs over an existing directory keeps that directory's mode, as
        // runc does (an image's /tmp stays 1777, its /run 755).
        let keep_mode = if typ == "tmpfs" {
            fs::metadata(&dest).ok().map(|m| m.permissions())
        } else {
            None
        };
        create_mount_point(&dest, false)?;
        let source = m.source().as_deref().unwrap_or(Path::new(typ));
        // A read-only tmpfs is made writable long enough to set its mode; a
        // read-only /dev until its devices and mount points are made
        // (`prepare` turns it read-only at the end).
        let dev_later = m.destination() == Path::new("/dev");
        let ro_later = keep_mode.is_some() && opts.flags.contains(MsFlags::MS_RDONLY) && !dev_later;
        let first = if ro_later || dev_later {
            opts.flags - MsFlags::MS_RDONLY
        } else {
            opts.flags
        };
        match mount(Some(source), &dest, Some(typ), first, data) {
            Ok(()) => {
                if let Some(perm) = keep_mode {
                    fs::set_permissions(&dest, perm)
                        .map_err(|e| Error::io("setting mode of tmpfs", &dest, e))?;
                }
                if ro_later {
                    mnt(None, &dest, None, MsFlags::MS_REMOUNT | opts.flags, data)?;
                }
            }

            // sysfs needs a network namespace of our own and mqueue an ipc
            // namespace; without them, show the host's read-only instead.
            Err(nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY)
                if typ == "sysfs" || typ == "mqueue" =>
            {
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                mnt(
                    Some(Path::new(host)),
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                let flags = MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | opts.flags
                    | locked_flags(&dest);
                mnt(None, &dest, None, flags, None)?;
            }
            Err(e) => {
                return Err(Error::sys(
                    format!(
                        "mounting {} on {} (type {typ})",
                        source.display(),
                        m.destination().display()
                    ),
                    e,
                ));
            }
        }
    }
    for p in &opts.propagation {
        mnt(None, &dest, None, *p, None)?;
    }
    Ok(())
}

/// /sys/fs/cgroup inside the container. On cgroup v2 it is the container's own
/// cgroup2 tree; on v1 and hybrid, a tmpfs holding each hierarchy's directory for
/// this container, bind-mounted from the host, so the container sees its own
/// limits and usage and nothing of its neighbours.
fn mount_cgroup(ctx: &Context<'_>, dest: &Path, opts: &MountOptions) -> Result<()> {
    (ctx.cgroup_ready)()?;
    create_mount_point(dest, false)?;

    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    let hierarchies = cgroups::hierarchy_dirs(ctx.cgroup_path);
    if hierarchies.len() == 1 && hierarchies[0].0.is_empty() {
        if ctx.new_cgroupns {
            return mnt(
                Some(Path::new("cgroup2")),
                dest,
                Some("cgroup2"),
                flags,
                None,
            );
        }
        mnt(Some(&hierarchies[0].1), dest, None, MsFlags::MS_BIND, None)?;
        return mnt(
            None,
            dest,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(dest),
            None,
        );
    }
    mnt(
        Some(Path::new("tmpfs")),
        dest,
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )?;
    for (name, host_dir) in &hierarchies {
        let target = dest.join(name);
        create_mount_point(&target, false)?;
        mnt(Some(host_dir), &target, None, MsFlags::MS_BIND, None)?;
        mnt(
            None,
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&target),
            None,
        )?;
    }
    // Co-mounted controllers show as symlinks on the host (cpu -> cpu,cpuacct).
    if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                && let Ok(target) = fs::read_link(e.path())
            {
                let _ = symlink(target, dest.join(e.file_name()));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mnt(
            None,
            dest,
            None,
            MsFlags::MS_REMOUNT | flags | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

struct DefaultDev {
    path: &'static str,
    major: i64,
    minor: i64,
}

const DEFAULT_DEVICES: &[DefaultDev] = &[
    DefaultDev {
        path: "/dev/null",
        major: 1,
        minor: 3,
    },
    DefaultDev {
        path: "/dev/zero",
        major: 1,
        minor: 5,
    },
    DefaultDev {
        path: "/dev/full",
        major: 1,
        minor: 7,
    },
    DefaultDev {
        path: "/dev/random",
        major: 1,
        minor: 8,
    },
    DefaultDev {
        path: "/dev/urandom",
        major: 1,
        minor: 9,
    },
    DefaultDev {
        path: "/dev/tty",
        major: 5,
        minor: 0,
    },
];

fn setup_dev(ctx: &Context<'_>) -> Result<()> {
    let mut made = Vec::new();
    for d in DEFAULT_DEVICES {
        make_device(
            ctx,
            Path::new(d.path),
            SFlag::S_IFCHR,
            d.major,
            d.minor,
            0o666,
            0,
            0,
        )?;
        made.push(PathBuf::from(d.path));
    }
    for d in ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        spec_device(ctx, d)?;
    }
    let dev = secure_join(ctx.rootfs, Path::new("/dev"))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = dev.join(link);
        if fs::symlink_metadata(&p).is_err() {
            symlink(target, &p).map_err(|e| Error::io("creating symlink", &p, e))?;
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = symlink("/proc/kcore", dev.join("core"));
    }
    // /dev/ptmx must be the container's own devpts instance.
    let ptmx = dev.join("ptmx");
    let _ = fs::remove_file(&ptmx);
    symlink("pts/ptmx", &ptmx).map_err(|e| Error::io("creating symlink", &ptmx, e))?;
    Ok(())
}

fn spec_device(ctx: &Context<'_>, d: &LinuxDevice) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Invalid(format!(
                "device {}: type a is only valid in cgroup rules",
                d.path().display()
            )));
        }
    };
    make_device(
        ctx,
        d.path(),
        kind,
        d.major(),
        d.minor(),
        d.file_mode().unwrap_or(0o666),
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    )
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &Context<'_>,
    path: &Path,
    kind: SFlag,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let dest = secure_join(ctx.rootfs, path)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("creating directory", parent, e))?;
    }
    if ctx.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        create_mount_point(&dest, true)?;
        return mnt(Some(path), &dest, None, MsFlags::MS_BIND, None);
    }
    let _ = fs::remove_file(&dest);
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    mknod(&dest, kind, perm, makedev(major as u64, minor as u64))
        .ctx(|| format!("creating device {}", path.display()))?;
    // mknod's mode is filtered by the umask; set it exactly.
    nix::sys::stat::fchmodat(
        None,
        &dest,
        perm,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| format!("chmod device {}", path.display()))?;
    chown(&dest, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .ctx(|| format!("chown device {}", path.display()))
}

/// Makes `rootfs` the root: pivot_root and detach the old root, or with
/// `no_pivot`, move the rootfs over / and chroot (for roots on ramfs, where
/// pivot_root is not possible).
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
        mnt(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        return nix::unistd::chdir("/").ctx(|| "chdir /".into());
    }
    let raw_old = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "opening old root".into())?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let old = unsafe { OwnedFd::from_raw_fd(raw_old) };
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; then it is
    // reachable through `old` alone and can be detached.
    pivot_root(".", ".").ctx(|| format!("pivot_root to {}", rootfs.display()))?;
    fchdir(old.as_raw_fd()).ctx(|| "fchdir to old root".into())?;
    mnt(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching old root".into())?;
    drop(old);
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// After pivot_root: propagation of the new root, masked and read-only paths,
/// and a read-only root last.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(flag) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
    {
        mnt(None, Path::new("/"), None, flag, None)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/"));
        mnt(None, Path::new("/"), None, flags, None)?;
    }
    Ok(())
}

fn readonly_path(p: &Path) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::sys(
                format!("bind mount of read-only path {}", p.display()),
                e,
            ));
        }
    }
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_REC
        | locked_flags(p);
    mnt(None, p, None, flags, None)
}

fn mask_path(p: &Path) -> Result<()> {
    let meta = match fs::metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        mnt(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
        )
    } else {
        match mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(format!("masking {}", p.display()), e)),
        }
    }
}

/// Writes the spec's sysctls into the container's /proc/sys.
pub fn sysctls(spec: &Spec) -> Result<()> {
    for (key, value) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        if key.contains('/') || key.split('.').any(|c| c.is_empty()) {
            return Err(Error::Invalid(format!(
                "sysctl {key:?} is not a valid name"
            )));
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        fs::write(&path, value).map_err(|e| Error::io("writing sysctl", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rprivate",
            "ro",
        ]);
        assert!(
            o.flags
                .contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY)
        );
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = opts(&["ro", "rw", "rbind"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.bind && o.flags.contains(MsFlags::MS_REC));
    }
}
