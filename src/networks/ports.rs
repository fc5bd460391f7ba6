//! Published ports: what a container asks for (HostConfig.PortBindings, and
//! every exposed port with PublishAllPorts), and how the chosen ones read in
//! inspect, `docker port` and `docker ps`.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use bollard_stubs::models::{ContainerCreateBody, PortBinding, PortMap};

use crate::error::{Error, Result};
use crate::events::v1::PublishedPort;

/// One port to publish: the host port is chosen among `host_ports`
/// (0..=0: any free port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: String,
    pub host_ports: (u16, u16),
}

/// "80/tcp" (or "80": tcp) as (port, proto).
pub fn parse_port_key(key: &str) -> Result<(u16, String)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(Error::invalid(format!("invalid proto: {proto}")));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::invalid(format!("invalid port specification: \"{key}\"")))?;
    Ok((port, proto))
}

fn parse_host_ports(s: &str) -> Result<(u16, u16)> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let bad = || Error::invalid(format!("invalid hostPort: {s}"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// The ports a container publishes when it starts, in a stable order.
pub fn requests(body: &ContainerCreateBody) -> Result<Vec<PortRequest>> {
    let h = body.host_config.clone().unwrap_or_default();
    let mut out = Vec::new();
    let bindings = h.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let (port, proto) = parse_port_key(key)?;
        let list = bindings.get(key).cloned().flatten().unwrap_or_default();
        let list = if list.is_empty() {
            vec![PortBinding::default()]
        } else {
            list
        };
        for b in list {
            let host_ip = b.host_ip.clone().unwrap_or_default();
            // "[::1]" as some clients write it, or "::1".
            let host_ip = host_ip
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .map(str::to_string)
                .unwrap_or(host_ip);
            if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid(format!("invalid IP address: {host_ip}")));
            }
            if proto == "sctp" && host_ip.contains(':') {
                return Err(Error::invalid(format!(
                    "berthd publishes sctp on IPv4 addresses only, not {host_ip}"
                )));
            }
            out.push(PortRequest {
                proto: proto.clone(),
                container_port: port,
                host_ip,
                host_ports: parse_host_ports(b.host_port.as_deref().unwrap_or_default())?,
            });
        }
    }
    if h.publish_all_ports.unwrap_or(false) {
        let mut exposed = body.exposed_ports.clone().unwrap_or_default();
        exposed.sort();
        for key in exposed {
            let (port, proto) = parse_port_key(&key)?;
            if !out
                .iter()
                .any(|r| r.container_port == port && r.proto == proto)
            {
                out.push(PortRequest {
                    proto,
                    container_port: port,
                    host_ip: String::new(),
                    host_ports: (0, 0),
                });
            }
        }
    }
    Ok(out)
}

/// NetworkSettings.Ports: every exposed or bound port, with the host side of
/// the published ones (null for one that is only exposed), as dockerd;
/// empty unless `shown` (see `render::ports_shown`).
pub fn port_map(body: &ContainerCreateBody, published: &[PublishedPort], shown: bool) -> PortMap {
    let mut map: PortMap = HashMap::new();
    if !shown {
        return map;
    }
    for key in body.exposed_ports.iter().flatten() {
        if let Ok((port, proto)) = parse_port_key(key) {
            map.entry(format!("{port}/{proto}")).or_insert(None);
        }
    }
    if let Some(b) = body
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
    {
        for key in b.keys() {
            if let Ok((port, proto)) = parse_port_key(key) {
                map.entry(format!("{port}/{proto}")).or_insert(None);
            }
        }
    }
    for p in published {
        let entry = map
            .entry(format!("{}/{}", p.container_port, p.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new);
        entry.push(PortBinding {
            host_ip: Some(p.host_ip.clone()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    map
}

// The host side of published ports: a bound socket holds each, so nothing
// else takes it and a port in use fails a start before anything is made.

/// Holds each published port's host side (a bound socket per port).
pub fn reserve_published(published: &[PublishedPort]) -> Result<Vec<OwnedFd>> {
    published
        .iter()
        .map(|p| bind_port(&p.proto, &p.host_ip, p.host_port).map(|(fd, _)| fd))
        .collect()
}

/// Binds `host_ip:port` (0: a port the kernel picks) for `proto`; an empty
/// `host_ip` is 0.0.0.0. A v6 socket takes v6 only, so that `[::]:p`
/// and `0.0.0.0:p` are two bindings, as dockerd makes them.
fn bind_port(proto: &str, host_ip: &str, port: u16) -> Result<(OwnedFd, u16)> {
    use nix::sys::socket::{
        bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
        SockaddrStorage,
    };
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let ip: IpAddr = if host_ip.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        host_ip
            .parse()
            .map_err(|_| Error::invalid(format!("invalid host IP {host_ip}")))?
    };
    let kind = if proto == "udp" {
        SockType::Datagram
    } else {
        SockType::Stream
    };
    let family = if ip.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(family, kind, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::internal(format!("making a socket: {e}")))?;
    // A v6 tcp port is the proxy's listener: it takes connections, so a
    // killed daemon leaves them in TIME_WAIT, which would keep the next
    // daemon from binding it again without SO_REUSEADDR (Go's listeners,
    // docker-proxy's, set it too). It listens at once: a bound socket with
    // SO_REUSEADDR would not stop another such bind, a listening one does.
    let listener = ip.is_ipv6() && kind == SockType::Stream;
    if ip.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)
            .map_err(|e| Error::internal(format!("setting IPV6_V6ONLY: {e}")))?;
    }
    if listener {
        setsockopt(&fd, sockopt::ReuseAddr, &true)
            .map_err(|e| Error::internal(format!("setting SO_REUSEADDR: {e}")))?;
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(SocketAddr::new(ip, port)),
    )
    .map_err(|e| {
        let why = if e == nix::errno::Errno::EADDRINUSE {
            "port is already allocated".to_string()
        } else {
            e.desc().to_string()
        };
        Error::invalid(format!("Bind for {ip}:{port} failed: {why}"))
    })?;
    if listener {
        nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::MAXCONN)
            .map_err(|e| Error::internal(format!("listening on {ip}:{port}: {e}")))?;
    }
    let bound: SockaddrStorage = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| Error::internal(format!("reading the bound port: {e}")))?;
    let port = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(|a| a.port()))
        .unwrap_or(port);
    Ok((fd, port))
}

/// Whether the host has IPv6: then a port published without an address
/// listens on `[::]` too, as dockerd 20.10 publishes it.
pub fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|v| v.trim() == "0")
}

/// The addresses one request binds: its own, or 0.0.0.0 and `[::]`.
fn request_addresses(r: &PortRequest, ipv6: bool) -> Vec<&str> {
    match r.host_ip.as_str() {
        // The proxy carries tcp and udp; sctp stays a v4 DNAT rule.
        "" if ipv6 && r.proto != "sctp" => vec!["0.0.0.0", "::"],
        "" => vec!["0.0.0.0"],
        ip => vec![ip],
    }
}

/// Binds every address of `addrs` at one port: the first chooses it among
/// `ports` (0..=0: the kernel's pick), the others follow. A port one of
/// them cannot have is given up for the next.
fn bind_all(proto: &str, addrs: &[&str], (lo, hi): (u16, u16)) -> Result<(u16, Vec<OwnedFd>)> {
    // An ephemeral port the first address gets may be taken on another.
    let tries: Vec<u16> = if lo == 0 {
        vec![0; 8]
    } else {
        (lo..=hi).collect()
    };
    let mut last_err = None;
    for port in tries {
        let mut fds = Vec::new();
        let mut chosen = port;
        let mut failed = None;
        for addr in addrs {
            match bind_port(proto, addr, chosen) {
                Ok((fd, p)) => {
                    chosen = p;
                    fds.push(fd);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => return Ok((chosen, fds)),
            Some(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::invalid("no host port to publish on")))
}

/// Chooses and holds the host ports of `requests`: one PublishedPort and
/// one socket each, in the same order.
pub fn reserve_requests(requests: &[PortRequest]) -> Result<(Vec<PublishedPort>, Vec<OwnedFd>)> {
    let ipv6 = host_has_ipv6();
    let mut published = Vec::new();
    let mut held = Vec::new();
    for r in requests {
        let addrs = request_addresses(r, ipv6);
        let (port, fds) = bind_all(&r.proto, &addrs, r.host_ports)?;
        for (addr, fd) in addrs.iter().zip(fds) {
            published.push(PublishedPort {
                proto: r.proto.clone(),
                container_port: r.container_port,
                host_ip: addr.to_string(),
                host_port: port,
            });
            held.push(fd);
        }
    }
    Ok((published, held))
}

/// Whether a published port is an IPv6 one: the daemon's proxy carries it
/// (ip6tables cannot DNAT from ::1, and dockerd proxies them too).
pub fn is_v6(p: &PublishedPort) -> bool {
    p.host_ip.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::HostConfig;

    #[test]
    fn bindings_ranges_and_publish_all() {
        let mut bindings: PortMap = HashMap::new();
        bindings.insert(
            "80/tcp".into(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into()),
            }]),
        );
        bindings.insert(
            "53/udp".into(),
            Some(vec![PortBinding {
                host_ip: None,
                host_port: Some("5300-5310".into()),
            }]),
        );
        let body = ContainerCreateBody {
            exposed_ports: Some(vec!["80/tcp".into(), "443/tcp".into()]),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                publish_all_ports: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = requests(&body).unwrap();
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(
            (r[0].container_port, r[0].proto.as_str(), r[0].host_ports),
            (53, "udp", (5300, 5310))
        );
        assert_eq!(
            (r[1].container_port, r[1].host_ip.as_str(), r[1].host_ports),
            (80, "127.0.0.1", (8080, 8080))
        );
        assert_eq!((r[2].container_port, r[2].host_ports), (443, (0, 0)));
        let published = vec![PublishedPort {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
        }];
        let m = port_map(&body, &published, true);
        assert_eq!(
            m["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert!(m["443/tcp"].is_none());
        assert!(port_map(&body, &published, false).is_empty());
    }

    #[test]
    fn bad_ports_are_refused() {
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/xyz").is_err());
        assert!(parse_host_ports("90-80").is_err());
        assert_eq!(parse_port_key("8080").unwrap(), (8080, "tcp".into()));
    }
}
