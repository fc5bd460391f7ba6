//! Legacy links (`--link name:alias`), as dockerd keeps them. On the default
//! bridge a link gives the linking container an /etc/hosts line and the
//! `ALIAS_PORT_...`, `ALIAS_NAME`, `ALIAS_ENV_...` variables of the linked one.
//! On a user-defined network it is only a name: the alias resolves through
//! the linking container's DNS server (dockerd moves it to the endpoint's Links).

use std::collections::HashMap;

use bollard_stubs::models::{ContainerCreateBody, EndpointSettings, NetworkingConfig};

use super::spec::{mode_network, BRIDGE};
use crate::error::{Error, Result};
use crate::events::projection::{ContainerRecord, State};

/// `name[:alias]` as the CLI sends it ("/x" names are taken too): the
/// linked container's name and the alias (its name when none is given).
pub fn parse(link: &str) -> (String, String) {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let clean = |s: &str| s.trim_start_matches('/').to_string();
    // "/child:/parent/alias", as inspect shows it: the alias is the last part.
    let alias = clean(alias);
    let alias = alias.rsplit('/').next().unwrap_or_default().to_string();
    (clean(name), alias)
}

fn on_default_bridge(body: &ContainerCreateBody) -> bool {
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    mode_network(&mode) == BRIDGE
}

/// At create: on the default bridge every linked container must exist (a
/// 400, in dockerd's words); on a user-defined network the links move to the
/// network's endpoint, unchecked, as dockerd does.
pub fn check_create(body: &mut ContainerCreateBody, state: &State) -> Result<()> {
    let links: Vec<String> = body
        .host_config
        .as_ref()
        .and_then(|h| h.links.clone())
        .unwrap_or_default();
    if links.is_empty() {
        return Ok(());
    }
    if on_default_bridge(body) {
        for link in &links {
            let (name, _) = parse(link);
            state.container(&name).map_err(|e| {
                Error::invalid(format!(
                    "could not get container for {name}: {}",
                    e.message()
                ))
            })?;
        }
        return Ok(());
    }
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Ok(());
    }
    if let Some(h) = body.host_config.as_mut() {
        h.links = None;
    }
    let endpoints = body
        .networking_config
        .get_or_insert_with(NetworkingConfig::default)
        .endpoints_config
        .get_or_insert_with(HashMap::new);
    let ep = endpoints
        .entry(mode)
        .or_insert_with(EndpointSettings::default);
    // The CLI of API 1.44+ sends them there too.
    let moved = ep.links.get_or_insert_with(Vec::new);
    for l in links {
        if !moved.contains(&l) {
            moved.push(l);
        }
    }
    Ok(())
}

/// One link of a container on the default bridge, at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub alias: String,
    /// The linked container's name (no slash), hostname and address.
    pub name: String,
    pub hostname: String,
    pub ip: String,
    /// Its exposed ports ("80/tcp"), and its environment.
    pub ports: Vec<String>,
    pub env: Vec<String>,
}

/// The links of `c` (on the default bridge, id `bridge`) at its start: each
/// linked container must be running there, as dockerd demands.
pub fn at_start(
    state: &State,
    c: &ContainerRecord,
    body: &ContainerCreateBody,
    bridge: &str,
) -> Result<Vec<Linked>> {
    if !on_default_bridge(body) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for link in body
        .host_config
        .as_ref()
        .and_then(|h| h.links.clone())
        .unwrap_or_default()
    {
        let (name, alias) = parse(&link);
        let child = state.container(&name).map_err(|e| {
            Error::invalid(format!(
                "could not get container for {name}: {}",
                e.message()
            ))
        })?;
        let ip = child
            .networks
            .get(bridge)
            .map(|e| e.ip.clone())
            .filter(|ip| {
                !ip.is_empty()
                    && child.status == crate::events::projection::ContainerStatus::Running
            })
            .ok_or_else(|| {
                Error::internal(format!(
                    "Cannot link to a non running container: /{} AS /{}/{alias}",
                    child.name, c.name
                ))
            })?;
        // (containers::render shows links, so it is not asked here.)
        let cb: ContainerCreateBody = serde_json::from_str(&child.config).unwrap_or_default();
        out.push(Linked {
            alias,
            name: child.name.clone(),
            hostname: cb.hostname.clone().unwrap_or_default(),
            ip,
            ports: cb.exposed_ports.clone().unwrap_or_default(),
            env: cb.env.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The /etc/hosts line of a link: the alias, the linked container's
/// hostname, and its name unless the alias is its name.
pub fn hosts_line(l: &Linked) -> String {
    if l.alias == l.name {
        format!("{}\t{} {}\n", l.ip, l.alias, l.hostname)
    } else {
        format!("{}\t{} {} {}\n", l.ip, l.alias, l.hostname, l.name)
    }
}

/// The hosts file without link `alias`'s line.
pub fn without_hosts_line(hosts: &str, alias: &str) -> String {
    hosts
        .lines()
        .filter(|l| {
            l.split_once('\t')
                .and_then(|(_, names)| names.split(' ').next())
                != Some(alias)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A port as dockerd sorts a link's ports: by number, tcp before udp.
fn port_key(p: &str) -> (u32, String) {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    (num.parse().unwrap_or(0), proto.to_string())
}

/// The variables a link gives the linking container `parent`, in dockerd's
/// order: the first port; each run of three or more ports as _START/_END
/// (dockerd's run ends only where a number jumps by more than one, whatever
/// the protocols); each port; the name; then the linked one's environment
/// (less HOME and PATH).
pub fn env(l: &Linked, parent: &str) -> Vec<String> {
    let prefix = l.alias.to_uppercase().replace('-', "_");
    let mut ports: Vec<(u32, String)> = l.ports.iter().map(|p| port_key(p)).collect();
    ports.sort();
    ports.dedup();
    let ip = &l.ip;
    let mut out = Vec::new();
    if let Some((port, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{port}"));
    }
    let mut i = 0;
    while i < ports.len() {
        let j = run_end(&ports, i);
        if j > i + 1 {
            let ((first, proto), (last, last_proto)) = (&ports[i], &ports[j]);
            let base = format!("{prefix}_PORT_{first}_{}", proto.to_uppercase());
            let last_base = format!("{prefix}_PORT_{first}_{}", last_proto.to_uppercase());
            out.push(format!("{base}_START={proto}://{ip}:{first}"));
            out.push(format!("{base}_ADDR={ip}"));
            out.push(format!("{base}_PROTO={proto}"));
            out.push(format!("{base}_PORT_START={first}"));
            out.push(format!("{last_base}_END={last_proto}://{ip}:{last}"));
            out.push(format!("{last_base}_PORT_END={last}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (port, proto) in &ports {
        let base = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
        out.push(format!("{base}={proto}://{ip}:{port}"));
        out.push(format!("{base}_ADDR={ip}"));
        out.push(format!("{base}_PORT={port}"));
        out.push(format!("{base}_PROTO={proto}"));
    }
    out.push(format!("{prefix}_NAME=/{parent}/{}", l.alias));
    for e in &l.env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if k == "HOME" || k == "PATH" {
            continue;
        }
        out.push(format!("{prefix}_ENV_{k}={v}"));
    }
    out
}

/// Where the run of ports starting at `i` ends (dockerd's nextContiguous).
fn run_end(ports: &[(u32, String)], i: usize) -> usize {
    let mut value = ports[i].0;
    for (k, p) in ports.iter().enumerate().skip(i + 1) {
        if p.0 > value + 1 {
            return k - 1;
        }
        value += 1;
    }
    ports.len() - 1
}

/// The names links give containers ("/parent/alias"), by the linked
/// container's name, as `docker ps` lists them after its own. Only configs
/// that hold links are parsed.
pub fn names_by_linked(state: &State) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for c in state.containers.values() {
        if !c.config.contains("\"Links\":[") {
            continue;
        }
        let body: ContainerCreateBody = serde_json::from_str(&c.config).unwrap_or_default();
        for l in body.host_config.and_then(|h| h.links).unwrap_or_default() {
            let (name, alias) = parse(&l);
            let linked = state
                .container(&name)
                .map(|r| r.name.clone())
                .unwrap_or(name);
            out.entry(linked)
                .or_default()
                .push(format!("/{}/{alias}", c.name));
        }
    }
    out
}

/// HostConfig.Links as inspect shows them: "/child:/parent/alias".
pub fn shown(links: &[String], parent: &str) -> Vec<String> {
    links
        .iter()
        .map(|l| {
            let (name, alias) = parse(l);
            format!("/{name}:/{parent}/{alias}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(ports: &[&str]) -> Linked {
        Linked {
            alias: "db".into(),
            name: "r18-db".into(),
            hostname: "4d8ee73b6623".into(),
            ip: "172.17.0.2".into(),
            ports: ports.iter().map(|p| p.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "SECRET=x".into(), "FOO=a b".into()],
        }
    }

    #[test]
    fn links_parse_as_the_cli_and_inspect_write_them() {
        assert_eq!(parse("r18-db:db"), ("r18-db".into(), "db".into()));
        assert_eq!(parse("r18-db"), ("r18-db".into(), "r18-db".into()));
        assert_eq!(parse("/r18-db:/linker/db"), ("r18-db".into(), "db".into()));
        assert_eq!(
            shown(&["r18-db:db".into()], "linker"),
            ["/r18-db:/linker/db"]
        );
    }

    #[test]
    fn hosts_and_env_as_the_reference_dockerd_writes_them() {
        let l = db(&["5432/tcp"]);
        assert_eq!(hosts_line(&l), "172.17.0.2\tdb 4d8ee73b6623 r18-db\n");
        let mut same = l.clone();
        same.alias = "r18-db".into();
        assert_eq!(hosts_line(&same), "172.17.0.2\tr18-db 4d8ee73b6623\n");
        assert_eq!(
            env(&l, "linker"),
            [
                "DB_PORT=tcp://172.17.0.2:5432",
                "DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "DB_PORT_5432_TCP_PORT=5432",
                "DB_PORT_5432_TCP_PROTO=tcp",
                "DB_NAME=/linker/db",
                "DB_ENV_SECRET=x",
                "DB_ENV_FOO=a b",
            ]
        );
        // udp 53 sorts before tcp 80; a run of ports gets _START/_END.
        let e = env(&db(&["80/tcp", "53/udp"]), "p");
        assert_eq!(e[0], "DB_PORT=udp://172.17.0.2:53");
        let e = env(&db(&["8000/tcp", "8001/tcp", "8002/tcp"]), "p");
        for v in [
            "DB_PORT_8000_TCP_START=tcp://172.17.0.2:8000",
            "DB_PORT_8000_TCP_END=tcp://172.17.0.2:8002",
            "DB_PORT_8000_TCP_PORT_START=8000",
            "DB_PORT_8000_TCP_PORT_END=8002",
            "DB_PORT_8001_TCP=tcp://172.17.0.2:8001",
        ] {
            assert!(e.contains(&v.to_string()), "{v} in {e:?}");
        }
        let mut d = db(&[]);
        d.alias = "d4.x".into();
        assert_eq!(env(&d, "p")[0], "D4.X_NAME=/p/d4.x");
    }
}
