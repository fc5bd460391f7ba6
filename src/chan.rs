//! Bridges between blocking code and async HTTP bodies: a `Write` whose bytes
//! arrive on a channel, and that channel as a body stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

pub type Chunk = std::result::Result<bytes::Bytes, std::io::Error>;

/// A Write (for a blocking thread) that hands what it gets to an async
/// receiver (the HTTP body). Writes fail once the receiver is gone.
pub struct ChannelWriter(pub mpsc::Sender<Chunk>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An mpsc receiver as a Stream.
pub struct ReceiverStream<T>(pub mpsc::Receiver<T>);

impl<T> futures_util::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// A stream of what `produce` writes, run on a blocking thread; an error it
/// returns ends the stream with that error (the client sees a cut body).
pub fn blocking_body<F>(produce: F) -> ReceiverStream<Chunk>
where
    F: FnOnce(&mut dyn std::io::Write) -> crate::error::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut w = std::io::BufWriter::with_capacity(64 << 10, ChannelWriter(tx.clone()));
        let result = produce(&mut w);
        let result = result.and_then(|()| {
            std::io::Write::flush(&mut w)
                .map_err(|e| crate::error::Error::internal(format!("writing: {e}")))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "streaming a body");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    ReceiverStream(rx)
}

/// A Read (for a blocking thread) of the chunks an async task sends; a
/// closed channel is the end of the input, an error chunk an input error.
pub struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: bytes::Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Sends an HTTP body's chunks to a channel, for a ChannelReader.
pub fn forward_body(body: axum::body::Body) -> mpsc::Receiver<Chunk> {
    use futures_util::StreamExt;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}
