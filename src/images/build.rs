//! What each classic-builder step makes of the image config, and the
//! history lines (`created_by`) dockerd 20.10 writes for them. Pure: the
//! build task (actors/builder) runs the steps.

use bollard_stubs::models::{ContainerConfig, HealthConfig};

use crate::builder::dockerfile::{CommandLine, Healthcheck, Instruction};

/// EXPOSE's words as ExposedPorts keys: `80` is `80/tcp`, a range
/// `80-82/udp` each of its ports; dockerd's words for a bad one.
pub fn exposed_port_keys(ports: &[String]) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for p in ports {
        let (range, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let proto = proto.to_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("Invalid proto: {proto}"));
        }
        let bad = || format!("Invalid containerPort: {range}");
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (a, b),
            None => (range, range),
        };
        let first: u16 = first.parse().map_err(|_| bad())?;
        let last: u16 = last.parse().map_err(|_| bad())?;
        if last < first {
            return Err(bad());
        }
        keys.extend((first..=last).map(|n| format!("{n}/{proto}")));
    }
    Ok(keys)
}

/// COPY/ADD `--chown`: user and group by number or by name in the image's
/// /etc/passwd and /etc/group, a lone user standing for the group too, as
/// dockerd's parseChownFlag; its words when one is missing.
pub fn chown_ids(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, grp) = match parts.as_slice() {
        [u] => (*u, *u),
        [u, g] => (*u, *g),
        _ => return Err(format!("invalid chown string format: {spec}")),
    };
    let lookup = |name: &str, file: &str| -> Option<u32> {
        if let Ok(n) = name.parse::<u32>() {
            return Some(n);
        }
        file.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name))
            .and_then(|f| f.get(2).and_then(|id| id.parse().ok()))
    };
    let wrap = |e: String| format!("unable to convert uid/gid chown string to host mapping: {e}");
    let uid = lookup(user, passwd).ok_or_else(|| {
        wrap(format!(
            "can't find uid for user {user}: no such user: {user}"
        ))
    })?;
    let gid = lookup(grp, group).ok_or_else(|| {
        wrap(format!(
            "can't find gid for group {grp}: no such group: {grp}"
        ))
    })?;
    Ok((uid, gid))
}

/// The shell a build starts with (SHELL changes it).
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// The command of a RUN, CMD or ENTRYPOINT: the exec form as it is, the
/// shell form after the current SHELL.
pub fn command(cmd: &CommandLine, shell: &[String]) -> Vec<String> {
    match cmd {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(text) if text.is_empty() => shell.to_vec(),
        CommandLine::Shell(text) => shell.iter().cloned().chain([text.clone()]).collect(),
    }
}

/// A metadata step's container command as dockerd records it
/// (`shell + ["#(nop) ", text]`; its history shows the two joined by a
/// space, hence `#(nop)  ENV a=b`).
pub fn nop_cmd(shell: &[String], text: &str) -> Vec<String> {
    shell
        .iter()
        .cloned()
        .chain(["#(nop) ".to_string(), text.to_string()])
        .collect()
}

/// COPY, ADD and WORKDIR record one word after the shell
/// (`#(nop) WORKDIR /x`).
pub fn nop_one(shell: &[String], text: &str) -> Vec<String> {
    shell
        .iter()
        .cloned()
        .chain([format!("#(nop) {text}")])
        .collect()
}

/// Go's `%q` of a string slice: `["sh" "-c" "x"]`.
pub fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| serde_json::Value::from(s.as_str()).to_string())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Applies a metadata instruction (already expanded) to the config and
/// returns the text dockerd commits it with; `None` for the steps that
/// are not metadata (RUN, COPY, ADD). SHELL changes `shell`.
pub fn apply_metadata(
    config: &mut ContainerConfig,
    shell: &mut Vec<String>,
    inst: &Instruction,
) -> Option<String> {
    let text = match inst {
        Instruction::Env(kvs) => {
            let mut env = config.env.take().unwrap_or_default();
            let mut text = "ENV".to_string();
            for kv in kvs {
                let entry = format!("{}={}", kv.key, kv.value);
                text.push(' ');
                text.push_str(&entry);
                match env
                    .iter_mut()
                    .find(|e| e.split('=').next() == Some(kv.key.as_str()))
                {
                    Some(e) => *e = entry,
                    None => env.push(entry),
                }
            }
            config.env = Some(env);
            text
        }
        Instruction::Label(kvs) => {
            let labels = config.labels.get_or_insert_with(Default::default);
            let mut text = "LABEL".to_string();
            for kv in kvs {
                text.push_str(&format!(" {}={}", kv.key, kv.value));
                labels.insert(kv.key.clone(), kv.value.clone());
            }
            text
        }
        Instruction::Cmd(cmd) => {
            let cmd = command(cmd, shell);
            let text = format!("CMD {}", go_quoted_list(&cmd));
            config.cmd = Some(cmd);
            text
        }
        Instruction::Entrypoint(ep) => {
            let ep = match ep {
                CommandLine::Shell(t) if t.is_empty() => Vec::new(),
                other => command(other, shell),
            };
            let text = format!("ENTRYPOINT {}", go_quoted_list(&ep));
            // dockerd: a new ENTRYPOINT resets the inherited CMD.
            config.cmd = None;
            config.entrypoint = (!ep.is_empty()).then_some(ep);
            text
        }
        Instruction::Expose(ports) => {
            let exposed = config.exposed_ports.get_or_insert_with(Vec::new);
            for key in exposed_port_keys(ports).unwrap_or_default() {
                if !exposed.contains(&key) {
                    exposed.push(key);
                }
            }
            format!("EXPOSE {}", ports.join(" "))
        }
        Instruction::User(u) => {
            config.user = Some(u.clone());
            format!("USER {u}")
        }
        Instruction::Volume(paths) => {
            let volumes = config.volumes.get_or_insert_with(Default::default);
            for p in paths {
                if !volumes.contains(p) {
                    volumes.push(p.clone());
                }
            }
            format!("VOLUME [{}]", paths.join(" "))
        }
        Instruction::StopSignal(s) => {
            config.stop_signal = Some(s.clone());
            format!("STOPSIGNAL {s}")
        }
        Instruction::Shell(v) => {
            *shell = v.clone();
            config.shell = Some(v.clone());
            format!("SHELL {}", go_quoted_list(v))
        }
        Instruction::Maintainer(m) => format!("MAINTAINER {m}"),
        Instruction::Arg(args) => {
            let words: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(d) => format!("{}={d}", a.name),
                    None => a.name.clone(),
                })
                .collect();
            format!("ARG {}", words.join(" "))
        }
        Instruction::Healthcheck(h) => {
            let hc = match h {
                Healthcheck::None => HealthConfig {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    retries,
                } => {
                    let test = match test {
                        CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                            .chain(v.clone())
                            .collect(),
                        CommandLine::Shell(t) => vec!["CMD-SHELL".to_string(), t.clone()],
                    };
                    let ns = |d: &Option<std::time::Duration>| {
                        d.map(|d| d.as_nanos() as i64).unwrap_or(0)
                    };
                    HealthConfig {
                        test: Some(test),
                        interval: Some(ns(interval)),
                        timeout: Some(ns(timeout)),
                        start_period: Some(ns(start_period)),
                        retries: Some(retries.map(i64::from).unwrap_or(0)),
                        ..Default::default()
                    }
                }
            };
            let text = format!(
                "HEALTHCHECK {}",
                go_quoted_list(hc.test.as_deref().unwrap_or_default())
            );
            config.healthcheck = Some(hc);
            text
        }
        Instruction::Onbuild { expression, .. } => {
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(expression.clone());
            format!("ONBUILD {expression}")
        }
        Instruction::Workdir(_)
        | Instruction::Run { .. }
        | Instruction::Copy { .. }
        | Instruction::Add { .. } => return None,
    };
    Some(text)
}

/// WORKDIR: relative to the current one, as dockerd joins it.
pub fn workdir(current: Option<&str>, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", current.filter(|c| !c.is_empty()).unwrap_or("/"))
    };
    clean(&joined)
}

/// A path with `.`, `..` and repeated slashes resolved lexically (Go's
/// filepath.Clean of an absolute path).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A COPY source as a path inside the context, or dockerd's refusal of one
/// that leaves it.
pub fn context_path(src: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in src.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "forbidden path outside the build context: {src} ()"
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_as_dockerd_parses_it() {
        let passwd = "root:x:0:0::/root:/bin/sh\nbin:x:1:1::/bin:/bin/false\n";
        let group = "root:x:0:\nbin:x:1:\nstaff:x:50:\n";
        assert_eq!(chown_ids("1000", passwd, group), Ok((1000, 1000)));
        assert_eq!(chown_ids("bin", passwd, group), Ok((1, 1)));
        assert_eq!(chown_ids("bin:staff", passwd, group), Ok((1, 50)));
        assert_eq!(
            chown_ids("nosuch", passwd, group).unwrap_err(),
            "unable to convert uid/gid chown string to host mapping: can't find uid for user nosuch: no such user: nosuch"
        );
        assert_eq!(
            chown_ids("bin:nogroup", passwd, group).unwrap_err(),
            "unable to convert uid/gid chown string to host mapping: can't find gid for group nogroup: no such group: nogroup"
        );
    }

    #[test]
    fn exposed_ports_as_dockerd_reads_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exposed_port_keys(&s(&["80", "90-91/udp", "0"])).unwrap(),
            s(&["80/tcp", "90/udp", "91/udp", "0/tcp"])
        );
        assert_eq!(
            exposed_port_keys(&s(&["é"])).unwrap_err(),
            "Invalid containerPort: é"
        );
        assert_eq!(
            exposed_port_keys(&s(&["90-80"])).unwrap_err(),
            "Invalid containerPort: 90-80"
        );
        assert_eq!(
            exposed_port_keys(&s(&["70000"])).unwrap_err(),
            "Invalid containerPort: 70000"
        );
        assert_eq!(
            exposed_port_keys(&s(&["80/xyz"])).unwrap_err(),
            "Invalid proto: xyz"
        );
    }
    use crate::builder::dockerfile::KeyValue;

    #[test]
    fn metadata_steps_and_their_history_words() {
        let mut c = ContainerConfig::default();
        let mut shell = default_shell();
        let env = Instruction::Env(vec![KeyValue {
            key: "a".into(),
            value: "b".into(),
        }]);
        let text = apply_metadata(&mut c, &mut shell, &env).unwrap();
        assert_eq!(
            nop_cmd(&shell, &text).join(" "),
            "/bin/sh -c #(nop)  ENV a=b"
        );
        assert_eq!(c.env, Some(vec!["a=b".to_string()]));
        let cmd = Instruction::Cmd(CommandLine::Exec(vec!["sh".into()]));
        assert_eq!(
            apply_metadata(&mut c, &mut shell, &cmd).unwrap(),
            "CMD [\"sh\"]"
        );
        let ep = Instruction::Entrypoint(CommandLine::Shell("top -b".into()));
        assert_eq!(
            apply_metadata(&mut c, &mut shell, &ep).unwrap(),
            "ENTRYPOINT [\"/bin/sh\" \"-c\" \"top -b\"]"
        );
        assert_eq!(c.cmd, None);
        assert_eq!(
            nop_one(&shell, "WORKDIR /x").join(" "),
            "/bin/sh -c #(nop) WORKDIR /x"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(workdir(None, "app"), "/app");
        assert_eq!(workdir(Some("/app"), "src/../lib"), "/app/lib");
        assert_eq!(workdir(Some("/app"), "/x/"), "/x");
        assert_eq!(context_path("./a/b/../c").unwrap(), "a/c");
        assert_eq!(context_path(".").unwrap(), "");
        assert!(context_path("../x").is_err());
    }
}
