//! The files berthd writes and the server reads: one per network in the
//! config directory, named by the network's id. The first line holds the
//! addresses to listen on (the network's gateways, comma-separated; `-`
//! for none: a macvlan network's gateway is not the host's), then
//! `internal` for a network with no way out (no names are forwarded for
//! it); each further line is a container:
//! `id ipv4 ipv6 name,name… [alias@asker,…]` (an address field may be
//! empty, or hold several addresses separated by commas; the last field
//! holds the names only one container, by its id, is answered: a legacy
//! link's alias on a user network). Without that field the format is
//! aardvark-dns', so that an engine that ran it hands its records over.
//!
//! Both sides live here: [`line`] and [`header`] write, [`parse_line`]
//! and [`parse_header`] read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A container's names and addresses on one network, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
    /// Lowercase: names are matched without regard to case.
    pub names: Vec<String>,
    /// (name, id of the only container it is answered to).
    pub linked_as: Vec<(String, String)>,
}

/// A container's record as berthd writes it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub container_id: &'a str,
    pub ipv4: &'a str,
    /// Empty on an IPv4-only network.
    pub ipv6: &'a str,
    pub names: Vec<String>,
    /// Names answered to one asker only: (alias, id of the container
    /// that links by it), a legacy link on a user network.
    pub linked_as: Vec<(String, String)>,
}

/// A field that cannot go into a file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A 64-hex-digit id: only such files are networks, only such ids are
/// containers.
pub fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the server can serve: letters, digits, `-`, `_` and `.`, as
/// container names and aliases are.
pub fn is_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The first line of a network's file.
pub fn header(gateway: Option<Ipv4Addr>, internal: bool) -> String {
    let listen = gateway.map_or_else(|| "-".to_string(), |g| g.to_string());
    if internal {
        format!("{listen} internal")
    } else {
        listen
    }
}

/// One container's line. Every field is checked, so that nothing a caller
/// named can add a line or a field to the file.
pub fn line(e: &Entry) -> Result<String, Invalid> {
    if !is_id(e.container_id) {
        return Err(Invalid(format!(
            "DNS record for {:?}: not a container id",
            e.container_id
        )));
    }
    e.ipv4
        .parse::<Ipv4Addr>()
        .map_err(|_| Invalid(format!("DNS record address {:?}", e.ipv4)))?;
    if !e.ipv6.is_empty() {
        e.ipv6
            .parse::<Ipv6Addr>()
            .map_err(|_| Invalid(format!("DNS record address {:?}", e.ipv6)))?;
    }
    if let Some(bad) = e.names.iter().find(|n| !is_dns_name(n)) {
        return Err(Invalid(format!("DNS name {bad:?}")));
    }
    let mut out = format!(
        "{} {} {} {}",
        e.container_id,
        e.ipv4,
        e.ipv6,
        e.names.join(",")
    );
    if !e.linked_as.is_empty() {
        let mut scoped = Vec::new();
        for (alias, asker) in &e.linked_as {
            if !is_dns_name(alias) || !is_id(asker) {
                return Err(Invalid(format!("DNS link alias {alias:?} of {asker:?}")));
            }
            scoped.push(format!("{alias}@{asker}"));
        }
        out.push(' ');
        out.push_str(&scoped.join(","));
    }
    Ok(out)
}

/// The container a line is about, without reading the rest.
pub fn line_id(line: &str) -> Option<&str> {
    line.split(' ').next()
}

/// The first line: the addresses to listen on (those that parse; the
/// others are returned as text), and whether the network is internal.
/// aardvark-dns allows upstream servers after the addresses: the listen
/// addresses are the first field.
pub fn parse_header(first: &str) -> (Vec<IpAddr>, Vec<String>, bool) {
    let mut fields = first.split_whitespace();
    let listen = fields.next().unwrap_or_default();
    let internal = fields.any(|f| f == "internal");
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let none = listen == "-";
    for a in listen
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty() && !none)
    {
        match a.parse::<IpAddr>() {
            Ok(ip) => ok.push(ip),
            Err(_) => bad.push(a.to_string()),
        }
    }
    (ok, bad, internal)
}

/// A container's line, or None when it is not one.
pub fn parse_line(line: &str) -> Option<Record> {
    let mut f = line.split(' ');
    let id = f.next()?;
    let (v4, v6, names) = (f.next()?, f.next()?, f.next()?);
    let linked_as = f
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, by) = l.split_once('@')?;
            Some((normalize(name), by.to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    if id.is_empty() || f.next().is_some() {
        return None;
    }
    let names: Vec<String> = names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(normalize)
        .collect();
    Some(Record {
        id: id.to_string(),
        v4: addresses(v4)?,
        v6: addresses(v6)?,
        names,
        linked_as,
    })
}

/// A name as it is matched: lowercase, without the root's dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A comma-separated list of addresses, maybe empty.
fn addresses<T: std::str::FromStr>(s: &str) -> Option<Vec<T>> {
    s.split(',')
        .filter(|a| !a.is_empty())
        .map(|a| a.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn entry(names: &[&str]) -> Entry<'static> {
        Entry {
            container_id: ID,
            ipv4: "10.1.0.2",
            ipv6: "",
            names: names.iter().map(|n| n.to_string()).collect(),
            linked_as: Vec::new(),
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut e = entry(&["Web", "web.net"]);
        e.ipv6 = "fd00::2";
        e.linked_as = vec![("db".into(), ID.into())];
        let text = line(&e).unwrap();
        assert_eq!(text, format!("{ID} 10.1.0.2 fd00::2 Web,web.net db@{ID}"));
        assert_eq!(
            parse_line(&text),
            Some(Record {
                id: ID.into(),
                v4: vec!["10.1.0.2".parse().unwrap()],
                v6: vec!["fd00::2".parse().unwrap()],
                names: vec!["web".into(), "web.net".into()],
                linked_as: vec![("db".into(), ID.into())],
            })
        );
        assert_eq!(line_id(&text), Some(ID));
        let gw: Ipv4Addr = "10.1.0.1".parse().unwrap();
        assert_eq!(
            parse_header(&header(Some(gw), true)),
            (vec![gw.into()], vec![], true)
        );
        assert_eq!(
            parse_header(&header(Some(gw), false)),
            (vec![gw.into()], vec![], false)
        );
        // No address of the host's to listen on.
        assert_eq!(parse_header(&header(None, true)), (vec![], vec![], true));
        assert_eq!(parse_header(&header(None, false)), (vec![], vec![], false));
    }

    #[test]
    fn nothing_a_caller_names_adds_a_field_or_a_line() {
        for bad in ["a b", "a\nb", "a,b", "x@y", ""] {
            assert!(line(&entry(&[bad])).is_err(), "{bad:?}");
        }
        let mut e = entry(&["web"]);
        e.container_id = "../etc";
        assert!(line(&e).is_err());
        let mut e = entry(&["web"]);
        e.ipv4 = "10.1.0.2 x";
        assert!(line(&e).is_err());
        let mut e = entry(&["web"]);
        e.linked_as = vec![("db".into(), "not-an-id".into())];
        assert!(line(&e).is_err());
    }

    #[test]
    fn aardvark_lines_and_headers_are_read() {
        let r = parse_line(&format!("{ID} 10.1.0.2,10.1.0.3  web")).unwrap();
        assert_eq!(r.v4.len(), 2);
        assert!(r.v6.is_empty() && r.linked_as.is_empty());
        let (listen, bad, internal) = parse_header("10.1.0.1,fd00::1,nope 8.8.8.8");
        assert_eq!(listen.len(), 2);
        assert_eq!(bad, vec!["nope".to_string()]);
        assert!(!internal);
        assert_eq!(parse_line("only two"), None);
        assert_eq!(parse_line(&format!("{ID} 10.1.0.2  web x@y extra")), None);
    }
}
