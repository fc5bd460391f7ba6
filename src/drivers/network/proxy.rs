//! The userland proxy of published IPv6 ports. IPv4 ports are DNAT rules;
//! a v6 one (`[::]:p`, `[::1]:p`) is carried by the daemon, as dockerd's
//! docker-proxy carries them: ip6tables cannot send ::1's packets into a
//! bridge (there is no route_localnet for v6). One task per published port,
//! on the socket that already holds it; its connections and UDP flows are
//! tasks of a JoinSet it owns, so aborting it ends them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet};
use tracing::debug;

use crate::error::{Context as _, Result};

/// How long a UDP flow without traffic is kept (dockerd's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);
/// At most this many UDP flows and TCP connections per published port: a
/// flood of clients costs the daemon bounded sockets and memory (a new
/// client past it is dropped; the running ones go on).
const MAX_FLOWS: usize = 1024;
const MAX_CONNECTIONS: usize = 4096;

/// A running proxy; it stops when dropped (so an error path that drops it
/// cannot leave a port held by a task nobody knows).
pub struct Proxy(AbortHandle);

impl Drop for Proxy {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts carrying `proto` traffic that reaches the bound socket `fd` to
/// `target`. Call from within the daemon's runtime.
pub fn spawn(fd: OwnedFd, proto: &str, target: SocketAddr) -> Result<Proxy> {
    let task = match proto {
        "udp" => {
            let std_sock = std::net::UdpSocket::from(fd);
            std_sock
                .set_nonblocking(true)
                .context("making the proxy's socket non-blocking")?;
            let sock = UdpSocket::from_std(std_sock).context("serving a published UDP port")?;
            tokio::spawn(udp(Arc::new(sock), target))
        }
        _ => {
            // Listening already (networks::ports), or a test's socket.
            nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::MAXCONN)
                .context("listening on a published port")?;
            let std_listener = std::net::TcpListener::from(fd);
            std_listener
                .set_nonblocking(true)
                .context("making the proxy's socket non-blocking")?;
            let listener =
                TcpListener::from_std(std_listener).context("serving a published TCP port")?;
            tokio::spawn(tcp(listener, target))
        }
    };
    Ok(Proxy(task.abort_handle()))
}

async fn tcp(listener: TcpListener, target: SocketAddr) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((_, peer)) if conns.len() >= MAX_CONNECTIONS => {
                    debug!(%peer, "proxy: too many connections; one refused");
                }
                Ok((mut client, peer)) => {
                    conns.spawn(async move {
                        match TcpStream::connect(target).await {
                            Ok(mut upstream) => {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                            Err(e) => debug!(%peer, %target, error = %e, "proxy: no connection to the container"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, say: wait, do not spin.
                    debug!(error = %e, "proxy: accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn udp(sock: Arc<UdpSocket>, target: SocketAddr) {
    // One socket towards the container per client, as a NAT would keep it.
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let (gone_tx, mut gone_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            got = sock.recv_from(&mut buf) => {
                let Ok((n, client)) = got else { continue };
                let upstream = match flows.get(&client) {
                    Some(u) => Arc::clone(u),
                    None if flows.len() >= MAX_FLOWS => continue,
                    None => {
                        let bind: SocketAddr = if target.is_ipv6() {
                            "[::]:0".parse().unwrap_or(target)
                        } else {
                            "0.0.0.0:0".parse().unwrap_or(target)
                        };
                        let Ok(u) = UdpSocket::bind(bind).await else { continue };
                        if u.connect(target).await.is_err() {
                            continue;
                        }
                        let u = Arc::new(u);
                        flows.insert(client, Arc::clone(&u));
                        tasks.spawn(replies(Arc::clone(&u), Arc::clone(&sock), client, gone_tx.clone()));
                        u
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(client) = gone_rx.recv() => {
                flows.remove(&client);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Carries a flow's replies back to its client until it is idle.
async fn replies(
    upstream: Arc<UdpSocket>,
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    gone: tokio::sync::mpsc::UnboundedSender<SocketAddr>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = sock.send_to(&buf[..n], client).await;
    }
    let _ = gone.send(client);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bound, not yet listening v6 loopback socket, as ports::reserve
    /// hands them over.
    fn bound(kind: nix::sys::socket::SockType) -> (OwnedFd, u16) {
        use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockaddrIn6};
        let fd = socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None).unwrap();
        let any: SocketAddr = "[::1]:0".parse().unwrap();
        let SocketAddr::V6(v6) = any else {
            unreachable!()
        };
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(v6)).unwrap();
        let a: SockaddrIn6 = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
        (fd, a.port())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn carries_tcp_both_ways_and_stops_when_aborted() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = backend.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = backend.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(&buf.to_ascii_uppercase()).await.unwrap();
                });
            }
        });
        let (fd, port) = bound(nix::sys::socket::SockType::Stream);
        let task = spawn(fd, "tcp", target).unwrap();
        let mut c = TcpStream::connect(("::1", port)).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HELLO");
        drop(task);
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            TcpStream::connect(("::1", port)).await.is_err(),
            "still listening after abort"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn carries_udp_replies_back_to_each_client() {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 100];
            while let Ok((n, from)) = backend.recv_from(&mut buf).await {
                let reply = buf[..n].to_ascii_uppercase();
                backend.send_to(&reply, from).await.unwrap();
            }
        });
        let (fd, port) = bound(nix::sys::socket::SockType::Datagram);
        let _task = spawn(fd, "udp", target).unwrap();
        for word in [&b"one"[..], b"two"] {
            let c = UdpSocket::bind("[::1]:0").await.unwrap();
            c.send_to(word, ("::1", port)).await.unwrap();
            let mut buf = [0u8; 100];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
                .await
                .expect("a reply")
                .unwrap();
            assert_eq!(&buf[..n], word.to_ascii_uppercase().as_slice());
        }
    }
}
