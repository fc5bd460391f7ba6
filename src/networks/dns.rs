//! The DNS server a container on a user-defined network finds at
//! 127.0.0.11:53 (udp and tcp), as dockerd's embedded resolver. It answers the
//! names its `Names` know (containers, aliases, short IDs, links; PTR for their
//! addresses), an empty NOERROR for a known name's missing record type, and
//! forwards every other name with a dot to the container's upstream resolvers.
//! The wire format work is small (one question; A, AAAA and PTR answers), so
//! it is ours.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, warn};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// The TTL dockerd's embedded server gives its answers.
const TTL: u32 = 600;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NXDOMAIN: u16 = 3;
/// How long an upstream gets to answer, and a TCP client to ask.
const WAIT: Duration = Duration::from_secs(5);

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    /// Lower case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question ends in the packet.
    pub question_end: usize,
}

/// Reads a standard query with one question (no compression in questions, as
/// every resolver sends them).
pub fn parse_query(buf: &[u8]) -> Option<Query> {
    if buf.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    let qdcount = u16::from_be_bytes([buf[4], buf[5]]);
    // A response, or not a standard query: not for us.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qdcount != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *buf.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = buf.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*buf.get(pos + 2)?, *buf.get(pos + 3)?]);
    Some(Query {
        id,
        flags,
        name: labels.join("."),
        qtype,
        qclass,
        question_end: pos + 4,
    })
}

fn header(q: &Query, rcode: u16, answers: u16) -> Vec<u8> {
    // QR, the query's opcode and RD, RA; not authoritative (as dockerd).
    let flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | rcode;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// One answer record; its owner is the question's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Address(IpAddr),
    /// A PTR's target, without the trailing dot.
    Pointer(String),
}

/// The answer to `q` (read from `packet`) with `records`.
pub fn answer(packet: &[u8], q: &Query, records: &[Record]) -> Vec<u8> {
    let mut out = header(q, 0, records.len() as u16);
    out.extend_from_slice(&packet[12..q.question_end]);
    for r in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name: the question's
        let (rtype, rdata) = match r {
            Record::Address(IpAddr::V4(ip)) => (TYPE_A, ip.octets().to_vec()),
            Record::Address(IpAddr::V6(ip)) => (TYPE_AAAA, ip.octets().to_vec()),
            Record::Pointer(name) => (TYPE_PTR, encode_name(name)),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// A name in wire format (labels longer than 63 bytes are cut).
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let b = &label.as_bytes()[..label.len().min(63)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.push(0);
    out
}

/// An answer with no records and `rcode`.
pub fn error(packet: &[u8], q: &Query, rcode: u16) -> Vec<u8> {
    let mut out = header(q, rcode, 0);
    out.extend_from_slice(&packet[12..q.question_end]);
    out
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, or the nibbles of
/// `ip6.arpa`) stands for.
pub fn reverse_address(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = v4
            .split('.')
            .map(|p| p.parse().ok())
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
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        // Reversed: the last label is the address's first nibble.
        bytes[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

/// What a sandbox's server knows: the addresses of a name (None: it does not
/// know the name), the name of an address, and where other names go.
pub trait Names: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>>;
    fn reverse(&self, ip: IpAddr) -> Option<String>;
    fn upstreams(&self) -> Vec<String>;
}

/// What to do with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Reply(Vec<u8>),
    /// Ask these servers; SERVFAIL (`fallback`) when none answers.
    Forward {
        upstreams: Vec<String>,
        fallback: Vec<u8>,
    },
    Ignore,
}

/// dockerd's embedded resolver's rules for one packet.
pub fn decide(packet: &[u8], names: &dyn Names) -> Decision {
    let Some(q) = parse_query(packet) else {
        return Decision::Ignore;
    };
    if q.qclass == CLASS_IN {
        match q.qtype {
            TYPE_A | TYPE_AAAA => {
                if let Some(ips) = names.lookup(&q.name) {
                    let want_v4 = q.qtype == TYPE_A;
                    let records: Vec<Record> = ips
                        .into_iter()
                        .filter(|ip| ip.is_ipv4() == want_v4)
                        .map(Record::Address)
                        .collect();
                    // A known name without this type: NOERROR, no records,
                    // so the client does not give up on the name.
                    return Decision::Reply(answer(packet, &q, &records));
                }
            }
            TYPE_PTR => {
                if let Some(name) = reverse_address(&q.name).and_then(|ip| names.reverse(ip)) {
                    return Decision::Reply(answer(packet, &q, &[Record::Pointer(name)]));
                }
            }
            // MX, SRV, ... of a container's name: it has none (NOERROR).
            _ if names.lookup(&q.name).is_some() => {
                return Decision::Reply(answer(packet, &q, &[]));
            }
            _ => {}
        }
    }
    // A single label is a container name or nothing: it is not sent off the
    // host (the client goes on with its search domains).
    if !q.name.contains('.') {
        return Decision::Reply(error(packet, &q, RCODE_NXDOMAIN));
    }
    Decision::Forward {
        upstreams: names.upstreams(),
        fallback: error(packet, &q, RCODE_SERVFAIL),
    }
}

/// Serves the udp socket and tcp listener until the task is aborted.
pub async fn serve(udp: UdpSocket, tcp: TcpListener, names: Arc<dyn Names>) {
    let tcp_names = Arc::clone(&names);
    let tcp_task = tokio::spawn(serve_tcp(tcp, tcp_names));
    // The tcp side ends with this one (an abort drops this future).
    let _guard = AbortOnDrop(tcp_task.abort_handle());
    serve_udp(udp, names).await
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_udp(socket: UdpSocket, names: Arc<dyn Names>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "dns: receiving");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match decide(&buf[..n], names.as_ref()) {
            Decision::Ignore => {}
            Decision::Reply(r) => {
                let _ = socket.send_to(&r, from).await;
            }
            Decision::Forward {
                upstreams,
                fallback,
            } => {
                let (socket, packet) = (Arc::clone(&socket), buf[..n].to_vec());
                tokio::spawn(async move {
                    let reply = forward(&packet, &upstreams).await.unwrap_or(fallback);
                    let _ = socket.send_to(&reply, from).await;
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, names: Arc<dyn Names>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "dns: accepting");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let names = Arc::clone(&names);
        tokio::spawn(async move {
            if let Err(e) = tcp_client(stream, names.as_ref()).await {
                debug!(error = %e, "dns: tcp client");
            }
        });
    }
}

/// Each message on a tcp connection is two length bytes and a packet; the
/// client may ask several in turn.
async fn tcp_client(mut stream: TcpStream, names: &dyn Names) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(WAIT, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut packet = vec![0u8; u16::from_be_bytes(len) as usize];
        tokio::time::timeout(WAIT, stream.read_exact(&mut packet))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let reply = match decide(&packet, names) {
            Decision::Ignore => return Ok(()),
            Decision::Reply(r) => r,
            Decision::Forward {
                upstreams,
                fallback,
            } => forward(&packet, &upstreams).await.unwrap_or(fallback),
        };
        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}

/// Asks each upstream in turn (5 s each); the first answer wins. The
/// daemon's own namespace sends it, so a resolver on the host's loopback
/// (127.0.0.53) is reached too.
async fn forward(packet: &[u8], upstreams: &[String]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(ip) = up.parse::<IpAddr>() else {
            continue;
        };
        let bind: SocketAddr = if ip.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.connect(SocketAddr::new(ip, 53)).await.is_err() || s.send(packet).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(WAIT, s.recv(&mut buf)).await {
            Ok(Ok(n)) => return Some(buf[..n].to_vec()),
            _ => debug!(upstream = %up, "dns: no answer"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    struct One;

    impl Names for One {
        fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
            (name == "web" || name == "web.net").then(|| vec!["10.1.0.2".parse().unwrap()])
        }
        fn reverse(&self, ip: IpAddr) -> Option<String> {
            (ip == "10.1.0.2".parse::<IpAddr>().unwrap()).then(|| "web.net".to_string())
        }
        fn upstreams(&self) -> Vec<String> {
            vec!["9.9.9.9".into()]
        }
    }

    fn reply(d: Decision) -> Vec<u8> {
        match d {
            Decision::Reply(r) => r,
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn answers_a_with_the_question_and_records() {
        let p = query("Web.Net", TYPE_A);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "web.net");
        let r = reply(decide(&p, &One));
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(
            u16::from_be_bytes([r[2], r[3]]),
            0x8180,
            "QR RD RA, NOERROR"
        );
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[12..q.question_end], &p[12..]);
        assert_eq!(&r[r.len() - 4..], &[10, 1, 0, 2]);
        assert_eq!(&r[q.question_end..q.question_end + 2], &[0xc0, 0x0c]);
    }

    #[test]
    fn a_known_name_without_the_type_is_noerror_and_unknown_is_nxdomain() {
        for qtype in [TYPE_AAAA, 15] {
            let p = query("web", qtype);
            let r = reply(decide(&p, &One));
            assert_eq!(u16::from_be_bytes([r[2], r[3]]) & 0xf, 0, "NOERROR");
            assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
            assert_eq!(r.len(), p.len());
        }
        let r = reply(decide(&query("other", TYPE_A), &One));
        assert_eq!(u16::from_be_bytes([r[2], r[3]]) & 0xf, 3);
        match decide(&query("example.com", TYPE_A), &One) {
            Decision::Forward { upstreams, .. } => assert_eq!(upstreams, ["9.9.9.9"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ptr_names_a_known_address() {
        let p = query("2.0.1.10.in-addr.arpa", TYPE_PTR);
        let r = reply(decide(&p, &One));
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert!(r.ends_with(b"\x03web\x03net\x00"), "{r:?}");
        assert!(matches!(
            decide(&query("3.0.1.10.in-addr.arpa", TYPE_PTR), &One),
            Decision::Forward { .. }
        ));
        assert_eq!(
            reverse_address(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
            ),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(reverse_address("1.2.3.in-addr.arpa"), None);
    }

    #[test]
    fn malformed_packets_are_ignored() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut p = query("web", 1);
        p.truncate(p.len() - 3);
        assert!(parse_query(&p).is_none());
        let mut resp = query("web", 1);
        resp[2] |= 0x80;
        assert_eq!(decide(&resp, &One), Decision::Ignore);
    }
}
