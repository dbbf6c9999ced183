//! Files the engine reads from a container's filesystem through lifecycled
//! (never from lifecycled's directories), and the files it writes for the
//! container itself: /etc/hostname, /etc/hosts, /etc/resolv.conf.

use std::io::Read;
use std::path::Path;

use berth_proto::lifecycle::v1 as api;

use super::lifecycle::Lifecycle;
use crate::error::{ApiError, Result};

/// What the runtime makes in a container's rootfs only to mount over it
/// (the engine's files, the kernel's filesystems): Docker keeps these in
/// an init layer, so that neither `diff` nor `commit` shows them.
pub const MOUNT_POINTS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
    // What every container gets at create (dockerd's init layer).
    "/.dockerenv",
    "/etc/mtab",
];

/// What the init-layer files hold (the link's target; `.dockerenv` is
/// empty): left out of a container's size, as dockerd's init layer is.
pub const INIT_LAYER_BYTES: i64 = "/proc/mounts".len() as i64;

/// The files dockerd's init layer gives every container, as a tar to
/// unpack at its root: an empty `/.dockerenv` (how software tells it runs
/// in a container), `/etc/mtab` linked to `/proc/mounts`, and the points
/// the runtime mounts on, made ahead as dockerd makes them (empty files
/// and directories, so that a read-only root has them too, and `export`
/// gives them as dockerd's does).
pub fn init_layer_tar() -> std::io::Result<Vec<u8>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Empty and root's (the unpacker takes a header's owner as given).
    let header = |kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(now);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["dev/pts/", "dev/shm/", "proc/", "sys/"] {
        b.append_data(
            &mut header(tar::EntryType::Directory, 0o755),
            dir,
            std::io::empty(),
        )?;
    }
    for file in [
        ".dockerenv",
        "etc/resolv.conf",
        "etc/hosts",
        "etc/hostname",
        "dev/console",
    ] {
        let mut h = header(tar::EntryType::Regular, 0o755);
        b.append_data(&mut h, file, std::io::empty())?;
    }
    let mut mtab = header(tar::EntryType::Symlink, 0o777);
    b.append_link(&mut mtab, "etc/mtab", "/proc/mounts")?;
    b.into_inner()
}

/// A container's changes as `diff` shows them: without the mount points,
/// nor a directory that only changed because one was made in it.
pub fn visible_changes(list: Vec<(String, i32)>) -> Vec<(String, i32)> {
    let hidden = |p: &str| {
        MOUNT_POINTS
            .iter()
            .any(|m| p == *m || p.strip_prefix(m).is_some_and(|r| r.starts_with('/')))
    };
    let kept: Vec<(String, i32)> = list.into_iter().filter(|(p, _)| !hidden(p)).collect();
    let parents_of_hidden: Vec<&str> = MOUNT_POINTS
        .iter()
        .filter_map(|m| m.rsplit_once('/').map(|(parent, _)| parent))
        .filter(|p| !p.is_empty())
        .collect();
    kept.iter()
        .filter(|(p, kind)| {
            // Kind 2 is a deletion, always shown.
            *kind == 2
                || !parents_of_hidden.contains(&p.as_str())
                || kept.iter().any(|(q, _)| {
                    q.strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
                })
        })
        .cloned()
        .collect()
}

/// The tar stream of `path` in the container's filesystem, as it comes.
async fn archive_stream(
    lc: &Lifecycle,
    id: &str,
    path: &str,
) -> Result<tonic::Streaming<api::Chunk>> {
    Ok(lc
        .snapshots()
        .read_archive(lc.req(api::ArchiveRequest {
            key: id.to_string(),
            path: path.to_string(),
            ..Default::default()
        }))
        .await?
        .into_inner())
}

/// The tar of `path` in the container's filesystem.
pub async fn read_archive(lc: &Lifecycle, id: &str, path: &str) -> Result<Vec<u8>> {
    let mut s = archive_stream(lc, id, path).await?;
    let mut out = Vec::new();
    while let Some(c) = s.message().await? {
        out.extend_from_slice(&c.data);
    }
    Ok(out)
}

/// Whether a directory's tar holds more than the directory: its first
/// 512-byte block is the directory's header, the second the next entry's
/// (zeros when the archive ends there).
fn holds_entries(tar: &[u8]) -> bool {
    tar.get(512..1024)
        .is_some_and(|b| b.iter().any(|&x| x != 0))
}

/// The contents of one regular file in the container, if it exists.
pub async fn read_file(lc: &Lifecycle, id: &str, path: &str) -> Option<Vec<u8>> {
    let tar = read_archive(lc, id, path).await.ok()?;
    let mut a = tar::Archive::new(&tar[..]);
    let mut entry = a.entries().ok()?.flatten().next()?;
    let mut data = Vec::new();
    entry.read_to_end(&mut data).ok()?;
    Some(data)
}

/// What the image holds under `path` in the container's rootfs, as a tar of
/// that directory; None when there is nothing there to fill a volume with
/// (no such path, or an empty directory).
pub async fn image_content(lc: &Lifecycle, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let tar = match read_archive(lc, id, path).await {
        Ok(t) => t,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(holds_entries(&tar).then_some(tar))
}

/// Whether the image has anything under `path`, read no further than it
/// takes to tell; false when it cannot tell.
pub async fn has_image_content(lc: &Lifecycle, id: &str, path: &str) -> bool {
    let Ok(mut s) = archive_stream(lc, id, path).await else {
        return false;
    };
    let mut head = Vec::new();
    while head.len() < 1024 {
        match s.message().await {
            Ok(Some(c)) => head.extend_from_slice(&c.data),
            _ => return false,
        }
    }
    holds_entries(&head)
}

/// Unpacks `image_content`'s archive into a volume's directory (a volume
/// filled on first use with what the image has there).
pub async fn copy_up(tar: Vec<u8>, dest: &Path) -> Result<()> {
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut a = tar::Archive::new(&tar[..]);
        a.set_preserve_permissions(true);
        a.set_preserve_ownerships(true);
        // The directory itself is the first entry: strip it.
        for e in a.entries()? {
            let mut e = e?;
            let p = e.path()?.into_owned();
            let rel: std::path::PathBuf = p.components().skip(1).collect();
            if rel.as_os_str().is_empty() {
                continue;
            }
            e.unpack(dest.join(rel))?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("copying image content into volume: {e}")))
}

/// uid, gid and supplementary groups for Docker's `User` (name, uid,
/// name:group, uid:gid), looked up in the container's /etc/passwd and
/// /etc/group (see [`resolve`]).
pub async fn resolve_user(
    lc: &Lifecycle,
    id: &str,
    user: &str,
    group_add: &[String],
) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = split_user(user);
    let numeric = |s: &str| s.parse::<u32>().is_ok();
    // A uid with an explicit group takes nothing from passwd; without an
    // explicit group the name passwd gives picks the supplementary groups.
    let need_passwd = !(numeric(u) && g.is_some());
    let need_group = g.is_none_or(|g| !numeric(g)) || !group_add.is_empty();
    let read = |wanted: bool, path: &'static str| async move {
        if wanted {
            read_file(lc, id, path).await.unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    // Both at once: a container without a task has its filesystem
    // mounted by lifecycled for the calls, and calls that overlap share
    // one mount (each mount's unmount syncs the filesystem under it).
    let (passwd, group) = tokio::join!(
        read(need_passwd, "/etc/passwd"),
        read(need_group, "/etc/group")
    );
    resolve(
        user,
        group_add,
        &String::from_utf8_lossy(&passwd),
        &String::from_utf8_lossy(&group),
    )
}

fn split_user(user: &str) -> (&str, Option<&str>) {
    match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    }
}

/// runc's (and so dockerd's) reading of `user` against the passwd and
/// group files' text: the passwd entry (by name, by uid, or uid 0 for an
/// empty user) gives uid, gid and a name; an explicit group sets the gid
/// and then no supplementary groups are taken, else the groups that list
/// the name are; `group_add` (names or gids) comes on top. The primary gid
/// is always a supplementary group too, as dockerd has made it since
/// CVE-2022-36109: a process that drops to another gid cannot escape what
/// the files deny its primary group.
pub fn resolve(
    user: &str,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = split_user(user);
    let numeric = |s: &str| s.parse::<u32>().ok();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let uid = f[2].parse::<u32>().ok()?;
        let matches = match (u, numeric(u)) {
            ("", _) => uid == 0,
            (_, Some(n)) => uid == n,
            (name, None) => f[0] == name,
        };
        matches.then(|| (f[0].to_string(), uid, f[3].parse::<u32>().unwrap_or(0)))
    });
    let (name, uid, mut gid) = match (entry, numeric(u)) {
        (Some(e), _) => e,
        (None, _) if u.is_empty() => (String::new(), 0, 0),
        (None, Some(n)) => (String::new(), n, 0),
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )));
        }
    };
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| {
                (
                    f[0],
                    f[2].parse().unwrap_or(u32::MAX),
                    f[3].split(',').filter(|m| !m.is_empty()).collect(),
                )
            })
        })
        .collect();
    let mut sup: Vec<u32> = Vec::new();
    match g {
        Some(g) => {
            gid = match numeric(g) {
                Some(n) => n,
                None => groups
                    .iter()
                    .find(|(n, _, _)| *n == g)
                    .map(|(_, id, _)| *id)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
        }
        None if !name.is_empty() => sup.extend(
            groups
                .iter()
                .filter(|(_, _, m)| m.contains(&name.as_str()))
                .map(|(_, id, _)| *id),
        ),
        None => {}
    }
    for a in group_add {
        let id = match numeric(a) {
            Some(n) => n,
            None => groups
                .iter()
                .find(|(n, _, _)| n == a)
                .map(|(_, id, _)| *id)
                // runc's words for it, which dockerd passes on.
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Unable to find group {a}: no matching entries in group file"
                    ))
                })?,
        };
        sup.push(id);
    }
    sup.push(gid);
    sup.sort_unstable();
    sup.dedup();
    Ok((uid, gid, sup))
}

/// What a container's /etc/hostname, /etc/hosts and /etc/resolv.conf say.
pub struct Etc<'a> {
    pub hostname: &'a str,
    /// Its domain (`--domainname`): its own name in /etc/hosts is then the
    /// full one first, as dockerd writes it (`hostname -f` finds it).
    pub domainname: &'a str,
    /// Its address on its first network, for its own name in /etc/hosts.
    pub own_ip: Option<&'a str>,
    pub extra_hosts: &'a [String],
    pub dns: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
    pub host_network: bool,
    /// Names go to Docker's embedded resolver address (a user network's
    /// container, answered there by berth-dns): resolv.conf names it alone.
    pub embedded: bool,
    /// `(address, names)` of linked containers.
    pub links: &'a [(String, String)],
}

/// Writes `text` to a file a container has bind-mounted unless it holds
/// it already: in place (the mount is of the inode), so a process reading
/// it while it is rewritten could see it empty; a start writes the files
/// before and after its networks are known, mostly the same.
fn write_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    std::fs::write(path, text)
}

/// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the container
/// into its directory; returns their OCI bind mounts.
pub fn write_etc(dir: &Path, etc: &Etc) -> std::io::Result<Vec<serde_json::Value>> {
    let Etc {
        hostname,
        domainname,
        own_ip,
        extra_hosts,
        dns,
        search,
        options,
        host_network,
        embedded,
        links,
    } = *etc;
    write_changed(&dir.join("hostname"), &format!("{hostname}\n"))?;
    let own_names = if domainname.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domainname} {hostname}")
    };
    let mut hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut h = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string();
        // Without an address of its own (`--network none`) the container's
        // name has no line, as dockerd writes the file.
        if let Some(ip) = own_ip.filter(|i| !i.is_empty()) {
            h.push_str(&format!("{ip}\t{own_names}\n"));
        }
        h
    };
    for (ip, names) in links {
        hosts.push_str(&format!("{ip}\t{names}\n"));
    }
    for h in extra_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    write_changed(&dir.join("hosts"), &hosts)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if embedded {
        embedded_resolv_conf(&host_resolv, search, options)
    } else {
        resolv_conf(&host_resolv, dns, search, options, host_network)
    };
    write_changed(&dir.join("resolv.conf"), &resolv)?;
    Ok(etc_mounts(dir))
}

/// The container's resolv.conf from the host's: copied (but for a
/// loopback resolver, which the container's own network namespace cannot
/// reach) when the container asks nothing; else built as dockerd's
/// resolvconf.Build builds it, `search`, `nameserver`s, `options`, each
/// from the host's where the container asks none.
fn resolv_conf(
    host: &str,
    dns: &[String],
    search: &[String],
    options: &[String],
    host_network: bool,
) -> String {
    let loopback = |ns: &str| ns.starts_with("127.") || ns == "::1";
    let mut out = String::new();
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        for l in host.lines() {
            let ns = l.strip_prefix("nameserver").map(str::trim);
            if ns.is_some_and(loopback) && !host_network {
                continue;
            }
            out.push_str(l);
            out.push('\n');
        }
        return out;
    }
    let words = |key: &str| last_words(host, key);
    let nameservers: Vec<String> = if dns.is_empty() {
        host.lines()
            .filter_map(|l| l.strip_prefix("nameserver").map(|n| n.trim().to_string()))
            .filter(|n| host_network || !loopback(n))
            .collect()
    } else {
        dns.to_vec()
    };
    let search = if search.is_empty() {
        words("search")
    } else {
        search.to_vec()
    };
    let options = if options.is_empty() {
        words("options")
    } else {
        options.to_vec()
    };
    let search = search.join(" ");
    if !search.trim().is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for n in nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The words after `key` on resolv.conf's last `key` line (the last line
/// of a kind is the one resolvers read).
fn last_words(resolv_conf: &str, key: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then(|| w.map(String::from).collect::<Vec<_>>())
        })
        .next_back()
        .unwrap_or_default()
}

/// The resolv.conf of a container that asks Docker's embedded resolver,
/// as dockerd rebuilds it: `127.0.0.11` as the only nameserver (the
/// container's own or the host's go to the resolver, which forwards to
/// them), the search domains and options asked or else the host's, and
/// `ndots:0` unless an option sets ndots above 0 (names of containers
/// are found before search domains are tried).
fn embedded_resolv_conf(host: &str, search: &[String], options: &[String]) -> String {
    let words = |key: &str| last_words(host, key);
    let search = if search.is_empty() {
        words("search")
    } else {
        search.to_vec()
    };
    let mut options = if options.is_empty() {
        words("options")
    } else {
        options.to_vec()
    };
    let ndots_set = options.iter().any(|o| {
        o.strip_prefix("ndots:")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    });
    if !ndots_set && !options.iter().any(|o| o == "ndots:0") {
        options.push("ndots:0".into());
    }
    let mut out = String::new();
    let search = search.join(" ");
    if !search.trim().is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    out.push_str("nameserver 127.0.0.11\n");
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// The bind mounts of the /etc files written in `dir`.
pub fn etc_mounts(dir: &Path) -> Vec<serde_json::Value> {
    ["hostname", "hosts", "resolv.conf"]
        .iter()
        .map(|f| {
            serde_json::json!({
                "destination": format!("/etc/{f}"),
                "type": "bind",
                "source": dir.join(f),
                "options": ["rbind", "rprivate"]
            })
        })
        .collect()
}

#[cfg(test)]
mod mount_point_tests {
    #[test]
    fn etc_files_are_written_only_when_they_change() {
        use super::{Etc, write_etc};
        let dir = tempfile::tempdir().unwrap();
        let etc = |hostname| Etc {
            hostname,
            domainname: "",
            own_ip: Some("10.1.0.2"),
            extra_hosts: &[],
            dns: &[],
            search: &[],
            options: &[],
            host_network: false,
            embedded: false,
            links: &[],
        };
        write_etc(dir.path(), &etc("web")).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let mtime = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .modified()
                .unwrap()
        };
        for f in ["hostname", "hosts", "resolv.conf"] {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(f))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // The same files again: untouched (a process reading them while
        // they were rewritten in place could find them empty).
        write_etc(dir.path(), &etc("web")).unwrap();
        for f in ["hostname", "hosts", "resolv.conf"] {
            assert_eq!(mtime(f), old, "{f}");
        }
        write_etc(dir.path(), &etc("api")).unwrap();
        assert_ne!(mtime("hostname"), old);
        assert_ne!(mtime("hosts"), old);
        assert_eq!(mtime("resolv.conf"), old);
        let hosts = std::fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(hosts.ends_with("10.1.0.2\tapi\n"), "{hosts}");
        // With a domain, the full name first (`hostname -f`).
        let full = Etc {
            domainname: "example.org",
            ..etc("api")
        };
        write_etc(dir.path(), &full).unwrap();
        let hosts = std::fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(
            hosts.ends_with("10.1.0.2\tapi.example.org api\n"),
            "{hosts}"
        );
        // No address (`--network none`): no line for the name, as dockerd.
        let none = Etc {
            own_ip: None,
            ..etc("api")
        };
        write_etc(dir.path(), &none).unwrap();
        let hosts = std::fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(hosts.ends_with("ff02::2\tip6-allrouters\n"), "{hosts}");
        assert!(!hosts.contains("api"), "{hosts}");
    }

    #[test]
    fn diff_hides_the_runtimes_mount_points() {
        let list = |v: &[(&str, i32)]| -> Vec<(String, i32)> {
            v.iter().map(|(p, k)| (p.to_string(), *k)).collect()
        };
        let only_mounts = list(&[
            ("/dev", 1),
            ("/dev/console", 1),
            ("/etc", 0),
            ("/etc/hostname", 1),
            ("/etc/hosts", 1),
            ("/proc", 1),
        ]);
        assert!(super::visible_changes(only_mounts).is_empty());
        let with_own = list(&[
            ("/etc", 0),
            ("/etc/hosts", 1),
            ("/etc/passwd", 0),
            ("/etcetera", 1),
        ]);
        assert_eq!(
            super::visible_changes(with_own),
            list(&[("/etc", 0), ("/etc/passwd", 0), ("/etcetera", 1)])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolv_conf_is_the_hosts_or_built_as_dockerds() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\noptions edns0\n";
        // Nothing asked: the host's, but for its loopback resolver.
        assert_eq!(
            resolv_conf(host, &[], &[], &[], false),
            "nameserver 10.0.0.2\nsearch lan\noptions edns0\n"
        );
        assert_eq!(resolv_conf(host, &[], &[], &[], true), host);
        // Asked: search, nameservers, options, the host's where not asked.
        assert_eq!(
            resolv_conf(
                host,
                &v(&["9.9.9.9"]),
                &v(&["ex.com"]),
                &v(&["ndots:3"]),
                false
            ),
            "search ex.com\nnameserver 9.9.9.9\noptions ndots:3\n"
        );
        assert_eq!(
            resolv_conf(host, &v(&["9.9.9.9"]), &[], &[], false),
            "search lan\nnameserver 9.9.9.9\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(host, &[], &v(&["."]), &[], false),
            "nameserver 10.0.0.2\noptions edns0\n"
        );
    }

    #[test]
    fn an_embedded_resolvers_resolv_conf_is_dockerds() {
        let host = "nameserver 10.0.0.2\nsearch lan\noptions edns0\n";
        assert_eq!(
            embedded_resolv_conf(host, &[], &[]),
            "search lan\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
        assert_eq!(
            embedded_resolv_conf("nameserver 10.0.0.2\n", &v(&["ex.com"]), &v(&["ndots:2"])),
            "search ex.com\nnameserver 127.0.0.11\noptions ndots:2\n"
        );
        assert_eq!(
            embedded_resolv_conf(host, &v(&["."]), &v(&["ndots:0", "timeout:1"])),
            "nameserver 127.0.0.11\noptions ndots:0 timeout:1\n"
        );
    }

    fn dir_tar(files: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "d/", std::io::empty()).unwrap();
        for f in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("d/{f}"), &b"x"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_directory_alone_holds_nothing_to_fill_a_volume_with() {
        assert!(!holds_entries(&dir_tar(&[])));
        assert!(holds_entries(&dir_tar(&["f"])));
        assert!(!holds_entries(b""));
    }
}

#[cfg(test)]
mod user_tests {
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,user\nusers:x:100:user\nuser:x:1000:\n";

    fn ids(user: &str, add: &[&str], passwd: &str) -> (u32, u32, Vec<u32>) {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        super::resolve(user, &add, passwd, GROUP).expect(user)
    }

    #[test]
    fn users_resolve_as_runc_resolves_them() {
        // The default user is passwd's uid 0, with its groups; the primary
        // gid is always among the supplementary ones.
        assert_eq!(ids("", &[], PASSWD), (0, 0, vec![0, 10]));
        assert_eq!(ids("user", &[], PASSWD), (1000, 1000, vec![10, 100, 1000]));
        assert_eq!(ids("1000", &[], PASSWD), (1000, 1000, vec![10, 100, 1000]));
        // An explicit group: that gid, and no other supplementary groups.
        assert_eq!(ids("user:users", &[], PASSWD), (1000, 100, vec![100]));
        assert_eq!(ids("1000:7", &[], PASSWD), (1000, 7, vec![7]));
        assert_eq!(ids("user:0", &["wheel"], PASSWD), (1000, 0, vec![0, 10]));
        // A uid passwd does not know: gid 0.
        assert_eq!(ids("4242", &[], PASSWD), (4242, 0, vec![0]));
        // Without a passwd file the default user is plain uid 0.
        assert_eq!(ids("", &[], ""), (0, 0, vec![0]));
        assert_eq!(ids("", &["users", "55"], ""), (0, 0, vec![0, 55, 100]));
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = |user: &str, add: &[&str]| {
            let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
            super::resolve(user, &add, PASSWD, GROUP)
                .expect_err(user)
                .message
        };
        assert_eq!(
            err("ghost", &[]),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            err("user:ghosts", &[]),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert_eq!(
            err("user", &["ghosts"]),
            "Unable to find group ghosts: no matching entries in group file"
        );
    }
}

#[cfg(test)]
mod init_layer_tests {
    #[test]
    fn the_init_layer_unpacks_as_lifecycled_unpacks_it() {
        let dir = tempfile::tempdir().unwrap();
        let tar = super::init_layer_tar().unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        ar.set_preserve_permissions(true);
        ar.set_preserve_mtime(true);
        ar.set_preserve_ownerships(true);
        ar.set_overwrite(true);
        ar.set_unpack_xattrs(true);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            e.unpack_in(dir.path()).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        for file in [
            ".dockerenv",
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "dev/console",
        ] {
            let m = std::fs::metadata(dir.path().join(file)).unwrap();
            assert!(m.is_file() && m.len() == 0, "{file}");
            assert_eq!(m.permissions().mode() & 0o7777, 0o755, "{file}");
        }
        for d in ["dev/pts", "dev/shm", "proc", "sys"] {
            assert!(dir.path().join(d).is_dir(), "{d}");
        }
        assert_eq!(
            std::fs::read_link(dir.path().join("etc/mtab")).unwrap(),
            std::path::Path::new("/proc/mounts")
        );
    }
}
