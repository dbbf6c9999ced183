//! What is served: every network's file in the config directory (the
//! format: [`crate::records`]), read whole at each reload.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

pub use crate::records::Record;
use crate::records::{is_id, normalize, parse_header, parse_line};

impl Record {
    fn has(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(&a),
            IpAddr::V6(a) => self.v6.contains(&a),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Network {
    pub id: String,
    pub listen: Vec<IpAddr>,
    /// No way out: names are not forwarded for askers only on such
    /// networks.
    pub internal: bool,
    pub records: Vec<Record>,
}

/// Everything served at one moment; replaced whole on a reload.
#[derive(Debug, Default)]
pub struct Zone {
    pub networks: Vec<Network>,
}

/// What a name is to one asker.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'z> {
    /// The asker is no container this server knows: it is not answered.
    UnknownAsker,
    /// Not a name on the asker's networks.
    Elsewhere,
    /// The records that carry the name on the asker's networks.
    Found(Vec<&'z Record>),
}

impl Zone {
    /// Reads every network file in `dir`; lines that cannot be read are
    /// left out and told in the returned warnings.
    pub fn load(dir: &Path) -> std::io::Result<(Zone, Vec<String>)> {
        let mut zone = Zone::default();
        let mut warnings = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_id(&name) {
                continue;
            }
            // A file removed between the listing and the read is a network
            // that just went.
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            zone.networks
                .push(parse_network(&name, &text, &mut warnings));
        }
        Ok((zone, warnings))
    }

    /// Every address some network is served on.
    pub fn listen_addresses(&self) -> BTreeSet<IpAddr> {
        self.networks
            .iter()
            .flat_map(|n| n.listen.iter().copied())
            .collect()
    }

    /// Every container with a record, by id.
    pub fn containers(&self) -> BTreeSet<&str> {
        self.networks
            .iter()
            .flat_map(|n| &n.records)
            .map(|r| r.id.as_str())
            .collect()
    }

    /// An address of the container `id` on one of the networks: it asks
    /// as that address when it asks at its own resolver address (from
    /// its loopback), so that it sees the names of all its networks.
    pub fn address_of(&self, id: &str) -> Option<IpAddr> {
        let r = self
            .networks
            .iter()
            .flat_map(|n| &n.records)
            .find(|r| r.id == id)?;
        r.v4.first()
            .map(|a| IpAddr::V4(*a))
            .or_else(|| r.v6.first().map(|a| IpAddr::V6(*a)))
    }

    /// The containers with the address `asker` (one, but the files may
    /// briefly hold an address a new container took from a gone one).
    pub fn askers(&self, asker: IpAddr) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for r in self.networks.iter().flat_map(|n| &n.records) {
            if r.has(asker) && !ids.contains(&r.id.as_str()) {
                ids.push(&r.id);
            }
        }
        ids
    }

    /// The networks the containers `ids` are on: a container on several
    /// asks through one gateway and sees the names on all of them, as
    /// Docker's resolver answers a container for all its networks.
    fn networks_of<'z>(&'z self, ids: &[&str]) -> impl Iterator<Item = &'z Network> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.networks
            .iter()
            .filter(move |n| n.records.iter().any(|r| ids.contains(&r.id)))
    }

    /// `name` (any case, with or without the final dot) as `asker` sees
    /// it: only containers on a network it shares with them.
    pub fn lookup(&self, asker: IpAddr, name: &str) -> Lookup<'_> {
        let name = normalize(name);
        let asking = self.askers(asker);
        let mut known = false;
        let mut found: Vec<&Record> = Vec::new();
        for n in self.networks_of(&asking) {
            known = true;
            for r in &n.records {
                let named = r.names.contains(&name)
                    || r.linked_as
                        .iter()
                        .any(|(x, by)| *x == name && asking.contains(&by.as_str()));
                if named && !found.contains(&r) {
                    found.push(r);
                }
            }
        }
        match (known, found.is_empty()) {
            (false, _) => Lookup::UnknownAsker,
            (true, true) => Lookup::Elsewhere,
            (true, false) => Lookup::Found(found),
        }
    }

    /// The container with address `ip` on a network `asker` is on, for a
    /// reverse lookup.
    pub fn reverse(&self, asker: IpAddr, ip: IpAddr) -> Option<&Record> {
        self.networks_of(&self.askers(asker))
            .flat_map(|n| n.records.iter())
            .find(|r| r.has(ip))
    }

    /// Whether `asker` is a container on one of the networks.
    pub fn knows(&self, asker: IpAddr) -> bool {
        !self.askers(asker).is_empty()
    }

    /// Whether names `asker` asks that are not here go to the host's
    /// resolvers: only when it is on a network with a way out. Docker's
    /// resolver asks upstream from the container's namespace, which on
    /// internal networks alone has no route: this server, in the host's,
    /// must not be the way out.
    pub fn forwards_for(&self, asker: IpAddr) -> bool {
        self.networks_of(&self.askers(asker)).any(|n| !n.internal)
    }
}

fn parse_network(id: &str, text: &str, warnings: &mut Vec<String>) -> Network {
    let mut lines = text.lines();
    let mut n = Network {
        id: id.to_string(),
        ..Default::default()
    };
    let (listen, bad, internal) = parse_header(lines.next().unwrap_or_default());
    n.listen = listen;
    n.internal = internal;
    for a in bad {
        warnings.push(format!("network {id}: listen address {a:?}"));
    }
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(r) => n.records.push(r),
            None => warnings.push(format!("network {id}: line {}: {line:?}", i + 2)),
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const NET_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn zone(files: &[(&str, &str)]) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Zone::load(dir.path()).unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn askers_see_only_the_networks_they_are_on() {
        let z = zone(&[
            (
                NET_A,
                "10.1.0.1\nc1 10.1.0.2  web,Web.Alias\nc2 10.1.0.3  client\n",
            ),
            (NET_B, "10.2.0.1\nc3 10.2.0.2  db\nc2 10.2.0.3  client\n"),
            ("server.pid", "123\n"),
        ]);
        assert_eq!(z.networks.len(), 2);
        assert_eq!(
            z.listen_addresses().into_iter().collect::<Vec<_>>(),
            vec![ip("10.1.0.1"), ip("10.2.0.1")]
        );
        let found = |asker, name| match z.lookup(ip(asker), name) {
            Lookup::Found(r) => r.iter().map(|r| r.id.clone()).collect(),
            _ => Vec::new(),
        };
        // Any case, with or without the root's dot.
        assert_eq!(found("10.1.0.3", "WEB.alias."), vec!["c1"]);
        // c2 is on both networks and sees both; c1 only its own.
        assert_eq!(found("10.1.0.3", "db"), vec!["c3"]);
        assert_eq!(found("10.2.0.3", "web"), vec!["c1"]);
        assert_eq!(z.lookup(ip("10.1.0.2"), "db"), Lookup::Elsewhere);
        // Not a container: the host, or a network's gateway.
        assert_eq!(z.lookup(ip("10.1.0.1"), "web"), Lookup::UnknownAsker);
        assert_eq!(z.lookup(ip("127.0.0.1"), "web"), Lookup::UnknownAsker);
        assert_eq!(
            z.reverse(ip("10.1.0.3"), ip("10.2.0.2")).map(|r| &r.id[..]),
            Some("c3")
        );
        assert_eq!(z.reverse(ip("10.1.0.2"), ip("10.2.0.2")), None);
    }

    #[test]
    fn a_link_alias_is_answered_to_the_linking_container_only() {
        let z = zone(&[
            (
                NET_A,
                "10.1.0.1\nc1 10.1.0.2  web Db@c2,cache@c9\nc2 10.1.0.3  client\nc3 10.1.0.4  other\n",
            ),
            (NET_B, "10.2.0.1\nc4 10.2.0.2  x\nc2 10.2.0.3  client\n"),
        ]);
        let found = |asker, name| match z.lookup(ip(asker), name) {
            Lookup::Found(r) => r.iter().map(|r| r.id.clone()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(found("10.1.0.3", "db"), vec!["c1"]);
        // c2 by its address on the other network: still c2.
        assert_eq!(found("10.2.0.3", "db"), vec!["c1"]);
        assert_eq!(z.lookup(ip("10.1.0.4"), "db"), Lookup::Elsewhere);
        assert_eq!(z.lookup(ip("10.1.0.3"), "cache"), Lookup::Elsewhere);
    }

    #[test]
    fn a_line_it_cannot_read_is_left_out_and_told() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(NET_A),
            "10.1.0.1,fd00::1 8.8.8.8\nc1 10.1.0.2 fd00::2 web\nbroken\nc2 not-an-ip  x\n\nc3 10.1.0.4,10.1.0.5  two\n",
        )
        .unwrap();
        let (z, warnings) = Zone::load(dir.path()).unwrap();
        let n = &z.networks[0];
        assert_eq!(n.listen, vec![ip("10.1.0.1"), ip("fd00::1")]);
        let ids: Vec<_> = n.records.iter().map(|r| &r.id[..]).collect();
        assert_eq!(ids, vec!["c1", "c3"]);
        assert_eq!(
            n.records[0].v6,
            vec!["fd00::2".parse::<std::net::Ipv6Addr>().unwrap()]
        );
        assert_eq!(n.records[1].v4.len(), 2);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        // Known by an IPv6 address as well.
        assert!(z.knows(ip("fd00::2")));
        assert!(!n.internal && z.forwards_for(ip("10.1.0.2")));
    }

    #[test]
    fn names_are_forwarded_only_for_askers_with_a_way_out() {
        let z = zone(&[
            (NET_A, "10.1.0.1 internal\nc1 10.1.0.2  a\nc2 10.1.0.3  b\n"),
            (NET_B, "10.2.0.1\nc2 10.2.0.3  b\n"),
        ]);
        assert!(z.networks[0].internal && !z.networks[1].internal);
        // Only on the internal network: nothing goes out.
        assert!(!z.forwards_for(ip("10.1.0.2")));
        // Also on a network with a way out: as Docker, names go out.
        assert!(z.forwards_for(ip("10.1.0.3")));
        assert!(!z.forwards_for(ip("127.0.0.1")));
    }
}
