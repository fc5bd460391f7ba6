//! Clients' requests on shim.sock: attach, start, exec, resize, signals.

use super::*;

impl Shim {
    pub(super) fn reply(&mut self, key: u64, reply: &Reply, role: Role) {
        if let Some(c) = self.clients.get_mut(&key) {
            if let Ok(line) = serde_json::to_string(reply) {
                c.out.extend_from_slice(line.as_bytes());
                c.out.push(b'\n');
            }
            c.role = role;
        }
        self.write_client(key);
    }

    pub(super) fn fail(&mut self, key: u64, error: String) {
        self.reply(
            key,
            &Reply {
                error,
                ..Default::default()
            },
            Role::Closing,
        );
    }

    pub(super) fn request(&mut self, key: u64, line: &[u8], rest: Vec<u8>) {
        self.served += 1;
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return self.fail(key, format!("bad request: {e}")),
        };
        match req {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.main_done() {
                    return self.fail(key, "the container is not running".into());
                }
                self.reply(
                    key,
                    &Reply::default(),
                    Role::Stream {
                        proc: MAIN,
                        stdin,
                        stdout,
                        stderr,
                    },
                );
                if stdin && !rest.is_empty() {
                    self.to_stdin(MAIN, &rest);
                }
            }
            Request::Start => {
                let id = self.config.id.clone();
                match self.run_runtime(&["start", &id], None) {
                    Ok(()) => {
                        self.start_health();
                        let pid = self.procs.get(&MAIN).map_or(0, |p| p.pid as u32);
                        self.reply(
                            key,
                            &Reply {
                                pid,
                                ..Default::default()
                            },
                            Role::Closing,
                        )
                    }
                    Err(e) => self.fail(key, e),
                }
            }
            Request::Exec {
                exec_id,
                process,
                stdin,
                stdout,
                stderr,
            } => match self.exec(&exec_id, &process, stdin) {
                Ok((proc, pid)) => {
                    self.reply(
                        key,
                        &Reply {
                            pid: pid as u32,
                            ..Default::default()
                        },
                        Role::Stream {
                            proc,
                            stdin,
                            stdout,
                            stderr,
                        },
                    );
                    if stdin && !rest.is_empty() {
                        self.to_stdin(proc, &rest);
                    }
                }
                Err(e) => self.fail(key, e),
            },
            Request::WatchHealth => {
                if self.main_done() {
                    return self.fail(key, "the container is not running".into());
                }
                if self.health.is_none() {
                    return self.fail(key, "the container has no health check".into());
                }
                self.reply(key, &Reply::default(), Role::Watch);
                self.tell_watchers();
            }
            Request::Resize {
                exec_id,
                height,
                width,
            } => {
                let p = self
                    .procs
                    .values()
                    .find(|p| p.exec_id == exec_id && !p.done);
                let result = match p.and_then(|p| p.master.as_ref()) {
                    Some(m) => resize(m, height, width),
                    None => Err("no tty to resize".to_string()),
                };
                match result {
                    Ok(()) => self.reply(key, &Reply::default(), Role::Closing),
                    Err(e) => self.fail(key, e),
                }
            }
        }
    }

    /// Starts an exec through the runtime; returns its key and pid.
    pub(super) fn exec(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        stdin: bool,
    ) -> Result<(u64, i32), String> {
        if self.main_done() {
            return Err("the container is not running".into());
        }
        if exec_id.is_empty() || !exec_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("bad exec id {exec_id:?}"));
        }
        let tty = process
            .get("terminal")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        let dir = self.bundle.join(EXEC_DIR);
        let process_file = dir.join(format!("{exec_id}.json"));
        let pid_file = dir.join(format!("{exec_id}.pid"));
        let console_rel = format!("{EXEC_DIR}/{exec_id}.tty");
        if self.config.direct_exec {
            return self.exec_direct(exec_id, process, tty, stdin);
        }
        std::fs::write(
            &process_file,
            serde_json::to_vec(process).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", process_file.display()))?;
        let p_s = process_file.display().to_string();
        let started = self.run_process(
            &["exec", "--process", &p_s, "--detach"],
            tty,
            stdin,
            &pid_file,
            &console_rel,
        );
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        let started = started?;
        let pid = started.pid;
        let proc = Proc::new(Some(exec_id.to_string()), tty, started, true);
        Ok((self.add_exec(proc), pid))
    }

    pub(super) fn add_exec(&mut self, mut proc: Proc) -> u64 {
        // It may have ended before we knew its pid.
        proc.exit = self.reaped.remove(&proc.pid);
        proc.exited_at = proc.exit.map(|_| Instant::now());
        let key = self.next_key;
        self.next_key += 1;
        self.procs.insert(key, proc);
        key
    }

    /// An exec the shim does itself (see `exec`): it joins the init's
    /// namespaces and cgroups.
    pub(super) fn exec_direct(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        tty: bool,
        stdin: bool,
    ) -> Result<(u64, i32), String> {
        let spec: crate::exec::Process = serde_json::from_value(process.clone())
            .map_err(|e| format!("the exec's process: {e}"))?;
        let init = self.procs.get(&MAIN).map_or(0, |p| p.pid);
        // Read once: the program does not change while the container runs.
        if self.seccomp.is_none() {
            if let Some(path) = &self.config.seccomp_program {
                let bpf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.seccomp = Some(bpf);
            }
        }
        let (how, stdin_fd, outs) = if tty {
            (crate::exec::Stdio::Tty, None, Vec::new())
        } else {
            let stdio = make_stdio(false, stdin)?;
            (
                crate::exec::Stdio::Fds(stdio.theirs),
                stdio.stdin,
                stdio.outs,
            )
        };
        let spawned = crate::exec::spawn(init, &spec, how, self.seccomp.as_deref())?;
        if let Some(m) = &spawned.master {
            set_nonblocking(m);
        }
        let started = Started {
            pid: spawned.pid,
            master: spawned.master,
            stdin: stdin_fd,
            outs,
        };
        let proc = Proc::new(Some(exec_id.to_string()), tty, started, true);
        Ok((self.add_exec(proc), spawned.pid))
    }
}

pub(super) fn resize(master: &OwnedFd, height: u16, width: u16) -> Result<(), String> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("resizing: {}", std::io::Error::last_os_error()))
    }
}
