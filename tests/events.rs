//! `GET /events` under a subscriber that does not read: the engine goes on, the
//! subscriber falls behind the live broadcast, continues from the log, and in
//! the end has every event once, in order.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bollard::query_parameters::TagImageOptionsBuilder;
use common::{client, pull, TestDaemon, TestRegistry};

/// More tags than the socket's buffer, the feed's queue and the broadcast's
/// 256 batches hold together, so the subscriber must lag.
const TAGS: usize = 2500;

#[tokio::test]
async fn a_subscriber_that_does_not_read_lags_then_gets_everything_from_the_log() {
    let reg = TestRegistry::start();
    let d = TestDaemon::start();
    let docker = client(&d);
    let busybox = format!("{}:latest", reg.image("busybox"));
    pull(&docker, &busybox).await.expect("pull");

    let mut stream = UnixStream::connect(d.socket()).expect("connect");
    let filters = "%7B%22event%22%3A%5B%22tag%22%5D%7D";
    write!(
        stream,
        "GET /events?filters={filters} HTTP/1.1\r\nHost: berth\r\n\r\n"
    )
    .expect("request");
    // The subscription is live once the headers came back.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).expect("response head");
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );

    // The engine does not wait for a subscriber that reads nothing.
    let started = Instant::now();
    for i in 0..TAGS {
        let opts = TagImageOptionsBuilder::default()
            .repo("t")
            .tag(&format!("n{i}"))
            .build();
        docker
            .tag_image(&busybox, Some(opts))
            .await
            .unwrap_or_else(|e| panic!("tag {i}: {e}"));
    }
    let tagging = started.elapsed();

    // Now read: every tag once, in order.
    let mut raw = Vec::new();
    let mut names = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 1 << 16];
    while names.len() < TAGS && Instant::now() < deadline {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("reading the stream after {} tags: {e}", names.len()),
        };
        raw.extend_from_slice(&buf[..n]);
        // Take whole lines; keep a partial one for the next read.
        while let Some(end) = raw.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = raw.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if !line.contains("\"Action\":\"tag\"") {
                continue; // chunk framing
            }
            let name = line
                .split("\"name\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string();
            names.push(name);
        }
    }
    let want: Vec<String> = (0..TAGS).map(|i| format!("t:n{i}")).collect();
    assert_eq!(names.len(), TAGS, "tag events received");
    assert_eq!(names, want, "every tag once, in order");
    assert!(
        d.log().contains("fell behind"),
        "the subscriber never lagged ({TAGS} tags in {tagging:?}): the test did not test the fallback"
    );
}
