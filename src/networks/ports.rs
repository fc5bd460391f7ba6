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
            if !host_ip.is_empty() && host_ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(Error::invalid(format!(
                    "invalid host IP {host_ip}: berthd publishes on IPv4 addresses"
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
/// the published ones (null for one that is only exposed), as dockerd.
pub fn port_map(body: &ContainerCreateBody, published: &[PublishedPort], running: bool) -> PortMap {
    let mut map: PortMap = HashMap::new();
    if !running {
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

/// Binds `host_ip:port` (0: a port the kernel picks) for `proto`.
fn bind_port(proto: &str, host_ip: &str, port: u16) -> Result<(OwnedFd, u16)> {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let ip: std::net::Ipv4Addr = if host_ip.is_empty() {
        std::net::Ipv4Addr::UNSPECIFIED
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
    let fd = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::internal(format!("making a socket: {e}")))?;
    let shown = if host_ip.is_empty() {
        "0.0.0.0"
    } else {
        host_ip
    };
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(ip, port)),
    )
    .map_err(|e| {
        let why = if e == nix::errno::Errno::EADDRINUSE {
            "port is already allocated".to_string()
        } else {
            e.desc().to_string()
        };
        Error::invalid(format!("Bind for {shown}:{port} failed: {why}"))
    })?;
    let bound: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .map_err(|e| Error::internal(format!("reading the bound port: {e}")))?;
    Ok((fd, bound.port()))
}

/// Chooses and holds the host ports of `requests`.
pub fn reserve_requests(requests: &[PortRequest]) -> Result<(Vec<PublishedPort>, Vec<OwnedFd>)> {
    let mut published = Vec::new();
    let mut held = Vec::new();
    for r in requests {
        let (lo, hi) = r.host_ports;
        let mut last_err = None;
        let mut got = None;
        for port in lo..=hi {
            match bind_port(&r.proto, &r.host_ip, port) {
                Ok(x) => {
                    got = Some(x);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let (fd, port) = match got {
            Some(x) => x,
            None => {
                return Err(last_err.unwrap_or_else(|| Error::invalid("no host port to publish on")))
            }
        };
        published.push(PublishedPort {
            proto: r.proto.clone(),
            container_port: r.container_port,
            host_ip: if r.host_ip.is_empty() {
                "0.0.0.0".into()
            } else {
                r.host_ip.clone()
            },
            host_port: port,
        });
        held.push(fd);
    }
    Ok((published, held))
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
