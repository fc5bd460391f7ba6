//! Exec instances of a running container (`docker exec`), handled by its
//! ContainerActor: create checks the container and records the instance;
//! start has the shim run it and joins its stream to the client, or drops the
//! output when detached. The exit code reaches the registry when the output
//! ends. A start that fails once the client's connection is hijacked is told
//! in that stream, in dockerd's words, with ExitCode 126.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use actix::prelude::*;
use bollard_stubs::models::ExecConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::container::{not_running, ClientIo, ContainerActor, Runtime};
use crate::actors::event_log::note_container;
use crate::containers::exec::{self, ExecRecord};
use crate::drivers::exec::proto::exec_words;
use crate::drivers::exec::proto::{frame, ExitStatus, Request, EXEC_DIR, STDOUT};
use crate::drivers::exec::{bundle, client, spec};
use crate::error::{Error, Result};

impl ContainerActor {
    /// Exec needs the container running and not paused (dockerd's 409s).
    fn exec_allowed(&self) -> Result<()> {
        match self.running() {
            None => Err(not_running(&self.id)),
            Some((_, true)) => Err(Error::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                self.id
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// POST /containers/{id}/exec: the new exec's ID.
#[derive(Message)]
#[rtype(result = "Result<String>")]
pub struct CreateExec(pub ExecConfig);

impl Handler<CreateExec> for ContainerActor {
    type Result = Result<String>;

    fn handle(&mut self, msg: CreateExec, _: &mut Context<Self>) -> Self::Result {
        let rec = ExecRecord::from_config(&self.id, msg.0)?;
        self.exec_allowed()?;
        let id = rec.id.clone();
        note_container(
            &self.rt.events,
            &self.id,
            format!("exec_create: {}", exec_command(&rec.cmd)),
            vec![("execID".into(), id.clone())],
        );
        self.rt.execs.insert(rec);
        Ok(id)
    }
}

/// The client's end of an attached exec, once there is one: the hijacked
/// connection after `101 UPGRADED` (None if the client left first), or a
/// pipe into a plain response body.
pub type ClientIoFuture = Pin<Box<dyn Future<Output = Option<ClientIo>> + Send>>;

pub enum ExecIo {
    Detached,
    Attached(ClientIoFuture),
}

/// POST /exec/{id}/start. Checks are answered before any stream: detached,
/// the answer waits for the process to start; attached, the process starts
/// once the client's stream is there.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct StartExec {
    pub exec_id: String,
    pub io: ExecIo,
    /// The start request's Tty: the output's framing follows it.
    pub tty: Option<bool>,
}

impl Handler<StartExec> for ContainerActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: StartExec, _: &mut Context<Self>) -> Self::Result {
        let checked = self
            .exec_allowed()
            .and_then(|()| self.rt.execs.begin(&msg.exec_id));
        let rec = match checked {
            Ok(rec) => rec,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        note_container(
            &self.rt.events,
            &self.id,
            format!("exec_start: {}", exec_command(&rec.cmd)),
            vec![("execID".into(), rec.id.clone())],
        );
        let rt = self.rt.clone();
        match msg.io {
            ExecIo::Detached => Box::pin(async move {
                let stream = start(&rt, &rec, false).await?;
                tokio::spawn(finish(rt, rec.container_id.clone(), rec.id, stream, None));
                Ok(())
            }),
            ExecIo::Attached(io) => {
                tokio::spawn(async move {
                    let Some(io) = io.await else { return };
                    match start(&rt, &rec, true).await {
                        Ok(stream) => {
                            // As for attach: the keys end a tty's stream only.
                            let detach = (rec.tty && rec.attach_stdin)
                                .then(|| {
                                    crate::containers::exec::parse_detach_keys(&rec.detach_keys)
                                        .ok()
                                })
                                .flatten();
                            let framing = client::Framing::of(rec.tty, msg.tty);
                            let io = Some((io, detach, framing));
                            finish(rt, rec.container_id.clone(), rec.id, stream, io).await
                        }
                        Err(e) => {
                            rt.execs.ended(&rec.id, 126);
                            tell_failure(io, msg.tty.unwrap_or(rec.tty), e.message()).await;
                        }
                    }
                });
                Box::pin(std::future::ready(Ok(())))
            }
        }
    }
}

/// Has the shim start the exec; its stream (the reply read) on success.
async fn start(rt: &Runtime, rec: &ExecRecord, attached: bool) -> Result<UnixStream> {
    let dir = rt.bundle_dir(&rec.container_id);
    let spec: serde_json::Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| not_running(&rec.container_id))?;
    let user = if rec.user.is_empty() {
        None
    } else {
        let rootfs = PathBuf::from(spec["root"]["path"].as_str().unwrap_or_default());
        Some(spec::resolve_user(
            &rec.user,
            &bundle::read_in_root(&rootfs, "etc/passwd"),
            &bundle::read_in_root(&rootfs, "etc/group"),
        )?)
    };
    let req = Request::Exec {
        exec_id: rec.id.clone(),
        process: exec::process(&spec["process"], rec, user)?,
        stdin: attached && rec.attach_stdin,
        stdout: attached && rec.attach_stdout,
        stderr: attached && rec.attach_stderr,
    };
    let (reply, stream) = client::request(&dir, &req).await?;
    if !reply.error.is_empty() {
        return Err(Error::invalid(exec_words(&reply.error)));
    }
    rt.execs.running(&rec.id, reply.pid);
    Ok(stream)
}

/// Streams (or drains) an exec's output until it ends, then records its code.
async fn finish(
    rt: Runtime,
    container_id: String,
    exec_id: String,
    mut stream: UnixStream,
    io: Option<(ClientIo, Option<Vec<u8>>, client::Framing)>,
) {
    let detached = match io {
        Some((io, detach, framing)) => client::splice_framed(io, stream, detach, framing).await,
        None => {
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
            false
        }
    };
    let bundle = rt.bundle_dir(&container_id);
    let exit = exit_file(&bundle, &exec_id);
    // A client that detached left the exec running: its end comes later.
    while detached && !exit.exists() && bundle.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status: Option<ExitStatus> = std::fs::read(&exit)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let _ = std::fs::remove_file(&exit);
    // No status: the shim went with the container (killed with it).
    let code = status.map_or(137, |s| s.exit_code as i64);
    note_container(
        &rt.events,
        &container_id,
        "exec_die".into(),
        vec![
            ("execID".into(), exec_id.clone()),
            ("exitCode".into(), code.to_string()),
        ],
    );
    rt.execs.ended(&exec_id, code);
}

/// dockerd's words for an exec's command in its events: the program, a
/// space, the arguments joined ("true " for a bare `true`).
fn exec_command(cmd: &[String]) -> String {
    match cmd.split_first() {
        Some((prog, args)) => format!("{prog} {}", args.join(" ")),
        None => " ".into(),
    }
}

fn exit_file(bundle_dir: &Path, exec_id: &str) -> PathBuf {
    bundle_dir.join(EXEC_DIR).join(format!("{exec_id}.exit"))
}

/// dockerd's way to tell a failed start in a hijacked stream: the words and
/// CRLF on stdout, framed unless there is a tty.
async fn tell_failure(mut io: ClientIo, tty: bool, message: &str) {
    let text = format!("{message}\r\n");
    let mut bytes = Vec::new();
    if tty {
        bytes.extend_from_slice(text.as_bytes());
    } else {
        frame(STDOUT, text.as_bytes(), &mut bytes);
    }
    let _ = io.write_all(&bytes).await;
    let _ = io.shutdown().await;
}
