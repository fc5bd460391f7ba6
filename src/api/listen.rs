//! Listeners: `unix://`, `tcp://` (plain on loopback only; TLS with client
//! certificates elsewhere) and `fd://` (systemd socket activation). Each accepted
//! connection is served by hyper with upgrades on, so attach/exec can hijack it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::Api;
use crate::config::{TlsConfig, DEFAULT_SOCKET};
use crate::error::{Context, Error, Result};

/// A `-H` value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSpec {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    /// `fd://` (every activated socket) or `fd://N` (that one).
    Fd(Option<RawFd>),
}

/// Parses a host as dockerd does (`opts.ParseHost`), with its error text.
pub fn parse_host(s: &str, tls: bool) -> Result<HostSpec> {
    let s = s.trim();
    let bad = || Error::invalid(format!("Invalid bind address format: {s}"));
    if s.is_empty() {
        return Ok(HostSpec::Unix(DEFAULT_SOCKET.into()));
    }
    if let Some(path) = s.strip_prefix("unix://") {
        return Ok(HostSpec::Unix(if path.is_empty() {
            DEFAULT_SOCKET.into()
        } else {
            path.into()
        }));
    }
    if let Some(rest) = s.strip_prefix("fd://") {
        if rest.is_empty() {
            return Ok(HostSpec::Fd(None));
        }
        return rest
            .parse()
            .map(|fd| HostSpec::Fd(Some(fd)))
            .map_err(|_| bad());
    }
    if let Some(rest) = s.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 2376 } else { 2375 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            (h.to_string(), after.strip_prefix(':').unwrap_or(""))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (rest.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            default_port
        } else {
            port.parse().map_err(|_| bad())?
        };
        let host = if host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            host
        };
        return Ok(HostSpec::Tcp { host, port });
    }
    Err(bad())
}

fn is_loopback(host: &str, port: u16) -> bool {
    if host == "localhost" {
        return true;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// A bound listener, ready to serve.
pub enum Bound {
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
    Tcp {
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    },
}

impl Bound {
    pub fn describe(&self) -> String {
        match self {
            Bound::Unix { path: Some(p), .. } => format!("unix://{}", p.display()),
            Bound::Unix { path: None, .. } => "unix (activated fd)".into(),
            Bound::Tcp { listener, tls } => {
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                format!("tcp://{addr}{}", if tls.is_some() { " (TLS)" } else { "" })
            }
        }
    }
}

/// Binds every host before anything else starts, so a bad `-H` fails at once.
pub fn bind_all(
    hosts: &[String],
    tls: Option<&TlsConfig>,
    group: Option<&str>,
) -> Result<Vec<Bound>> {
    let hosts: Vec<String> = if hosts.is_empty() {
        vec![format!("unix://{DEFAULT_SOCKET}")]
    } else {
        hosts.to_vec()
    };
    let acceptor = match tls {
        Some(cfg) => Some(tls_acceptor(cfg)?),
        None => None,
    };
    let mut bound = Vec::new();
    for h in &hosts {
        match parse_host(h, tls.is_some())? {
            HostSpec::Unix(path) => bound.push(bind_unix(&path, group)?),
            HostSpec::Tcp { host, port } => {
                let verified = tls.map(|t| t.verify).unwrap_or(false);
                if !is_loopback(&host, port) && !verified {
                    return Err(Error::invalid(format!(
                        "refusing to listen on {h}: the API gives root on this host to anyone who can reach it; \
                         listen on a non-loopback address only with --tlsverify (client certificates), or use 127.0.0.1"
                    )));
                }
                let addr = (host.as_str(), port)
                    .to_socket_addrs()
                    .context(format_args!("resolving {h}"))?
                    .next()
                    .ok_or_else(|| Error::invalid(format!("{h} resolves to no address")))?;
                let std_listener =
                    std::net::TcpListener::bind(addr).context(format_args!("listening on {h}"))?;
                bound.push(Bound::Tcp {
                    listener: tcp_into_tokio(std_listener)?,
                    tls: acceptor.clone(),
                });
            }
            HostSpec::Fd(which) => bound.extend(activated_listeners(which, acceptor.as_ref())?),
        }
    }
    Ok(bound)
}

fn tcp_into_tokio(l: std::net::TcpListener) -> Result<TcpListener> {
    l.set_nonblocking(true)
        .context("setting a listener non-blocking")?;
    TcpListener::from_std(l).context("registering a tcp listener")
}

fn bind_unix(path: &Path, group: Option<&str>) -> Result<Bound> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context(format_args!("creating {}", dir.display()))?;
    }
    if path.exists() {
        // A socket someone still answers on belongs to a live daemon: leave it alone.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::conflict(format!(
                "{} is in use by a running daemon; stop it or choose another -H",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .context(format_args!("removing stale socket {}", path.display()))?;
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)
        .context(format_args!("listening on unix://{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .context(format_args!("setting the mode of {}", path.display()))?;
    let group_name = group.unwrap_or("docker");
    match nix::unistd::Group::from_name(group_name) {
        Ok(Some(g)) => {
            if let Err(e) =
                nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(g.gid))
            {
                warn!(socket = %path.display(), group = group_name, error = %e, "cannot give the socket to its group");
            }
        }
        _ if group.is_some() => {
            return Err(Error::invalid(format!("group {group_name} not found")));
        }
        _ => debug!("no docker group; socket stays root-only"),
    }
    std_listener
        .set_nonblocking(true)
        .context("setting a listener non-blocking")?;
    let listener = UnixListener::from_std(std_listener).context("registering a unix listener")?;
    Ok(Bound::Unix {
        listener,
        path: Some(path.to_path_buf()),
    })
}

/// Sockets passed by a service manager (LISTEN_PID/LISTEN_FDS, from fd 3).
fn activated_listeners(which: Option<RawFd>, tls: Option<&TlsAcceptor>) -> Result<Vec<Bound>> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !pid_ok || count <= 0 {
        return Err(Error::invalid("fd:// given but no sockets were passed (LISTEN_PID/LISTEN_FDS unset or not for this process)"));
    }
    let fds: Vec<RawFd> = match which {
        None => (3..3 + count).collect(),
        Some(fd) if (3..3 + count).contains(&fd) => vec![fd],
        Some(fd) => {
            return Err(Error::invalid(format!(
                "fd://{fd}: not among the {count} activated sockets"
            )))
        }
    };
    let mut out = Vec::new();
    for fd in fds {
        let addr = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
            .context(format_args!("fd {fd} is not a socket"))?;
        // Not to be inherited by anything berthd starts later (shims).
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        // SAFETY: the service manager hands these fds to this process alone, and each
        // one is wrapped exactly once here.
        if addr.as_unix_addr().is_some() {
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true)
                .context("setting a listener non-blocking")?;
            out.push(Bound::Unix {
                listener: UnixListener::from_std(l).context("registering fd")?,
                path: None,
            });
        } else {
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            out.push(Bound::Tcp {
                listener: tcp_into_tokio(l)?,
                tls: tls.cloned(),
            });
        }
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    Ok(out)
}

fn tls_acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            Error::invalid(format!(
                "could not load TLS certificate {}: {e}",
                cfg.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "no certificate in {}",
            cfg.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| {
        Error::invalid(format!("could not load TLS key {}: {e}", cfg.key.display()))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?;
    let builder = if cfg.verify {
        let mut roots = rustls::RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&cfg.ca)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| {
                Error::invalid(format!(
                    "could not read CA certificate {}: {e}",
                    cfg.ca.display()
                ))
            })?;
        for ca in cas {
            roots.add(ca).map_err(|e| {
                Error::invalid(format!("bad CA certificate {}: {e}", cfg.ca.display()))
            })?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    Error::invalid(format!(
                        "client verification with {}: {e}",
                        cfg.ca.display()
                    ))
                })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::invalid(format!("TLS certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `listeners` until `stop` flips, then stops accepting, lets in-flight
/// requests finish (up to `grace`), and removes the unix sockets it created.
pub async fn serve(listeners: Vec<Bound>, api: Api, stop: watch::Receiver<bool>, grace: Duration) {
    // Every connection task holds a clone of `alive`; when all are dropped, the
    // receiver sees the channel close: that is "no connection left".
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    let mut sockets = Vec::new();
    for bound in listeners {
        info!(listener = %bound.describe(), "API listening");
        if let Bound::Unix { path: Some(p), .. } = &bound {
            sockets.push(p.clone());
        }
        let (api, alive, mut stop) = (api.clone(), alive.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = until_stopped(&mut stop) => break,
                    accepted = accept(&bound) => match accepted {
                        Ok(conn) => {
                            tokio::spawn(serve_connection(conn, api.clone(), stop.clone(), alive.clone()));
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }
    drop(alive);
    let mut stop = stop;
    until_stopped(&mut stop).await;
    for t in tasks {
        let _ = t.await;
    }
    for p in sockets {
        let _ = std::fs::remove_file(&p);
    }
    if tokio::time::timeout(grace, all_closed.recv())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish in time; closing them");
    }
}

/// Resolves once `stop` is true (the guard `wait_for` returns is dropped here,
/// so callers' futures stay Send).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, Option<TlsAcceptor>),
}

async fn accept(bound: &Bound) -> std::io::Result<Conn> {
    match bound {
        Bound::Unix { listener, .. } => listener.accept().await.map(|(s, _)| Conn::Unix(s)),
        Bound::Tcp { listener, tls } => listener.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            Conn::Tcp(s, tls.clone())
        }),
    }
}

/// One connection, on its own task (so a slow TLS handshake holds up nobody).
async fn serve_connection(
    conn: Conn,
    api: Api,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    match conn {
        Conn::Unix(s) => serve_http(s, api, stop).await,
        Conn::Tcp(s, None) => serve_http(s, api, stop).await,
        Conn::Tcp(s, Some(acceptor)) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await {
                Ok(Ok(tls)) => serve_http(tls, api, stop).await,
                Ok(Err(e)) => info!(error = %e, "TLS handshake refused"),
                Err(_) => info!("TLS handshake timed out"),
            }
        }
    }
    drop(alive);
}

async fn serve_http<IO>(io: IO, api: Api, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { api.handle(req).await }
    });
    // Title-Case header names (Api-Version, Ostype) as dockerd writes them: some
    // clients match them case-sensitively.
    let conn = http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        res = conn.as_mut() => res,
        _ = until_stopped(&mut stop) => {
            // Finish the request in flight, then close instead of keeping alive.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_like_dockerd() {
        assert_eq!(
            parse_host("unix:///tmp/x.sock", false).ok(),
            Some(HostSpec::Unix("/tmp/x.sock".into()))
        );
        assert_eq!(
            parse_host("unix://", false).ok(),
            Some(HostSpec::Unix(DEFAULT_SOCKET.into()))
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2999", false).ok(),
            Some(HostSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 2999
            })
        );
        assert_eq!(
            parse_host("tcp://:2999", false).ok(),
            Some(HostSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 2999
            })
        );
        assert_eq!(
            parse_host("tcp://0.0.0.0", true).ok(),
            Some(HostSpec::Tcp {
                host: "0.0.0.0".into(),
                port: 2376
            })
        );
        assert_eq!(
            parse_host("tcp://[::1]:80", false).ok(),
            Some(HostSpec::Tcp {
                host: "::1".into(),
                port: 80
            })
        );
        assert_eq!(parse_host("fd://", false).ok(), Some(HostSpec::Fd(None)));
        assert_eq!(
            parse_host("fd://3", false).ok(),
            Some(HostSpec::Fd(Some(3)))
        );
        assert_eq!(
            parse_host("http://x", false).map_err(|e| e.to_string()),
            Err("Invalid bind address format: http://x".into())
        );
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1", 1));
        assert!(is_loopback("::1", 1));
        assert!(is_loopback("localhost", 1));
        assert!(!is_loopback("0.0.0.0", 1));
        assert!(!is_loopback("10.1.2.3", 1));
    }
}
