//! The daemon's side of a shim's socket (`proto`): one request per connection,
//! and for attach and exec the connection that carries the stream afterwards.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::proto::{Reply, Request, SHIM_SOCKET};
use crate::error::{Error, Result};

/// Connects to `<bundle>/shim.sock`. A path longer than sun_path allows is
/// reached through the directory's descriptor in /proc/self/fd.
pub async fn connect(bundle: &Path) -> Result<UnixStream> {
    let path = bundle.join(SHIM_SOCKET);
    let unavailable = |e: std::io::Error| {
        Error::unavailable(format!("the container's shim ({}): {e}", path.display()))
    };
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(&path).await.map_err(unavailable);
    }
    let dir = std::fs::File::open(bundle).map_err(unavailable)?;
    let short = format!(
        "/proc/self/fd/{}/{SHIM_SOCKET}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    );
    let stream = UnixStream::connect(&short).await.map_err(unavailable);
    drop(dir);
    stream
}

/// Sends one request and reads the reply line; the stream is left at the first
/// byte after it.
pub async fn request(bundle: &Path, req: &Request) -> Result<(Reply, UnixStream)> {
    let mut s = connect(bundle).await?;
    let mut line = serde_json::to_vec(req).map_err(|e| Error::internal(e.to_string()))?;
    line.push(b'\n');
    let shim_err = |e: std::io::Error| Error::unavailable(format!("the container's shim: {e}"));
    s.write_all(&line).await.map_err(shim_err)?;
    // Byte by byte: what follows the line is the stream and must stay unread.
    let mut reply = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.map_err(shim_err)? == 0 {
            return Err(Error::unavailable(
                "the container's shim closed the connection",
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        reply.push(b[0]);
        if reply.len() > 1 << 16 {
            return Err(Error::internal("the shim's reply is too long"));
        }
    }
    let reply: Reply = serde_json::from_slice(&reply)
        .map_err(|e| Error::internal(format!("the shim's reply: {e}")))?;
    Ok((reply, s))
}

/// A request whose reply is all there is; a shim error becomes `Err`.
pub async fn call(bundle: &Path, req: &Request) -> Result<Reply> {
    let (reply, _) = request(bundle, req).await?;
    if reply.error.is_empty() {
        Ok(reply)
    } else {
        Err(Error::internal(reply.error))
    }
}

/// Joins a client's hijacked connection to a shim stream until the output ends:
/// the client's input goes to the shim (its end closes the process's stdin
/// where that is asked for), the shim's output to the client. The client's
/// side is shut down when the output ends, whatever the client still sends.
/// With `detach` keys (a tty's attach), the client typing them leaves the
/// container running and ends the stream, as dockerd's copyEscapable does.
/// Returns whether the client detached.
pub async fn splice<C>(client: C, shim: UnixStream, detach: Option<Vec<u8>>) -> bool
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    splice_framed(client, shim, detach, Framing::AsIs).await
}

/// How an exec's output reaches its client when the start request's Tty
/// differs from the one the exec was created with: dockerd frames the
/// stream by the start request's (docker-py creates with a tty and starts
/// without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    AsIs,
    /// A tty's raw bytes, sent as stdout frames.
    Frame,
    /// Stdout's frames, sent as their raw payloads; stderr's are dropped
    /// (dockerd gives a tty start no stderr writer).
    Unframe,
}

impl Framing {
    /// For an exec made with `created_tty`, started with `started_tty`.
    pub fn of(created_tty: bool, started_tty: Option<bool>) -> Framing {
        match (created_tty, started_tty) {
            (true, Some(false)) => Framing::Frame,
            (false, Some(true)) => Framing::Unframe,
            _ => Framing::AsIs,
        }
    }
}

/// Copies the shim's output to the client, framed as `framing` says.
async fn copy_output<R, W>(from: &mut R, to: &mut W, framing: Framing)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    if framing == Framing::AsIs {
        let _ = tokio::io::copy(from, to).await;
        return;
    }
    let mut buf = vec![0u8; 32 << 10];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let out = match framing {
            Framing::Frame => {
                let mut out = Vec::with_capacity(n + 8);
                super::proto::frame(super::proto::STDOUT, &buf[..n], &mut out);
                out
            }
            _ => {
                pending.extend_from_slice(&buf[..n]);
                let mut out = Vec::new();
                while pending.len() >= 8 {
                    let len = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]])
                        as usize;
                    if pending.len() < 8 + len {
                        break;
                    }
                    if pending[0] == super::proto::STDOUT {
                        out.extend_from_slice(&pending[8..8 + len]);
                    }
                    pending.drain(..8 + len);
                }
                out
            }
        };
        if to.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// `splice`, the output framed as `framing` says.
pub async fn splice_framed<C>(
    client: C,
    shim: UnixStream,
    detach: Option<Vec<u8>>,
    framing: Framing,
) -> bool
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let input = async {
        let detached = match &detach {
            Some(keys) if !keys.is_empty() => copy_escapable(&mut cr, &mut sw, keys).await,
            _ => {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
                false
            }
        };
        if detached {
            return;
        }
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    let output = async {
        copy_output(&mut sr, &mut cw, framing).await;
    };
    let detached = tokio::select! {
        _ = output => false,
        _ = input => true,
    };
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    detached
}

/// Copies input until it ends (false) or the detach keys come (true). The
/// bytes of a partial match are held back and sent once it fails.
async fn copy_escapable<R, W>(from: &mut R, to: &mut W, keys: &[u8]) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 << 10];
    let mut matched = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + matched);
        for &b in &buf[..n] {
            if b == keys[matched] {
                matched += 1;
                if matched == keys.len() {
                    let _ = to.write_all(&out).await;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&keys[..matched]);
            matched = 0;
            if b == keys[0] {
                matched = 1;
            } else {
                out.push(b);
            }
        }
        if to.write_all(&out).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_holds_back_a_partial_match_and_stops_on_a_full_one() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut input: &[u8] = b"ab\x10c\x10\x11never";
            let mut out = Vec::new();
            assert!(copy_escapable(&mut input, &mut out, &[0x10, 0x11]).await);
            assert_eq!(out, b"ab\x10c");
            let mut input: &[u8] = b"plain\x10";
            let mut out = Vec::new();
            assert!(!copy_escapable(&mut input, &mut out, &[0x10, 0x11]).await);
            assert_eq!(out, b"plain");
        });
    }
}
