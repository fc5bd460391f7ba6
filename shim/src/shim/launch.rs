//! Running the OCI runtime: the container created with the stdio the shim made.

use super::requests::resize;
use super::*;

impl Shim {
    pub(super) fn runtime(&self, log: &Path) -> Command {
        let mut cmd = Command::new(&self.config.runtime[0]);
        cmd.args(&self.config.runtime[1..]).arg("--log").arg(log);
        // The container's processes descend from it: they must not start
        // with our blocked SIGCHLD (the signalfd) or anything ignored.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                crate::signals::reset_before_exec();
                Ok(())
            });
        }
        cmd
    }

    /// Runs one runtime command with the given stdio; its error on failure.
    pub(super) fn run_runtime(
        &self,
        args: &[&str],
        stdio: Option<[OwnedFd; 3]>,
    ) -> Result<(), String> {
        let log = self.bundle.join("runtime.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = self.runtime(&log);
        cmd.args(args);
        match stdio {
            Some([i, o, e]) => {
                cmd.stdin(Stdio::from(i))
                    .stdout(Stdio::from(o))
                    .stderr(Stdio::from(e));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
        }
        let status = cmd
            .status()
            .map_err(|e| format!("running the runtime {}: {e}", self.config.runtime[0]))?;
        if status.success() {
            Ok(())
        } else {
            Err(runtime_error(&log, status))
        }
    }

    /// Runs `runtime ARGS --pid-file P [--console-socket S] ID` with stdio made
    /// for the process: pipes, or a pty whose master the runtime sends over
    /// the console socket bound at `console_rel` (relative to the bundle).
    pub(super) fn run_process(
        &self,
        args: &[&str],
        tty: bool,
        stdin: bool,
        pid_file: &Path,
        console_rel: &str,
    ) -> Result<Started, String> {
        let stdio = make_stdio(tty, stdin)?;
        let console = if tty {
            let _ = std::fs::remove_file(console_rel);
            Some(UnixListener::bind(console_rel).map_err(|e| format!("console socket: {e}"))?)
        } else {
            None
        };
        let pid_s = pid_file.display().to_string();
        let console_abs = self.bundle.join(console_rel).display().to_string();
        let id = self.config.id.clone();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--pid-file", &pid_s]);
        if tty {
            all.extend(["--console-socket", &console_abs]);
        }
        all.push(&id);
        let started = self.run_runtime(&all, Some(stdio.theirs)).and_then(|()| {
            let master = match &console {
                Some(l) => {
                    let m = receive_master(l)?;
                    set_nonblocking(&m);
                    Some(m)
                }
                None => None,
            };
            Ok(Started {
                pid: read_pid(pid_file)?,
                master,
                stdin: stdio.stdin,
                outs: stdio.outs,
            })
        });
        if tty {
            let _ = std::fs::remove_file(console_rel);
        }
        started
    }

    pub(super) fn create(bundle: PathBuf, config: ShimConfig) -> Result<Shim, String> {
        if config.runtime.is_empty() {
            return Err("no runtime configured".into());
        }
        let log = JsonLog::open(&config.log_path, config.log_max_size, config.log_max_files)?;
        // SIGCHLD through a signalfd, so the loop waits on one poll. Children
        // started with std's Command get the mask reset.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let _ = std::fs::remove_file(SHIM_SOCKET);
        let listener =
            UnixListener::bind(SHIM_SOCKET).map_err(|e| format!("{SHIM_SOCKET}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{SHIM_SOCKET}: {e}"))?;
        let _ = std::fs::create_dir_all(EXEC_DIR);
        let mut shim = Shim {
            bundle,
            config,
            sfd,
            listener,
            log,
            procs: HashMap::new(),
            clients: HashMap::new(),
            next_key: 1,
            reaped: HashMap::new(),
            main_done_at: None,
            served: 0,
            seccomp: None,
            health: None,
        };
        let (tty, open_stdin) = (shim.config.tty, shim.config.open_stdin);
        let bundle_s = shim.bundle.display().to_string();
        let pid_file = shim.bundle.join("init.pid");
        let started = shim.run_process(
            &["create", "--bundle", &bundle_s],
            tty,
            open_stdin,
            &pid_file,
            "console.sock",
        );
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                let id = shim.config.id.clone();
                let _ = shim.run_runtime(&["delete", "--force", &id], None);
                return Err(e);
            }
        };
        let pid = started.pid;
        let stdin_once = shim.config.stdin_once;
        // The client's terminal size from the start (ConsoleSize), so the
        // first prompt already fits.
        if let (Some(master), Some([h, w])) = (started.master.as_ref(), shim.config.console_size) {
            if h > 0 && w > 0 {
                let _ = resize(master, h, w);
            }
        }
        shim.procs
            .insert(MAIN, Proc::new(None, tty, started, stdin_once));
        report(&Created {
            pid: pid as u32,
            error: String::new(),
        });
        Ok(shim)
    }
}
