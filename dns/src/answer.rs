//! One query, one decision: answered from the records, forwarded to the
//! host's resolvers, refused, or dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::{A, AAAA, OPT, PTR, RData};
use simple_dns::{
    CLASS, Name, OPCODE, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, ResourceRecord, TYPE,
};

use crate::zone::{Lookup, Record, Zone};

/// How long an asker may keep an answer: Docker's embedded DNS says 600 s.
const TTL: u32 = 600;

/// What an answer over UDP may hold without EDNS (RFC 1035).
pub const UDP_PLAIN: usize = 512;
/// The largest UDP answer given to an asker that offers more (EDNS).
const UDP_MOST: u16 = 4096;
/// Over TCP: what the length prefix allows.
pub const TCP_MOST: usize = 65535;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Reply(Vec<u8>),
    /// Not a name here: the host's resolvers answer it.
    Forward,
    /// Not a query, or nothing that can be answered.
    Drop,
}

/// Decides what `query` from `asker` gets. `transport_most` is what the
/// transport carries (UDP without EDNS: 512 bytes; TCP: 65535).
pub fn answer(zone: &Zone, asker: IpAddr, query: &[u8], transport_most: usize) -> Outcome {
    let Ok(q) = Packet::parse(query) else {
        // Something this parser does not read (a record type it lacks):
        // an asker the server serves has it answered upstream.
        return if query.len() >= 12 && query[2] & 0x80 == 0 && zone.forwards_for(asker) {
            Outcome::Forward
        } else {
            Outcome::Drop
        };
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Outcome::Drop;
    }
    // The size this answer may take: what the asker offers over UDP with
    // EDNS, never past the transport.
    let most = match q.opt() {
        Some(opt) if transport_most == UDP_PLAIN => {
            usize::from(opt.udp_packet_size.clamp(UDP_PLAIN as u16, UDP_MOST))
        }
        _ => transport_most,
    };
    if q.opcode() != OPCODE::StandardQuery {
        return Outcome::Reply(refusal(&q, RCODE::NotImplemented));
    }
    if !zone.knows(asker) {
        // Only containers on a served network are answered: the gateway
        // is reachable from the host and maybe from other networks, and
        // names are not theirs to list, nor is the server their resolver.
        return Outcome::Reply(refusal(&q, RCODE::Refused));
    }
    // What is not a name here goes out, from a network with a way out;
    // an internal network's containers get a failure instead.
    let elsewhere = || {
        if zone.forwards_for(asker) {
            Outcome::Forward
        } else {
            Outcome::Reply(refusal(&q, RCODE::ServerFailure))
        }
    };
    let [question] = &q.questions[..] else {
        return elsewhere();
    };
    if !matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY) {
        return elsewhere();
    }
    let name = question.qname.to_string();
    let records: Vec<(Name, RData)> = if question.qtype == QTYPE::TYPE(TYPE::PTR) {
        let Some(target) = reverse_address(&name)
            .and_then(|ip| zone.reverse(asker, ip))
            .and_then(|r| r.names.first())
        else {
            return elsewhere();
        };
        match Name::new(target) {
            Ok(t) => vec![(question.qname.clone(), RData::PTR(PTR(t)))],
            Err(_) => return elsewhere(),
        }
    } else {
        match zone.lookup(asker, &name) {
            Lookup::Found(found) => addresses(&found, &question.qtype)
                .into_iter()
                .map(|rd| (question.qname.clone(), rd))
                .collect(),
            // Checked above; a reload in between is no reason to fail.
            Lookup::UnknownAsker => return Outcome::Reply(refusal(&q, RCODE::Refused)),
            Lookup::Elsewhere => return elsewhere(),
        }
    };
    // A name here without records of the asked type is an empty answer,
    // not a question for the host's resolvers (as Docker's DNS does: an
    // AAAA query on an IPv4 network must not leak out and time out).
    // Not marked authoritative: Docker's resolver answers its names as a
    // recursive one would (resolvers print "Non-authoritative answer").
    let mut reply = reply_to(&q, question, RCODE::NoError);
    for (name, rdata) in records {
        reply
            .answers
            .push(ResourceRecord::new(name, CLASS::IN, TTL, rdata));
    }
    match reply.build_bytes_vec_compressed() {
        Ok(bytes) if bytes.len() <= most => Outcome::Reply(bytes),
        // Too big for the transport: the asker is told to ask over TCP.
        Ok(_) => {
            reply.answers.clear();
            reply.set_flags(PacketFlag::TRUNCATION);
            reply
                .build_bytes_vec_compressed()
                .map_or(Outcome::Drop, Outcome::Reply)
        }
        Err(_) => Outcome::Drop,
    }
}

/// The asked type's records of `found`, each address once.
fn addresses<'a>(found: &[&Record], qtype: &QTYPE) -> Vec<RData<'a>> {
    let (v4, v6) = match qtype {
        QTYPE::TYPE(TYPE::A) => (true, false),
        QTYPE::TYPE(TYPE::AAAA) => (false, true),
        QTYPE::ANY => (true, true),
        _ => (false, false),
    };
    let mut out: Vec<RData> = Vec::new();
    let mut seen: Vec<IpAddr> = Vec::new();
    for r in found {
        let ips =
            r.v4.iter()
                .filter(|_| v4)
                .map(|a| IpAddr::V4(*a))
                .chain(r.v6.iter().filter(|_| v6).map(|a| IpAddr::V6(*a)));
        for ip in ips {
            if seen.contains(&ip) {
                continue;
            }
            seen.push(ip);
            out.push(match ip {
                IpAddr::V4(a) => RData::A(A::from(a)),
                IpAddr::V6(a) => RData::AAAA(AAAA::from(a)),
            });
        }
    }
    out
}

/// The reply header and question for `q`: the asker's id and
/// recursion flag, recursion offered, EDNS answered with EDNS.
fn reply_to<'a>(q: &Packet<'a>, question: &Question<'a>, rcode: RCODE) -> Packet<'a> {
    let mut reply = Packet::new_reply(q.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    *reply.rcode_mut() = rcode;
    reply.questions.push(question.clone());
    if q.opt().is_some() {
        *reply.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: UDP_MOST,
            version: 0,
        });
    }
    reply
}

/// An answer with `rcode` and nothing else.
fn refusal(q: &Packet, rcode: RCODE) -> Vec<u8> {
    let mut reply = match q.questions.first() {
        Some(question) => reply_to(q, question, rcode),
        None => {
            let mut r = Packet::new_reply(q.id());
            *r.rcode_mut() = rcode;
            r
        }
    };
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.build_bytes_vec().unwrap_or_default()
}

/// A SERVFAIL for `query`: what an asker gets when no upstream answered.
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    Some(refusal(&q, RCODE::ServerFailure)).filter(|b| !b.is_empty())
}

/// The address a reverse name stands for: `4.3.2.1.in-addr.arpa` or the
/// 32 nibbles of `….ip6.arpa`.
fn reverse_address(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = v4
            .split('.')
            .map(|o| o.parse().ok())
            .collect::<Option<_>>()?;
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return Some(IpAddr::V4(Ipv4Addr::new(
            octets[0], octets[1], octets[2], octets[3],
        )));
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6
        .split('.')
        .map(|n| match n.len() {
            1 => u8::from_str_radix(n, 16).ok(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        bytes[i] = pair[1] << 4 | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn zone(text: &str) -> Zone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NET), text).unwrap();
        Zone::load(dir.path()).unwrap().0
    }

    fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new(name).unwrap(),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn reply(o: &Outcome) -> Packet<'_> {
        match o {
            Outcome::Reply(b) => Packet::parse(b).unwrap(),
            other => panic!("not a reply: {other:?}"),
        }
    }

    fn asker() -> IpAddr {
        "10.1.0.3".parse().unwrap()
    }

    const ZONE: &str =
        "10.1.0.1\nc1 10.1.0.2 fd00::2 web,alias\nc2 10.1.0.3  client\nc3 10.1.0.4  web\n";

    #[test]
    fn a_name_on_the_network_is_answered_with_its_addresses() {
        let z = zone(ZONE);
        let o = answer(&z, asker(), &query(9, "Web", TYPE::A), UDP_PLAIN);
        let r = reply(&o);
        assert_eq!(r.id(), 9);
        assert_eq!(r.rcode(), RCODE::NoError);
        assert!(r.has_flags(
            PacketFlag::RESPONSE | PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE
        ));
        // As Docker's resolver: not authoritative.
        assert!(!r.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
        assert_eq!(r.questions.len(), 1);
        let got: Vec<_> = r
            .answers
            .iter()
            .map(|a| match &a.rdata {
                RData::A(a) => Ipv4Addr::from(a.address).to_string(),
                x => panic!("{x:?}"),
            })
            .collect();
        // Both containers named web (a service scaled to two).
        assert_eq!(got, vec!["10.1.0.2", "10.1.0.4"]);
        assert_eq!(r.answers[0].ttl, TTL);
        // AAAA: the address the one dual-stack container has.
        let r6 = answer(&z, asker(), &query(10, "alias", TYPE::AAAA), UDP_PLAIN);
        let r6 = reply(&r6);
        assert!(
            matches!(&r6.answers[..], [a] if matches!(&a.rdata, RData::AAAA(x) if Ipv6Addr::from(x.address) == "fd00::2".parse::<Ipv6Addr>().unwrap()))
        );
    }

    #[test]
    fn a_name_here_without_the_asked_type_is_an_empty_answer() {
        let z = zone(ZONE);
        for t in [TYPE::AAAA, TYPE::MX, TYPE::TXT] {
            let o = answer(&z, asker(), &query(1, "client", t), UDP_PLAIN);
            let r = reply(&o);
            assert_eq!(r.rcode(), RCODE::NoError, "{t:?}");
            assert!(r.answers.is_empty(), "{t:?}");
        }
    }

    #[test]
    fn other_names_go_to_the_hosts_resolvers() {
        let z = zone(ZONE);
        let o = answer(&z, asker(), &query(1, "example.org", TYPE::A), UDP_PLAIN);
        assert_eq!(o, Outcome::Forward);
        // A reverse name of an address that is no container's.
        let o = answer(
            &z,
            asker(),
            &query(1, "8.8.8.8.in-addr.arpa", TYPE::PTR),
            UDP_PLAIN,
        );
        assert_eq!(o, Outcome::Forward);
    }

    #[test]
    fn an_internal_networks_containers_get_no_names_from_outside() {
        let z = zone("10.1.0.1 internal\nc1 10.1.0.2  web\nc2 10.1.0.3  client\n");
        let r = answer(&z, asker(), &query(3, "example.org", TYPE::A), UDP_PLAIN);
        assert_eq!(reply(&r).rcode(), RCODE::ServerFailure);
        // Its own names still resolve.
        let r = answer(&z, asker(), &query(4, "web", TYPE::A), UDP_PLAIN);
        assert_eq!(reply(&r).answers.len(), 1);
    }

    #[test]
    fn strangers_are_refused_and_answers_ignored() {
        let z = zone(ZONE);
        for stranger in ["10.1.0.1", "127.0.0.1", "10.2.0.3"] {
            let o = answer(
                &z,
                stranger.parse().unwrap(),
                &query(4, "web", TYPE::A),
                UDP_PLAIN,
            );
            let r = reply(&o);
            assert_eq!(r.rcode(), RCODE::Refused, "{stranger}");
            assert!(r.answers.is_empty());
        }
        // A reply sent to the server is not answered (no loops).
        let mut p = Packet::new_reply(3);
        p.questions.push(Question::new(
            Name::new("web").unwrap(),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        let o = answer(&z, asker(), &p.build_bytes_vec().unwrap(), UDP_PLAIN);
        assert_eq!(o, Outcome::Drop);
        assert_eq!(answer(&z, asker(), b"\x00\x01", UDP_PLAIN), Outcome::Drop);
    }

    #[test]
    fn a_container_address_is_named_in_reverse() {
        let z = zone(ZONE);
        let o = answer(
            &z,
            asker(),
            &query(2, "2.0.1.10.in-addr.arpa", TYPE::PTR),
            UDP_PLAIN,
        );
        let r = reply(&o);
        assert!(
            matches!(&r.answers[..], [a] if matches!(&a.rdata, RData::PTR(p) if p.0.to_string() == "web"))
        );
        assert_eq!(
            reverse_address(
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
            ),
            Some("fd00::2".parse().unwrap())
        );
        assert_eq!(reverse_address("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse_address("x.2.0.1.10.in-addr.arpa"), None);
    }

    #[test]
    fn an_answer_too_big_for_udp_says_so() {
        let mut text = String::from("10.1.0.1\nc0 10.1.0.3  client\n");
        for i in 0..60 {
            text.push_str(&format!("c{} 10.1.1.{i}  many\n", i + 1));
        }
        let z = zone(&text);
        let r = answer(&z, asker(), &query(5, "many", TYPE::A), UDP_PLAIN);
        let Outcome::Reply(bytes) = &r else {
            panic!("{r:?}")
        };
        assert!(bytes.len() <= UDP_PLAIN);
        let r = Packet::parse(bytes).unwrap();
        assert!(r.has_flags(PacketFlag::TRUNCATION));
        assert!(r.answers.is_empty());
        // Over TCP, all of them.
        let t = answer(&z, asker(), &query(5, "many", TYPE::A), TCP_MOST);
        assert_eq!(reply(&t).answers.len(), 60);
        assert!(!reply(&t).has_flags(PacketFlag::TRUNCATION));
        // With EDNS offering 4096 bytes, all of them over UDP too.
        let q = query(6, "many", TYPE::A);
        let mut p = Packet::parse(&q).unwrap();
        *p.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: 4096,
            version: 0,
        });
        let e = answer(&z, asker(), &p.build_bytes_vec().unwrap(), UDP_PLAIN);
        let e = reply(&e);
        assert_eq!(e.answers.len(), 60);
        assert!(e.opt().is_some());
    }

    #[test]
    fn a_failure_upstream_is_a_servfail_for_the_query() {
        let b = server_failure(&query(77, "example.org", TYPE::A)).unwrap();
        let r = Packet::parse(&b).unwrap();
        assert_eq!((r.id(), r.rcode()), (77, RCODE::ServerFailure));
        assert_eq!(r.questions[0].qname.to_string(), "example.org");
        assert_eq!(server_failure(b"junk"), None);
    }
}
