//! Dockerfile instructions applied to an image config: `docker import --change`
//! and (later) `docker commit --change`. dockerd accepts the same ten
//! instructions for both; anything else is refused with its wording.

use std::collections::HashMap;

use bollard_stubs::models::ContainerConfig;

use crate::error::{Error, Result};

/// Applies each change in order to `config`.
pub fn apply(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    // ENTRYPOINT clears Cmd unless a CMD came earlier in the same set, as in a build.
    let mut cmd_set = false;
    // dockerd joins the changes into one Dockerfile: a value may hold several
    // lines (bollard sends them newline-joined in one parameter).
    for change in changes.iter().flat_map(|c| c.lines()) {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (word, rest) = match change.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (change, ""),
        };
        let instruction = word.to_ascii_lowercase();
        let known = [
            "cmd",
            "entrypoint",
            "env",
            "expose",
            "label",
            "onbuild",
            "stopsignal",
            "user",
            "volume",
            "workdir",
        ];
        if !known.contains(&instruction.as_str()) {
            return Err(Error::invalid(format!(
                "{instruction} is not a valid change command"
            )));
        }
        if rest.is_empty() {
            return Err(Error::invalid(format!(
                "{} requires at least one argument",
                instruction.to_ascii_uppercase()
            )));
        }
        match instruction.as_str() {
            "cmd" => {
                config.cmd = Some(command(rest));
                cmd_set = true;
            }
            "entrypoint" => {
                config.entrypoint = Some(command(rest));
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "env" => {
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest, "ENV")? {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(existing) => *existing = entry,
                        None => env.push(entry),
                    }
                }
            }
            "label" => {
                let labels = config.labels.get_or_insert_with(HashMap::new);
                for (k, v) in key_values(rest, "LABEL")? {
                    labels.insert(k, v);
                }
            }
            "expose" => {
                let ports = config.exposed_ports.get_or_insert_with(Vec::new);
                for p in words(rest)? {
                    for port in expose(&p)? {
                        if !ports.contains(&port) {
                            ports.push(port);
                        }
                    }
                }
            }
            "onbuild" => {
                let (w, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let upper = w.to_ascii_uppercase();
                if matches!(upper.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(Error::invalid(format!(
                        "{upper} isn't allowed as an ONBUILD trigger"
                    )));
                }
                config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(format!("{upper} {}", r.trim()).trim_end().to_string());
            }
            "stopsignal" => {
                signal_number(rest)?;
                config.stop_signal = Some(rest.to_string());
            }
            "user" => config.user = Some(rest.to_string()),
            "workdir" => {
                let base = config.working_dir.clone().unwrap_or_default();
                config.working_dir = Some(workdir(&base, rest));
            }
            "volume" => {
                let list = match json_array(rest) {
                    Some(v) => v,
                    None => words(rest)?,
                };
                let volumes = config.volumes.get_or_insert_with(Vec::new);
                for v in list {
                    if v.is_empty() {
                        return Err(Error::invalid(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    if !volumes.contains(&v) {
                        volumes.push(v);
                    }
                }
            }
            _ => unreachable!("checked against the list above"),
        }
    }
    Ok(())
}

/// Exec form when the argument is a JSON array of strings, else shell form.
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Splits on unquoted whitespace; quotes group and are removed, `\` escapes.
fn words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err(Error::invalid(format!("unmatched quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `k=v k2="v 2"`, or the legacy single pair `k v w` (value is the rest).
fn key_values(rest: &str, instruction: &str) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::invalid(format!("{instruction} must have two arguments")))?;
        let v = words(v.trim())?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::invalid(format!(
                "{instruction} names can not be blank: {w:?}"
            ))),
        })
        .collect()
}

/// "80", "80/udp", "8000-8002/tcp" -> "80/tcp", ...
fn expose(spec: &str) -> Result<Vec<String>> {
    let bad = || Error::invalid(format!("Invalid containerPort: {spec}"));
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::invalid(format!("Invalid proto: {proto}")));
    }
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// WORKDIR is relative to the previous one; the result is a clean absolute path.
fn workdir(base: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", if base.is_empty() { "" } else { base })
    };
    crate::paths::clean_absolute(&joined)
}

/// A signal by name ("SIGTERM", "TERM", "term") or number, as dockerd accepts it.
pub fn signal_number(s: &str) -> Result<i32> {
    let bad = || Error::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let off: i32 = match rt {
            "" => 0,
            r => r
                .strip_prefix('+')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?,
        };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    if let Some(rt) = name.strip_prefix("RTMAX") {
        let off: i32 = match rt {
            "" => 0,
            r => r
                .strip_prefix('-')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?,
        };
        let n = libc::SIGRTMAX() - off;
        return if n >= libc::SIGRTMIN() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<ContainerConfig> {
        let mut c = ContainerConfig::default();
        apply(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = applied(&[r#"CMD ["sh", "-c", "echo hi"]"#]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        let c = applied(&["cmd echo hi"]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        // ENTRYPOINT alone clears Cmd; after a CMD it keeps it.
        let c = applied(&["CMD x", r#"ENTRYPOINT ["/e"]"#]).unwrap();
        assert_eq!(c.entrypoint.unwrap(), ["/e"]);
        assert!(c.cmd.is_some());
        let mut base = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        apply(&mut base, &["ENTRYPOINT /e".into()]).unwrap();
        assert_eq!(base.cmd, None);
    }

    #[test]
    fn env_label_expose_volume_workdir() {
        let c = applied(&[
            "ENV A=1 B=\"two words\"",
            "ENV A 3 4",
            "LABEL x=y \"k 2\"=v",
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME [\"/data\"]",
            "VOLUME /a /b",
            "WORKDIR /srv",
            "WORKDIR app/../web",
            "USER nobody",
            "STOPSIGNAL SIGINT",
            "ONBUILD run echo",
        ])
        .unwrap();
        assert_eq!(c.env.unwrap(), ["A=3 4", "B=two words"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["x"], "y");
        assert_eq!(labels["k 2"], "v");
        assert_eq!(
            c.exposed_ports.unwrap(),
            ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]
        );
        assert_eq!(c.volumes.unwrap(), ["/data", "/a", "/b"]);
        assert_eq!(c.working_dir.unwrap(), "/srv/web");
        assert_eq!(c.user.unwrap(), "nobody");
        assert_eq!(c.stop_signal.unwrap(), "SIGINT");
        assert_eq!(c.on_build.unwrap(), ["RUN echo"]);
    }

    #[test]
    fn one_value_may_hold_several_lines() {
        let c = applied(&["CMD [\"sh\"]\nLABEL a=b"]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["sh"]);
        assert_eq!(c.labels.unwrap()["a"], "b");
    }

    #[test]
    fn bad_changes_are_refused_with_dockerds_words() {
        let e = applied(&["FOO bar"]).unwrap_err();
        assert_eq!(e.message(), "foo is not a valid change command");
        assert!(applied(&["RUN ls"]).is_err());
        assert!(applied(&["EXPOSE 99999"]).is_err());
        assert!(applied(&["STOPSIGNAL SIGNOPE"]).is_err());
        assert!(applied(&["CMD"]).is_err());
        assert!(applied(&["ENV A=\"x"]).is_err());
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("TERM").unwrap(), 15);
        assert_eq!(signal_number("sigkill").unwrap(), 9);
        assert_eq!(signal_number("10").unwrap(), 10);
        assert_eq!(signal_number("SIGRTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(signal_number("0").is_err());
        assert!(signal_number("SIGFOO").is_err());
    }
}
