//! Exec and stdin end to end through bollard: the hijacked exec stream with
//! stdin and separated stdout/stderr, exit codes in inspect, and the refusals
//! dockerd makes (a second start, a stopped container, an empty command).

mod common;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::Docker;
use common::{client, pull, TestDaemon, TestRegistry};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// Runs an attached exec; (stdout, stderr) as the multiplexed frames said.
async fn exec(
    docker: &Docker,
    id: &str,
    cmd: &[&str],
    stdin: Option<&[u8]>,
) -> (String, String, String) {
    let e = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let started = docker
        .start_exec(&e.id, None::<StartExecOptions>)
        .await
        .expect("start exec");
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        panic!("not attached");
    };
    if let Some(data) = stdin {
        input.write_all(data).await.expect("stdin");
        input.shutdown().await.expect("close stdin");
    }
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(item) = output.next().await {
        match item.expect("exec output") {
            LogOutput::StdOut { message } => out.push_str(&String::from_utf8_lossy(&message)),
            LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    (e.id, out, err)
}

#[tokio::test]
async fn exec_streams_stdin_and_both_outputs_and_records_the_exit() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let busybox = reg.image("busybox");
    pull(&docker, &busybox).await.expect("pull");
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(busybox.clone()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("create")
        .id;
    docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start");

    let (exec_id, out, err) = exec(
        &docker,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
    )
    .await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let i = docker.inspect_exec(&exec_id).await.expect("inspect exec");
    assert_eq!(i.exit_code, Some(3));
    assert_eq!(i.running, Some(false));
    assert_eq!(i.container_id.as_deref(), Some(id.as_str()));

    // Stdin reaches the process and its end is the process's EOF.
    let (_, out, _) = exec(&docker, &id, &["wc", "-c"], Some(&[b'x'; 100_000])).await;
    assert_eq!(out.trim(), "100000");

    // A second start of the same exec is refused.
    let again = docker.start_exec(&exec_id, None::<StartExecOptions>).await;
    assert!(again.is_err(), "a second start was accepted");

    // An empty command is a bad request.
    let empty = docker
        .create_exec(
            &id,
            CreateExecOptions::<String> {
                cmd: Some(vec![]),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            empty,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400,
                ..
            })
        ),
        "{empty:?}"
    );

    // A missing binary: dockerd's words in the stream, exit code 126.
    let (exec_id, out, _) = exec(&docker, &id, &["nosuchbinary"], None).await;
    assert!(out.contains("executable file not found"), "{out:?}");
    assert_eq!(
        docker
            .inspect_exec(&exec_id)
            .await
            .expect("inspect")
            .exit_code,
        Some(126)
    );

    docker
        .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .expect("kill");
    let mut waited =
        docker.wait_container(&id, None::<bollard::query_parameters::WaitContainerOptions>);
    let _ = waited.next().await;
    let stopped = docker
        .create_exec(
            &id,
            CreateExecOptions {
                cmd: Some(vec!["true"]),
                ..Default::default()
            },
        )
        .await;
    match stopped {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) => {
            assert_eq!(status_code, 409);
            assert!(message.contains("is not running"), "{message}");
        }
        other => panic!("exec in a stopped container: {other:?}"),
    }
    let unknown = docker.inspect_exec("nosuchexec").await;
    assert!(
        matches!(
            unknown,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{unknown:?}"
    );
}
