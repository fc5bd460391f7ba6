//! The one poll loop: output into the log and to clients, stdin from them,
//! processes reaped, processes finished when their output has drained.

use super::*;

impl Shim {
    pub(super) fn main_done(&self) -> bool {
        self.procs.get(&MAIN).is_none_or(|p| p.done)
    }

    /// The loop: until the main process is done and its clients have their output.
    pub(super) fn run(&mut self) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Some(at) = self.main_done_at {
                let execs_done = self.procs.values().all(|p| p.done);
                if (self.clients.is_empty() && execs_done) || at.elapsed() > CLOSE_GRACE {
                    break;
                }
            }
            if self.poll_once(&mut buf) {
                crate::pages::shed_code_pages();
            }
        }
        let id = self.config.id.clone();
        let _ = self.run_runtime(&["delete", "--force", &id], None);
        let _ = std::fs::remove_file(SHIM_SOCKET);
    }

    /// One poll and what it found; true when a request was served (which runs
    /// code the loop does not, such as the runtime's spawn).
    pub(super) fn poll_once(&mut self, buf: &mut [u8]) -> bool {
        let served = self.served;
        // What each poll entry is.
        enum Slot {
            Signal,
            Listener,
            Source(u64, usize), // proc, index in outs (usize::MAX: the master)
            Stdin(u64),
            Client(u64),
        }
        let mut slots: Vec<Slot> = vec![Slot::Signal, Slot::Listener];
        let mut fds: Vec<PollFd> = vec![
            PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        let blocked = |key: u64, clients: &HashMap<u64, Client>| {
            clients.values().any(|c| {
                matches!(c.role, Role::Stream { proc, .. } if proc == key)
                    && c.out.len() > HIGH_WATER
            })
        };
        for (key, p) in &self.procs {
            if !blocked(*key, &self.clients) {
                if let Some(m) = &p.master {
                    let mut ev = PollFlags::POLLIN;
                    if !p.stdin_buf.is_empty() {
                        ev |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(m.as_fd(), ev));
                    slots.push(Slot::Source(*key, usize::MAX));
                }
                for (i, (_, fd)) in p.outs.iter().enumerate() {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    slots.push(Slot::Source(*key, i));
                }
            }
            if let Some(s) = &p.stdin {
                if !p.stdin_buf.is_empty() {
                    fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
                    slots.push(Slot::Stdin(*key));
                }
            }
        }
        for (key, c) in &self.clients {
            let mut ev = PollFlags::empty();
            let target_full = match c.role {
                Role::Stream { proc, .. } => self
                    .procs
                    .get(&proc)
                    .is_some_and(|p| p.stdin_buf.len() > HIGH_WATER),
                _ => false,
            };
            if !c.input_closed && !target_full {
                ev |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.sock.as_fd(), ev));
            slots.push(Slot::Client(*key));
        }
        let waiting =
            self.procs.values().any(|p| p.exit.is_some() && !p.done) || self.main_done_at.is_some();
        // Wake for processes that drain, and for the health check's next due.
        let mut wake_ms: Option<u16> = waiting.then_some(100);
        if let Some(h) = self.health.as_ref().filter(|_| !self.main_done()) {
            let ms = h
                .deadline()
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(60_000) as u16;
            // Rounded up: a wake just before the deadline would only sleep again.
            let ms = ms.saturating_add(1);
            wake_ms = Some(wake_ms.map_or(ms, |w| w.min(ms)));
        }
        let timeout = wake_ms.map_or(PollTimeout::NONE, PollTimeout::from);
        let _ = poll(&mut fds, timeout);
        let ready: Vec<(usize, PollFlags)> = fds
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (i, r)))
            .collect();
        drop(fds);
        for (i, rev) in ready {
            match slots[i] {
                Slot::Signal => self.reap(),
                Slot::Listener => self.accept(),
                Slot::Source(key, idx) => {
                    if rev.contains(PollFlags::POLLOUT) {
                        self.write_stdin(key);
                    }
                    if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.read_source(key, idx, buf);
                    }
                }
                Slot::Stdin(key) => self.write_stdin(key),
                Slot::Client(key) => {
                    if rev.contains(PollFlags::POLLOUT) {
                        self.write_client(key);
                    }
                    if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.read_client(key, buf);
                    }
                }
            }
        }
        self.finish_procs();
        self.health_tick();
        self.served != served
    }

    pub(super) fn reap(&mut self) {
        while let Ok(Some(_)) = self.sfd.read_signal() {}
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            match self
                .procs
                .values_mut()
                .find(|p| p.pid == pid && p.exit.is_none())
            {
                Some(p) => {
                    p.exit = Some(code);
                    p.exited_at = Some(Instant::now());
                }
                None => {
                    self.reaped.insert(pid, code);
                }
            }
        }
    }

    pub(super) fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            self.clients.insert(
                key,
                Client {
                    sock,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    role: Role::Request,
                    input_closed: false,
                },
            );
        }
    }

    /// Output of a process: into the log (main), and to every client that follows it.
    pub(super) fn read_source(&mut self, key: u64, idx: usize, buf: &mut [u8]) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let (stream, fd) = if idx == usize::MAX {
            match &p.master {
                Some(m) => (STDOUT, m),
                None => return,
            }
        } else {
            match p.outs.get(idx) {
                Some((s, fd)) => (*s, fd),
                None => return,
            }
        };
        let n = match nix::unistd::read(fd, buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => return,
            // EIO: the pty's other side is gone.
            Err(_) => 0,
        };
        let tty = p.tty;
        if n == 0 {
            if idx == usize::MAX {
                p.master = None;
            } else {
                p.outs.remove(idx);
            }
            if key == MAIN {
                self.log.write(stream, &[], true);
            }
            return;
        }
        let data = &buf[..n];
        if let Some(kept) = p.capture.as_mut() {
            let room = health::MAX_OUTPUT.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..n.min(room)]);
        }
        if key == MAIN {
            self.log.write(stream, data, false);
        }
        for c in self.clients.values_mut() {
            if let Role::Stream {
                proc,
                stdout,
                stderr,
                ..
            } = c.role
            {
                let wanted = if stream == STDERR { stderr } else { stdout };
                if proc != key || !wanted {
                    continue;
                }
                if tty {
                    c.out.extend_from_slice(data);
                } else {
                    frame(stream, data, &mut c.out);
                }
            }
        }
    }

    pub(super) fn write_stdin(&mut self, key: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let fd = match (&p.master, &p.stdin) {
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                p.stdin_buf.clear();
                return;
            }
        };
        match nix::unistd::write(fd, &p.stdin_buf) {
            Ok(n) => {
                p.stdin_buf.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // The process no longer reads its stdin.
            Err(_) => {
                p.stdin_buf.clear();
                p.stdin = None;
            }
        }
        if p.stdin_buf.is_empty() && p.stdin_closing {
            p.stdin = None;
        }
    }

    pub(super) fn write_client(&mut self, key: u64) {
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                self.clients.remove(&key);
                return;
            }
        }
        if c.out.is_empty() && matches!(c.role, Role::Closing) {
            self.clients.remove(&key);
        }
    }

    pub(super) fn read_client(&mut self, key: u64, buf: &mut [u8]) {
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        let n = match c.sock.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.clients.remove(&key);
                return;
            }
        };
        if n == 0 {
            c.input_closed = true;
            match c.role {
                Role::Request | Role::Closing | Role::Watch => {
                    if c.out.is_empty() || matches!(c.role, Role::Watch) {
                        self.clients.remove(&key);
                    }
                }
                Role::Stream { proc, stdin, .. } => {
                    if stdin {
                        if let Some(p) = self.procs.get_mut(&proc) {
                            if p.stdin_once && !p.tty {
                                p.stdin_closing = true;
                                if p.stdin_buf.is_empty() {
                                    p.stdin = None;
                                }
                            }
                        }
                    }
                }
            }
            return;
        }
        match c.role {
            Role::Request => {
                c.inbuf.extend_from_slice(&buf[..n]);
                if let Some(nl) = c.inbuf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
                    let rest = std::mem::take(&mut c.inbuf);
                    self.request(key, &line, rest);
                } else if c.inbuf.len() > 1 << 20 {
                    self.clients.remove(&key);
                }
            }
            Role::Stream { proc, stdin, .. } => {
                if stdin {
                    self.to_stdin(proc, &buf[..n]);
                }
            }
            Role::Closing | Role::Watch => {}
        }
    }

    pub(super) fn to_stdin(&mut self, key: u64, data: &[u8]) {
        if let Some(p) = self.procs.get_mut(&key) {
            if p.master.is_some() || p.stdin.is_some() {
                p.stdin_buf.extend_from_slice(data);
            }
        }
        self.write_stdin(key);
    }

    /// A process that has exited and whose output is read (or whose grace is
    /// over) is done: its exit is written down and its clients are let go.
    pub(super) fn finish_procs(&mut self) {
        let finished: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| {
                !p.done
                    && p.exited_at
                        .is_some_and(|at| !p.sources_open() || at.elapsed() > DRAIN_GRACE)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in finished {
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            p.done = true;
            p.master = None;
            p.outs.clear();
            p.stdin = None;
            let status = ExitStatus {
                exit_code: p.exit.unwrap_or(255),
                oom_killed: false,
                error: String::new(),
            };
            let capture = p.capture.take();
            let code = status.exit_code;
            match p.exec_id.clone() {
                Some(_) if self.is_probe(key) => {
                    self.probe_ended(code, capture.unwrap_or_default());
                }
                Some(exec_id) => {
                    if let Ok(bytes) = serde_json::to_vec(&status) {
                        write_atomic(
                            &self.bundle.join(EXEC_DIR).join(format!("{exec_id}.exit")),
                            &bytes,
                        );
                    }
                }
                None => {
                    self.log.write(STDOUT, &[], true);
                    self.log.write(STDERR, &[], true);
                    let status = ExitStatus {
                        oom_killed: oom_kills(&self.config.cgroup_path) > 0,
                        ..status
                    };
                    if let Ok(bytes) = serde_json::to_vec(&status) {
                        write_atomic(&self.bundle.join(EXIT_FILE), &bytes);
                    }
                    self.main_done_at = Some(Instant::now());
                }
            }
            let mut gone = Vec::new();
            for (ck, c) in self.clients.iter_mut() {
                let watching = key == MAIN && matches!(c.role, Role::Watch);
                if watching || matches!(c.role, Role::Stream { proc, .. } if proc == key) {
                    c.role = Role::Closing;
                    if c.out.is_empty() {
                        gone.push(*ck);
                    }
                }
            }
            for ck in gone {
                self.clients.remove(&ck);
            }
            if key != MAIN {
                self.procs.remove(&key);
            }
        }
    }
}

/// OOM kills recorded by the memory cgroup (v1 memory.oom_control, v2
/// memory.events).
pub fn oom_kills(cgroup_path: &str) -> u64 {
    let rel = cgroup_path.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
    ];
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            if let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
            {
                return n;
            }
        }
    }
    0
}
