//! /etc/hostname, /etc/hosts and /etc/resolv.conf of a container, written
//! into its directory and bind-mounted, in dockerd's layout.

use bollard_stubs::models::ContainerCreateBody;

const HOSTS_DEFAULTS: &str = "127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
";

/// The hosts file: the defaults, then --add-host entries, then the
/// container's own address and name.
/// `host_gateway`: what `--add-host name:host-gateway` means (the default
/// bridge's gateway, as dockerd takes it).
pub fn hosts(
    body: &ContainerCreateBody,
    own_ip: Option<&str>,
    host_gateway: Option<&str>,
) -> String {
    let mut out = HOSTS_DEFAULTS.to_string();
    for extra in body
        .host_config
        .as_ref()
        .and_then(|h| h.extra_hosts.clone())
        .unwrap_or_default()
    {
        // "name:ip" (the ip may be IPv6 and hold colons).
        if let Some((name, ip)) = extra.split_once(':') {
            let ip = match (ip, host_gateway) {
                ("host-gateway", Some(gw)) => gw,
                _ => ip,
            };
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if let Some(ip) = own_ip {
        let host = body.hostname.clone().unwrap_or_default();
        // The short name too, for a dotted hostname or a domain.
        match body.domainname.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => out.push_str(&format!("{ip}\t{host}.{d} {host}\n")),
            None => match host.split_once('.') {
                Some((short, _)) => out.push_str(&format!("{ip}\t{host} {short}\n")),
                None => out.push_str(&format!("{ip}\t{host}\n")),
            },
        }
    }
    out
}

/// The host's resolv.conf as a container sees it: loopback nameservers do not
/// work from another namespace and are dropped (with none left, dockerd's
/// defaults); `nameserver` (a network's DNS server) replaces them all; --dns,
/// --dns-search and --dns-option replace their kinds.
pub fn resolv_conf(host: &str, body: &ContainerCreateBody, nameserver: Option<&str>) -> String {
    let h = body.host_config.clone().unwrap_or_default();
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ns) = words.next() {
                    let loopback = ns.starts_with("127.") || ns == "::1";
                    if !loopback {
                        servers.push(ns.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            Some(w) if !w.starts_with('#') && !w.starts_with(';') => other.push(line.to_string()),
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let user_dns = h.dns.clone().filter(|d| !d.is_empty());
    match (nameserver, user_dns) {
        (Some(ns), _) => {
            servers = vec![ns.to_string()];
            options.retain(|o| !o.starts_with("ndots:"));
            options.insert(0, "ndots:0".into());
        }
        (None, Some(d)) => servers = d,
        (None, None) => {}
    }
    if let Some(s) = h.dns_search.clone().filter(|d| !d.is_empty()) {
        search = s.into_iter().filter(|s| s != ".").collect();
    }
    if let Some(o) = h.dns_options.clone().filter(|d| !d.is_empty()) {
        options = o;
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    for l in other {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The nameservers a container's DNS server forwards other names to: its
/// --dns, else the host's (loopback ones cannot be reached from a bridge).
pub fn upstreams(host: &str, dns: Option<&[String]>) -> Vec<String> {
    if let Some(d) = dns.filter(|d| !d.is_empty()) {
        return d.to_vec();
    }
    host.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty() && !ns.starts_with("127.") && ns != "::1")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::HostConfig;

    #[test]
    fn hosts_as_dockerd_writes_it() {
        let body = ContainerCreateBody {
            hostname: Some("ae1fb832384a".into()),
            host_config: Some(HostConfig {
                extra_hosts: Some(vec!["foo:1.2.3.4".into(), "v6:fe80::1".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let h = hosts(&body, Some("10.77.0.2"), None);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost"));
        assert!(
            h.ends_with(
                "ff02::2\tip6-allrouters\n1.2.3.4\tfoo\nfe80::1\tv6\n10.77.0.2\tae1fb832384a\n"
            ),
            "{h}"
        );
        assert!(!hosts(&body, None, None).contains("ae1fb832384a"));
        let body = ContainerCreateBody {
            hostname: Some("my.host.example".into()),
            host_config: Some(HostConfig {
                extra_hosts: Some(vec!["gw:host-gateway".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let h = hosts(&body, Some("10.77.0.2"), Some("172.17.0.1"));
        assert!(
            h.ends_with("172.17.0.1\tgw\n10.77.0.2\tmy.host.example my\n"),
            "{h}"
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_and_takes_overrides() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n";
        let body = ContainerCreateBody::default();
        assert_eq!(
            resolv_conf(host, &body, None),
            "nameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &body, None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            resolv_conf(host, &body, Some("172.20.0.1")),
            "nameserver 172.20.0.1\nsearch example.com\noptions ndots:0 edns0\n"
        );
        let body = ContainerCreateBody {
            host_config: Some(HostConfig {
                dns: Some(vec!["9.9.9.9".into()]),
                dns_search: Some(vec!["a.b".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(host, &body, None),
            "nameserver 9.9.9.9\nsearch a.b\noptions edns0\n"
        );
        assert_eq!(upstreams(host, None), vec!["10.0.0.2".to_string()]);
    }
}
