//! Firewall rules through iptables (the nf_tables backend where the host uses
//! it, as dockerd does): chains of our own, named after this daemon's
//! instance, jumped to from the built-in chains. Every change writes the
//! whole content of our chains from the engine's state with one
//! `iptables-restore --noflush` (atomic per table, idempotent: a restart or a
//! crash never duplicates a rule). dockerd's chains and docker0 are never
//! touched; our jump into FORWARD sits first, so a FORWARD policy of DROP
//! (dockerd sets one) does not stop our bridges' traffic.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};

/// A bridge network's rules.
#[derive(Debug, Clone)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: String,
    pub internal: bool,
    /// Its containers reach each other (dockerd's enable_icc).
    pub icc: bool,
    /// Its traffic out is masqueraded (enable_ip_masquerade).
    pub masquerade: bool,
    /// It has IPv6: ip6tables isolates it as iptables does for v4.
    pub ipv6: bool,
}

/// A published port: `host_ip:host_port` to `container_ip:container_port`.
#[derive(Debug, Clone)]
pub struct PortRule {
    pub bridge: String,
    pub container_ip: String,
    pub proto: String,
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone)]
pub struct Firewall {
    /// "BERTH", or "BERTH-<tag>" for a daemon on another data root.
    prefix: String,
}

impl Firewall {
    pub fn new(prefix: &str) -> Firewall {
        Firewall {
            prefix: prefix.to_string(),
        }
    }

    fn chain(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Our chains, by table.
    fn chains(&self) -> [(&'static str, Vec<String>); 2] {
        [
            (
                "filter",
                ["FORWARD", "ISOLATION-1", "ISOLATION-2"]
                    .iter()
                    .map(|c| self.chain(c))
                    .collect(),
            ),
            (
                "nat",
                ["DNAT", "POSTROUTING"]
                    .iter()
                    .map(|c| self.chain(c))
                    .collect(),
            ),
        ]
    }

    /// The names of our chains, all tables.
    pub fn chain_names(&self) -> Vec<String> {
        self.chains().into_iter().flat_map(|(_, c)| c).collect()
    }

    /// The jumps from the built-in chains: (table, chain, rule).
    fn jumps(&self) -> Vec<(&'static str, &'static str, Vec<String>)> {
        let j = |c: &str| vec!["-j".to_string(), self.chain(c)];
        let local = |c: &str| {
            let mut v: Vec<String> = ["-m", "addrtype", "--dst-type", "LOCAL"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.extend(j(c));
            v
        };
        vec![
            ("filter", "FORWARD", j("FORWARD")),
            ("nat", "PREROUTING", local("DNAT")),
            ("nat", "OUTPUT", local("DNAT")),
            ("nat", "POSTROUTING", j("POSTROUTING")),
        ]
    }

    /// The input of `iptables-restore --noflush` that makes our chains hold
    /// exactly these rules.
    pub fn render(&self, bridges: &[BridgeRules], ports: &[PortRule]) -> String {
        let (dnat, post) = (self.chain("DNAT"), self.chain("POSTROUTING"));
        let f = self.render_filter(bridges);
        let mut n = format!("*nat\n:{dnat} - [0:0]\n:{post} - [0:0]\n");
        for b in bridges.iter().filter(|b| !b.internal) {
            let br = &b.bridge;
            if b.masquerade {
                n += &format!("-A {post} -s {} ! -o {br} -j MASQUERADE\n", b.subnet);
            }
            // Published ports reached from the host's loopback (route_localnet).
            n += &format!("-A {post} -s 127.0.0.0/8 -o {br} -j MASQUERADE\n");
        }
        for p in ports {
            if bridges.iter().any(|b| b.bridge == p.bridge && b.internal) {
                continue;
            }
            n += &self.port_lines(p);
        }
        n += "COMMIT\n";
        f + &n
    }

    /// The input of `ip6tables-restore --noflush` for the bridges with IPv6:
    /// isolation between our bridges, `--internal` and `enable_icc=false`
    /// drops, and nothing else: the host's own FORWARD policy decides the
    /// rest, as with dockerd 20.10 (which writes no v6 rules unless
    /// `ip6tables` is on). No nat: published v6 ports are the proxy's.
    pub fn render6(&self, bridges: &[BridgeRules]) -> String {
        let (fwd, iso1, iso2, mut f) = self.filter_head();
        for b in bridges.iter().filter(|b| b.ipv6) {
            let br = &b.bridge;
            f += &format!("-A {iso1} -i {br} ! -o {br} -j {iso2}\n-A {iso2} -o {br} -j DROP\n");
            if b.internal {
                f += &format!(
                    "-A {fwd} -i {br} ! -o {br} -j DROP\n-A {fwd} -o {br} ! -i {br} -j DROP\n"
                );
            } else if !b.icc {
                f += &format!("-A {fwd} -i {br} -o {br} -j DROP\n");
            }
        }
        f += &format!("-A {iso1} -j RETURN\n-A {iso2} -j RETURN\nCOMMIT\n");
        f
    }

    /// Our filter chains' names (FORWARD, ISOLATION-1, ISOLATION-2) and the
    /// start of a filter table's restore input: the chains declared (so
    /// flushed) and FORWARD going through the isolation first.
    fn filter_head(&self) -> (String, String, String, String) {
        let (fwd, iso1, iso2) = (
            self.chain("FORWARD"),
            self.chain("ISOLATION-1"),
            self.chain("ISOLATION-2"),
        );
        let head = format!(
            "*filter\n:{fwd} - [0:0]\n:{iso1} - [0:0]\n:{iso2} - [0:0]\n-A {fwd} -j {iso1}\n"
        );
        (fwd, iso1, iso2, head)
    }

    /// Whether any bridge has IPv6: then ip6tables must work; otherwise its
    /// (empty) chains are kept best-effort, so a host without ip6tables or
    /// IPv6 runs v4 networks as before.
    fn needs_v6(bridges: &[BridgeRules]) -> bool {
        bridges.iter().any(|b| b.ipv6)
    }

    fn render_filter(&self, bridges: &[BridgeRules]) -> String {
        let (fwd, iso1, iso2, mut f) = self.filter_head();
        for b in bridges {
            let br = &b.bridge;
            f += &format!("-A {iso1} -i {br} ! -o {br} -j {iso2}\n-A {iso2} -o {br} -j DROP\n");
            if b.internal {
                f += &format!("-A {fwd} -i {br} ! -o {br} -j DROP\n-A {fwd} -o {br} ! -i {br} -j DROP\n-A {fwd} -i {br} -o {br} -j ACCEPT\n");
                continue;
            }
            // Connections our DNAT rules sent to the bridge (published
            // ports) are let in by one rule: a port's start or end then
            // changes the nat table alone.
            if !b.icc {
                f += &format!("-A {fwd} -i {br} -o {br} -j DROP\n");
            }
            f += &format!(
                "-A {fwd} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A {fwd} -o {br} -m conntrack --ctstate DNAT -j ACCEPT\n-A {fwd} -i {br} -j ACCEPT\n-A {fwd} -o {br} -j DROP\n"
            );
        }
        f += &format!("-A {iso1} -j RETURN\n-A {iso2} -j RETURN\nCOMMIT\n");
        f
    }

    /// The nat rules of one published port: DNAT, and hairpin masquerade (a
    /// container reaching its own published port).
    fn port_lines(&self, p: &PortRule) -> String {
        let (dnat, post) = (self.chain("DNAT"), self.chain("POSTROUTING"));
        let dst = if p.host_ip.is_empty() || p.host_ip == "0.0.0.0" {
            String::new()
        } else {
            format!("-d {}/32 ", p.host_ip)
        };
        format!(
            "-A {dnat} {dst}-p {proto} -m {proto} --dport {} -j DNAT --to-destination {}:{}\n-A {post} -s {ip}/32 -d {ip}/32 -p {proto} -m {proto} --dport {} -j MASQUERADE\n",
            p.host_port,
            p.container_ip,
            p.container_port,
            p.container_port,
            ip = p.container_ip,
            proto = p.proto
        )
    }

    /// Appends the rules of newly published ports, leaving every other rule
    /// as it is. A start pays for this alone: rewriting chains that hold
    /// rules makes the kernel wait for a grace period (about 25 ms here),
    /// only adding does not (about 2 ms).
    pub fn add_ports(&self, ports: &[PortRule]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut n = "*nat\n".to_string();
        for p in ports {
            n += &self.port_lines(p);
        }
        n += "COMMIT\n";
        restore(IPTABLES, &n)
    }

    /// Writes our chains' rules (v4, and v6's filter rules).
    pub fn apply(&self, bridges: &[BridgeRules], ports: &[PortRule]) -> Result<()> {
        restore(IPTABLES, &self.render(bridges, ports))?;
        match restore(IP6TABLES, &self.render6(bridges)) {
            Err(e) if !Self::needs_v6(bridges) => {
                tracing::debug!(error = %e, "ip6tables (no IPv6 network needs it)");
                Ok(())
            }
            r => r,
        }
    }

    /// Our chains (empty) and the jumps to them; IP forwarding on.
    pub fn init(&self, bridges: &[BridgeRules], ports: &[PortRule]) -> Result<()> {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("enabling IP forwarding")?;
        self.apply(bridges, ports)?;
        for (tool, table, chain, rule) in self.all_jumps() {
            let mut check = vec!["-w", "-t", table, "-C", chain];
            check.extend(rule.iter().map(String::as_str));
            if iptables(tool, &check).is_ok() {
                continue;
            }
            let mut insert = vec!["-w", "-t", table, "-I", chain, "1"];
            insert.extend(rule.iter().map(String::as_str));
            match iptables(tool, &insert) {
                Err(e) if tool == IP6TABLES && !Self::needs_v6(bridges) => {
                    tracing::debug!(error = %e, "ip6tables jump (no IPv6 network needs it)")
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// Every jump, with the tool that writes it: v4's, and ip6tables'
    /// FORWARD to our v6 filter chain.
    fn all_jumps(&self) -> Vec<(&'static str, &'static str, &'static str, Vec<String>)> {
        let mut out: Vec<_> = self
            .jumps()
            .into_iter()
            .map(|(t, c, r)| (IPTABLES, t, c, r))
            .collect();
        out.push((
            IP6TABLES,
            "filter",
            "FORWARD",
            vec!["-j".to_string(), self.chain("FORWARD")],
        ));
        out
    }

    /// What is wrong with our chains, if anything, when they should hold
    /// what `render(bridges, ports)` gives: each must exist and hold as many
    /// rules as that (a flush shows, and so do rules someone added), and the
    /// built-in chains must jump to them. Reads only: `iptables -S` of each
    /// table.
    pub fn damage(&self, bridges: &[BridgeRules], ports: &[PortRule]) -> Result<Option<String>> {
        let want = self.render(bridges, ports);
        let jumps = self.jumps();
        for (table, chains) in self.chains() {
            let have = list_rules(table)?;
            if let Some(why) = chains_damage(&want, &have, &chains, table, &jumps) {
                return Ok(Some(why));
            }
        }
        Ok(None)
    }

    /// Removes the jumps and our chains (network-cleanup).
    pub fn remove_all(&self) {
        for (tool, table, chain, rule) in self.all_jumps() {
            let mut del = vec!["-w", "-t", table, "-D", chain];
            del.extend(rule.iter().map(String::as_str));
            while iptables(tool, &del).is_ok() {}
        }
        let v6 = ("filter", self.chains()[0].1.clone());
        let tables = self
            .chains()
            .into_iter()
            .map(|t| (IPTABLES, t))
            .chain(std::iter::once((IP6TABLES, v6)));
        for (tool, (table, chains)) in tables {
            for c in &chains {
                let _ = iptables(tool, &["-w", "-t", table, "-F", c]);
            }
            for c in &chains {
                let _ = iptables(tool, &["-w", "-t", table, "-X", c]);
            }
        }
    }
}

/// What `damage` finds wrong in one table, from the rules we would write
/// (`want`, as `render` gives them) and the table's rules (`have`, as
/// `iptables -S` lists them).
fn chains_damage(
    want: &str,
    have: &str,
    chains: &[String],
    table: &str,
    jumps: &[(&'static str, &'static str, Vec<String>)],
) -> Option<String> {
    let count = |text: &str, chain: &str| {
        let head = format!("-A {chain} ");
        text.lines().filter(|l| l.starts_with(&head)).count()
    };
    for chain in chains {
        let declared = format!("-N {chain}");
        if !have.lines().any(|l| l.trim_end() == declared) {
            return Some(format!("chain {chain} was gone"));
        }
        let (w, h) = (count(want, chain), count(have, chain));
        if w != h {
            return Some(format!("chain {chain} held {h} rules instead of {w}"));
        }
    }
    for (t, builtin, rule) in jumps.iter().filter(|(t, _, _)| *t == table) {
        let (head, tail) = (format!("-A {builtin} "), format!(" {}", rule.join(" ")));
        if !have
            .lines()
            .any(|l| l.starts_with(&head) && l.trim_end().ends_with(&tail))
        {
            let target = rule.last().map(String::as_str).unwrap_or_default();
            return Some(format!("the jump from {t} {builtin} to {target} was gone"));
        }
    }
    None
}

/// `iptables -S` of `table`: its chains (`-N`) and rules (`-A`).
fn list_rules(table: &str) -> Result<String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", table, "-S"])
        .stdin(Stdio::null())
        .output()
        .context("running iptables")?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "iptables -t {table} -S: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const IPTABLES: &str = "iptables";
const IP6TABLES: &str = "ip6tables";

fn iptables(tool: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context(format_args!("running {tool}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `<tool>-restore --noflush` of `input` (tool: iptables or ip6tables).
fn restore(tool: &str, input: &str) -> Result<()> {
    let bin = format!("{tool}-restore");
    let mut child = Command::new(&bin)
        .args(["--noflush", "-w"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(format_args!("running {bin}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .context(format_args!("writing to {bin}"))?;
    }
    let out = child
        .wait_with_output()
        .context(format_args!("waiting for {bin}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{bin}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_for_bridges_and_ports() {
        let fw = Firewall::new("BERTH-ab12cd");
        let bridges = vec![
            BridgeRules {
                bridge: "berth0".into(),
                subnet: "172.17.0.0/16".into(),
                internal: false,
                icc: true,
                masquerade: true,
                ipv6: false,
            },
            BridgeRules {
                bridge: "br-1".into(),
                subnet: "10.1.0.0/24".into(),
                internal: true,
                icc: true,
                masquerade: true,
                ipv6: true,
            },
        ];
        let ports = vec![PortRule {
            bridge: "berth0".into(),
            container_ip: "172.17.0.2".into(),
            proto: "tcp".into(),
            container_port: 80,
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
        }];
        let r = fw.render(&bridges, &ports);
        assert!(r.starts_with("*filter\n:BERTH-ab12cd-FORWARD - [0:0]\n"));
        assert!(r.contains("-A BERTH-ab12cd-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n"));
        assert!(
            r.contains("-A BERTH-ab12cd-POSTROUTING -s 172.17.0.0/16 ! -o berth0 -j MASQUERADE\n")
        );
        assert!(
            !r.contains("-s 10.1.0.0/24"),
            "an internal network has no way out"
        );
        assert!(r.contains("-A BERTH-ab12cd-FORWARD -i br-1 ! -o br-1 -j DROP\n"));
        assert!(r.contains("-A BERTH-ab12cd-ISOLATION-2 -o berth0 -j DROP\n"));
        assert_eq!(r.matches("COMMIT\n").count(), 2);
        // Nothing in the built-in chains: those get only the jumps.
        assert!(!r.contains("-A FORWARD") && !r.contains("-A POSTROUTING "));
        // ip6tables: the filter rules of the v6 bridge alone, no nat.
        let r6 = fw.render6(&bridges);
        assert!(r6.contains("-A BERTH-ab12cd-FORWARD -i br-1 ! -o br-1 -j DROP\n"));
        assert!(r6.contains("-A BERTH-ab12cd-ISOLATION-2 -o br-1 -j DROP\n"));
        assert!(!r6.contains("berth0") && !r6.contains("*nat"), "{r6}");
        assert!(
            !r6.contains("ACCEPT"),
            "the host's policy decides the rest: {r6}"
        );
        assert_eq!(r6.matches("COMMIT\n").count(), 1);
    }

    #[test]
    fn damage_is_read_from_the_listed_rules() {
        let fw = Firewall::new("BERTH");
        let bridges = vec![BridgeRules {
            bridge: "berth0".into(),
            subnet: "172.17.0.0/16".into(),
            internal: false,
            icc: true,
            masquerade: true,
            ipv6: false,
        }];
        let want = fw.render(&bridges, &[]);
        let jumps = fw.jumps();
        let [(_, filter), (_, nat)] = fw.chains();
        // As `iptables -S` lists what `render` wrote, with the jumps and
        // someone else's chains around it.
        let mut listed = "-P FORWARD DROP\n-N BERTH-FORWARD\n-N BERTH-ISOLATION-1\n-N BERTH-ISOLATION-2\n-N BERTH-ab12cd-FORWARD\n-A FORWARD -j BERTH-FORWARD\n-A FORWARD -j DOCKER-USER\n-A BERTH-ab12cd-FORWARD -j ACCEPT\n".to_string();
        for l in want
            .lines()
            .filter(|l| l.starts_with("-A BERTH-FORWARD ") || l.starts_with("-A BERTH-ISOLATION-"))
        {
            listed += &format!("{l}\n");
        }
        assert_eq!(
            chains_damage(&want, &listed, &filter, "filter", &jumps),
            None
        );
        let flushed: String = listed
            .lines()
            .filter(|l| !l.starts_with("-A BERTH-FORWARD "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            chains_damage(&want, &flushed, &filter, "filter", &jumps).as_deref(),
            Some("chain BERTH-FORWARD held 0 rules instead of 5")
        );
        let unjumped = listed.replace("-A FORWARD -j BERTH-FORWARD\n", "");
        assert_eq!(
            chains_damage(&want, &unjumped, &filter, "filter", &jumps).as_deref(),
            Some("the jump from filter FORWARD to BERTH-FORWARD was gone")
        );
        assert_eq!(
            chains_damage(&want, "-P PREROUTING ACCEPT\n", &nat, "nat", &jumps).as_deref(),
            Some("chain BERTH-DNAT was gone")
        );
        let nat_listed = "-N BERTH-DNAT\n-N BERTH-POSTROUTING\n-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-DNAT\n-A OUTPUT -m addrtype --dst-type LOCAL -j BERTH-DNAT\n-A POSTROUTING -j BERTH-POSTROUTING\n-A BERTH-POSTROUTING -s 172.17.0.0/16 ! -o berth0 -j MASQUERADE\n-A BERTH-POSTROUTING -s 127.0.0.0/8 -o berth0 -j MASQUERADE\n";
        assert_eq!(chains_damage(&want, nat_listed, &nat, "nat", &jumps), None);
    }
}
