//! A client's streams: attach (before or after the start) and tty resize.

use actix::prelude::*;
use tracing::warn;

use super::*;
use crate::drivers::exec::proto::Request;
use crate::error::Result;

/// A client's hijacked connection, handed to the container to stream.
pub trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientStream for T {}
pub type ClientIo = Box<dyn ClientStream>;

/// An attach that came before the start: joined to the shim between the
/// container's creation and its start, so no output is missed.
pub(super) struct PendingAttach {
    io: ClientIo,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<Vec<u8>>,
}

/// Joins a client to the main process's stream: the attach request waits
/// until the shim has the client registered (so a start after it misses
/// nothing); the splice then runs on its own.
pub(super) async fn join_attach(dir: &std::path::Path, id: &str, p: PendingAttach) {
    let req = Request::Attach {
        stdin: p.stdin,
        stdout: p.stdout,
        stderr: p.stderr,
    };
    match client::request(dir, &req).await {
        Ok((reply, stream)) if reply.error.is_empty() => {
            tokio::spawn(async move {
                client::splice(p.io, stream, p.detach_keys).await;
            });
        }
        Ok((reply, _)) => warn!(container = %id, error = %reply.error, "attach"),
        Err(e) => warn!(container = %id, error = %e, "attach"),
    }
}

/// Stream the main process to a hijacked client: now if it runs, else at its
/// next start (between creation and start, so nothing it writes is missed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub io: ClientIo,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// What ends the attach and leaves the container running (tty only).
    pub detach_keys: Option<Vec<u8>>,
}

impl Handler<Attach> for ContainerActor {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) {
        let attach = PendingAttach {
            io: msg.io,
            stdin: msg.stdin,
            stdout: msg.stdout,
            stderr: msg.stderr,
            detach_keys: msg.detach_keys,
        };
        crate::actors::event_log::note_container(
            &self.rt.events,
            &self.id,
            "attach".into(),
            Vec::new(),
        );
        if self.running().is_none() || self.starting {
            self.pending_attaches.push(attach);
            return;
        }
        let dir = self.rt.bundle_dir(&self.id);
        let id = self.id.clone();
        tokio::spawn(async move { join_attach(&dir, &id, attach).await });
    }
}

/// Set the tty size of the main process or of an exec.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Resize {
    pub exec_id: Option<String>,
    pub height: u16,
    pub width: u16,
}

impl Handler<Resize> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Resize, _: &mut Context<Self>) -> Self::Result {
        let dir = self.rt.bundle_dir(&self.id);
        let id = self.id.clone();
        let running = self.running().is_some();
        let events = self.rt.events.clone();
        Box::pin(async move {
            if !running {
                return Err(not_running(&id));
            }
            let of_container = msg.exec_id.is_none();
            client::call(
                &dir,
                &Request::Resize {
                    exec_id: msg.exec_id,
                    height: msg.height,
                    width: msg.width,
                },
            )
            .await?;
            // dockerd records the main process's resizes, not an exec's.
            if of_container {
                crate::actors::event_log::note_container(
                    &events,
                    &id,
                    "resize".into(),
                    vec![
                        ("height".into(), msg.height.to_string()),
                        ("width".into(), msg.width.to_string()),
                    ],
                );
            }
            Ok(())
        })
    }
}
