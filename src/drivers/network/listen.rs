//! Sockets that listen inside a container's network namespace, bound by a
//! thread of their own that enters it and ends (no other thread of the daemon
//! changes namespace). A socket stays in the namespace it was made in, so the
//! daemon serves it from its own threads; while it is open it holds the
//! namespace, so whoever holds it closes it when the container's sandbox goes.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use crate::error::{Context, Error, Result};

/// A udp socket and a tcp listener on one address and port.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

/// Binds `addr:port` (udp and tcp, non-blocking) in the namespace at `netns`.
pub fn bind_in(netns: &Path, addr: Ipv4Addr, port: u16) -> Result<Listeners> {
    let netns = std::fs::File::open(netns).context(format_args!("opening {}", netns.display()))?;
    let at = SocketAddr::from((addr, port));
    let thread = std::thread::Builder::new()
        .name("netns-listen".into())
        .spawn(move || -> Result<Listeners> {
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("setns(CLONE_NEWNET)")?;
            let udp = UdpSocket::bind(at).context(format_args!("binding udp {at}"))?;
            let tcp = TcpListener::bind(at).context(format_args!("binding tcp {at}"))?;
            udp.set_nonblocking(true).context("udp O_NONBLOCK")?;
            tcp.set_nonblocking(true).context("tcp O_NONBLOCK")?;
            Ok(Listeners { udp, tcp })
        })
        .context("starting the netns-listen thread")?;
    thread
        .join()
        .map_err(|_| Error::internal("the netns-listen thread panicked"))?
}
