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

/// The hosts file: the defaults, then --add-host entries, then `links`
/// (legacy links' lines), then the container's own addresses (v4, then v6
/// on an IPv6 network) and name.
/// `host_gateway`: what `--add-host name:host-gateway` means (the default
/// bridge's gateway, as dockerd takes it).
pub fn hosts(
    body: &ContainerCreateBody,
    links: &str,
    own_ips: &[String],
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
    out.push_str(links);
    for ip in own_ips {
        out.push_str(&own_entry(body, ip));
    }
    out
}

/// The hosts line of the container's own address: its hostname, and the
/// short name too for a dotted hostname or a domain.
pub fn own_entry(body: &ContainerCreateBody, ip: &str) -> String {
    let host = body.hostname.clone().unwrap_or_default();
    match body.domainname.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => format!("{ip}\t{host}.{d} {host}\n"),
        None => match host.split_once('.') {
            Some((short, _)) => format!("{ip}\t{host} {short}\n"),
            None => format!("{ip}\t{host}\n"),
        },
    }
}

/// The hosts file after a disconnect: dockerd drops every line of the
/// container's own name (the other networks' addresses too), keeping the
/// defaults and --add-host lines.
pub fn without_own_entries(hosts: &str, body: &ContainerCreateBody) -> String {
    let own = own_entry(body, "x");
    let names = own.split('\t').nth(1).unwrap_or_default().trim_end();
    hosts
        .lines()
        .filter(|l| l.split_once('\t').map(|(_, n)| n) != Some(names))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The host's resolv.conf as a container sees it, as dockerd writes it.
/// With no overrides and no embedded server: the host's file less its
/// loopback nameservers (they do not work from another namespace; with none
/// left, dockerd's defaults). Otherwise built anew, search first:
/// `nameserver` (127.0.0.11 on a user-defined network, which then forwards to
/// --dns) or --dns or the host's; --dns-search and --dns-option replace the
/// host's; the embedded server adds `ndots:0` unless an ndots was given.
pub fn resolv_conf(host: &str, body: &ContainerCreateBody, nameserver: Option<&str>) -> String {
    let h = body.host_config.clone().unwrap_or_default();
    let given = |v: Option<Vec<String>>| v.filter(|d| !d.is_empty());
    let (dns, dns_search, dns_options) = (
        given(h.dns.clone()),
        given(h.dns_search.clone()),
        given(h.dns_options.clone()),
    );
    let is_nameserver = |l: &str| l.split_whitespace().next() == Some("nameserver");
    let loopback = |l: &str| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|ns| ns.starts_with("127.") || ns == "::1")
    };
    let host_servers: Vec<String> = host
        .lines()
        .filter(|l| is_nameserver(l) && !loopback(l))
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect();
    if nameserver.is_none() && dns.is_none() && dns_search.is_none() && dns_options.is_none() {
        let mut out: String = host
            .lines()
            .filter(|l| !(is_nameserver(l) && loopback(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        if host_servers.is_empty() {
            for ns in DEFAULT_NAMESERVERS {
                out.push_str(&format!("nameserver {ns}\n"));
            }
        }
        return out;
    }
    let host_words = |keys: &[&str]| -> Vec<String> {
        let mut found = Vec::new();
        for l in host.lines() {
            let mut words = l.split_whitespace();
            if words.next().is_some_and(|w| keys.contains(&w)) {
                found = words.map(String::from).collect();
            }
        }
        found
    };
    let servers: Vec<String> = match (nameserver, dns) {
        (Some(ns), _) => vec![ns.to_string()],
        (None, Some(d)) => d,
        (None, None) if host_servers.is_empty() => {
            DEFAULT_NAMESERVERS.iter().map(|s| s.to_string()).collect()
        }
        (None, None) => host_servers,
    };
    let search: Vec<String> = match dns_search {
        Some(s) => s.into_iter().filter(|s| s != ".").collect(),
        None => host_words(&["search", "domain"]),
    };
    let mut options: Vec<String> = dns_options.unwrap_or_else(|| {
        host.lines()
            .filter(|l| l.split_whitespace().next() == Some("options"))
            .flat_map(|l| l.split_whitespace().skip(1).map(String::from))
            .collect()
    });
    if nameserver.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The nameservers a container's DNS server forwards other names to: its
/// --dns, else the host's. Loopback ones are kept: the server forwards from
/// the daemon's namespace, where the host's 127.0.0.53 answers (as dockerd
/// does since 25.0). With none at all, dockerd's defaults.
pub fn upstreams(host: &str, dns: Option<&[String]>) -> Vec<String> {
    if let Some(d) = dns.filter(|d| !d.is_empty()) {
        return d.to_vec();
    }
    let found: Vec<String> = host
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .collect();
    if found.is_empty() {
        return DEFAULT_NAMESERVERS.iter().map(|s| s.to_string()).collect();
    }
    found
}

/// What dockerd writes when the host has no nameserver a container can use.
const DEFAULT_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The address of the DNS server in every container on a user-defined
/// network (clients hard-code it).
pub const EMBEDDED_DNS: &str = "127.0.0.11";
pub const EMBEDDED_DNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

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
        let h = hosts(&body, "", &["10.77.0.2".into()], None);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost"));
        assert!(
            h.ends_with(
                "ff02::2\tip6-allrouters\n1.2.3.4\tfoo\nfe80::1\tv6\n10.77.0.2\tae1fb832384a\n"
            ),
            "{h}"
        );
        assert!(!hosts(&body, "", &[], None).contains("ae1fb832384a"));
        let body = ContainerCreateBody {
            hostname: Some("my.host.example".into()),
            host_config: Some(HostConfig {
                extra_hosts: Some(vec!["gw:host-gateway".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let h = hosts(
            &body,
            "",
            &["10.77.0.2".into(), "2001:db8::2".into()],
            Some("172.17.0.1"),
        );
        assert!(
            h.ends_with(
                "172.17.0.1\tgw\n10.77.0.2\tmy.host.example my\n2001:db8::2\tmy.host.example my\n"
            ),
            "{h}"
        );
        let connected = format!("{h}{}", own_entry(&body, "10.88.0.3"));
        assert!(connected.ends_with("my\n10.88.0.3\tmy.host.example my\n"));
        assert_eq!(
            without_own_entries(&connected, &body),
            h.replace("10.77.0.2\tmy.host.example my\n", "")
                .replace("2001:db8::2\tmy.host.example my\n", "")
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_and_takes_overrides() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n";
        let body = ContainerCreateBody::default();
        assert_eq!(
            resolv_conf(host, &body, None),
            "# comment\nnameserver 10.0.0.2\nsearch example.com\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &body, None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        // As the reference dockerd writes them (search first, ndots:0 last).
        assert_eq!(
            resolv_conf(host, &body, Some("127.0.0.11")),
            "search example.com\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
        let body = ContainerCreateBody {
            host_config: Some(HostConfig {
                dns: Some(vec!["1.2.3.4".into()]),
                dns_search: Some(vec!["example.com".into()]),
                dns_options: Some(vec!["timeout:2".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf("nameserver 10.255.255.53\n", &body, None),
            "search example.com\nnameserver 1.2.3.4\noptions timeout:2\n"
        );
        assert_eq!(
            resolv_conf("nameserver 10.255.255.53\n", &body, Some("127.0.0.11")),
            "search example.com\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n"
        );
        let body = ContainerCreateBody {
            host_config: Some(HostConfig {
                dns_search: Some(vec![".".into()]),
                dns_options: Some(vec!["ndots:5".into(), "attempts:3".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(host, &body, Some("127.0.0.11")),
            "nameserver 127.0.0.11\noptions ndots:5 attempts:3\n"
        );
        assert_eq!(upstreams(host, None), ["127.0.0.53", "10.0.0.2"]);
        assert_eq!(upstreams("", Some(&[])), ["8.8.8.8", "8.8.4.4"]);
        assert_eq!(upstreams(host, Some(&["1.1.1.1".into()])), ["1.1.1.1"]);
    }
}
