//! `docker top`: as dockerd does it, `ps` runs on the host with the client's
//! arguments (default `-ef`) and only the rows of the container's processes are
//! kept, found by the PID column. The container's processes are those in its
//! cgroup.

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The pids in the container's cgroup: the first hierarchy that has it (v1:
/// pids, memory, cpu, ...; v2: the unified tree).
pub fn container_pids(cgroup_path: &str) -> Vec<u32> {
    let rel = cgroup_path.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/pids/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/memory/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/cpu,cpuacct/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/freezer/{rel}/cgroup.procs"),
        format!("/sys/fs/cgroup/{rel}/cgroup.procs"),
    ];
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// Splits `ps` output into titles and the rows of `pids`, as moby's
/// parsePSOutput: the last column takes the rest of the line (the command).
pub fn parse_ps(output: &str, pids: &[u32]) -> Result<Value> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| Error::internal("Error running ps: no output"))?;
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| Error::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<u32>() else {
            return Err(Error::internal(format!(
                "Unexpected pid '{}': ps output is not what was expected",
                fields[pid_col]
            )));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(json!({ "Titles": titles, "Processes": processes }))
}

/// Runs the host's `ps` with the client's arguments (split on spaces, as dockerd
/// splits them) and keeps the container's rows.
pub fn top(ps_args: &str, pids: &[u32]) -> Result<Value> {
    let args: Vec<&str> = if ps_args.trim().is_empty() {
        vec!["-ef"]
    } else {
        ps_args.split_whitespace().collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::internal(format!("Error running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&out.stdout), pids)
}

/// `docker top` of the container `id`: its cgroup's pids, then `ps`. Blocking.
pub fn of_container(exec_root: &std::path::Path, id: &str, ps_args: &str) -> Result<Value> {
    let pids = container_pids(&crate::drivers::exec::bundle::running_cgroup(exec_root, id));
    top(ps_args, &pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_containers_rows_and_the_whole_command() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\n\
                  root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                  root 4242 4200 0 10:01 ? 00:00:00 sleep 300 now\n";
        let v = parse_ps(ps, &[4242]).unwrap();
        assert_eq!(v["Titles"][1], "PID");
        assert_eq!(
            v["Processes"],
            json!([[
                "root",
                "4242",
                "4200",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 300 now"
            ]])
        );
        assert!(parse_ps("UID CMD\nroot x\n", &[1]).is_err());
        assert!(parse_ps("", &[1]).is_err());
    }
}
