//! The DNS server of a user-defined network: it listens on the network's
//! gateway (port 53 of the bridge's address), answers the names of the
//! containers on that network (name, short ID, aliases) from the projection,
//! and forwards other names with a dot to the upstream resolvers. The wire
//! format work is small (one question, A answers), so it is ours.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tracing::{debug, warn};

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// The TTL dockerd's embedded server gives its answers.
const TTL: u32 = 600;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NXDOMAIN: u16 = 3;

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

/// The answer to `q` (read from `packet`): A records for `ips` when it asks
/// for A, none (the name exists) for other types.
pub fn answer(packet: &[u8], q: &Query, ips: &[Ipv4Addr]) -> Vec<u8> {
    let records: &[Ipv4Addr] = if q.qtype == TYPE_A && q.qclass == CLASS_IN {
        ips
    } else {
        &[]
    };
    let mut out = header(q, 0, records.len() as u16);
    out.extend_from_slice(&packet[12..q.question_end]);
    for ip in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the name: the question's
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// An answer with no records and `rcode`.
pub fn error(packet: &[u8], q: &Query, rcode: u16) -> Vec<u8> {
    let mut out = header(q, rcode, 0);
    out.extend_from_slice(&packet[12..q.question_end]);
    out
}

/// Who a network's server asks: the addresses of a name on the network, and
/// where the container asking (by its address) sends other names.
pub trait Names: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> Vec<Ipv4Addr>;
    fn upstreams(&self, client: Ipv4Addr) -> Vec<String>;
}

/// Serves DNS on `addr` until the task is aborted.
pub async fn serve(addr: Ipv4Addr, names: Arc<dyn Names>) -> std::io::Result<()> {
    let socket = Arc::new(UdpSocket::bind(SocketAddr::from((addr, 53))).await?);
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "dns: receiving");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let packet = buf[..n].to_vec();
        let Some(q) = parse_query(&packet) else {
            continue;
        };
        let ips = names.lookup(&q.name);
        if !ips.is_empty() {
            let _ = socket.send_to(&answer(&packet, &q, &ips), from).await;
            continue;
        }
        // A single label is a container name or nothing: it is not sent
        // off the host.
        if !q.name.contains('.') {
            let _ = socket
                .send_to(&error(&packet, &q, RCODE_NXDOMAIN), from)
                .await;
            continue;
        }
        let client = match from {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let upstreams = names.upstreams(client);
        let socket = Arc::clone(&socket);
        tokio::spawn(async move {
            let reply = match forward(&packet, &upstreams).await {
                Some(r) => r,
                None => error(&packet, &q, RCODE_SERVFAIL),
            };
            let _ = socket.send_to(&reply, from).await;
        });
    }
}

/// Asks each upstream in turn (5 s each); the first answer wins.
async fn forward(packet: &[u8], upstreams: &[String]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(ip) = up.parse::<std::net::IpAddr>() else {
            continue;
        };
        let bind: SocketAddr = if ip.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.connect(SocketAddr::new(ip, 53)).await.is_err() || s.send(packet).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf)).await {
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

    #[test]
    fn answers_a_with_the_question_and_records() {
        let p = query("Web.Net", TYPE_A);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "web.net");
        let r = answer(&p, &q, &[Ipv4Addr::new(10, 1, 0, 2)]);
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
    fn other_types_get_no_records_and_unknown_gets_nxdomain() {
        let p = query("web", 28);
        let q = parse_query(&p).unwrap();
        let r = answer(&p, &q, &[Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert_eq!(r.len(), p.len());
        let r = error(&p, &q, RCODE_NXDOMAIN);
        assert_eq!(u16::from_be_bytes([r[2], r[3]]) & 0xf, 3);
    }

    #[test]
    fn malformed_packets_are_ignored() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut p = query("web", 1);
        p.truncate(p.len() - 3);
        assert!(parse_query(&p).is_none());
        let mut resp = query("web", 1);
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none());
    }
}
