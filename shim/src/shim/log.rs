//! The json-file log, written by the shim as dockerd's json-file driver writes it.

use super::*;

/// The json-file log, as dockerd's json-file driver writes it.
pub(super) struct JsonLog {
    file: std::fs::File,
    pending: [Vec<u8>; 2],
    rotation: Rotation,
}

/// max-size/max-file: once the log reaches `max_size` it becomes `<log>.1`
/// (older ones shift up, the oldest beyond `max_files` goes), as dockerd's
/// json-file driver rotates after the write that reached the size.
#[derive(Default)]
pub(super) struct Rotation {
    path: PathBuf,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl JsonLog {
    pub(super) fn open(path: &Path, max_size: u64, max_files: u32) -> Result<JsonLog, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("opening the log {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            file,
            pending: [Vec::new(), Vec::new()],
            rotation: Rotation {
                path: path.to_path_buf(),
                size,
                max_size,
                max_files: max_files.max(1),
            },
        })
    }

    pub(super) fn line(&mut self, stream: u8, bytes: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": if stream == STDERR { "stderr" } else { "stdout" },
            "time": crate::time::rfc3339(crate::time::now_ns()),
        });
        let line = format!("{entry}\n");
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.rotation.size += line.len() as u64;
        }
        if self.rotation.max_size > 0 && self.rotation.size >= self.rotation.max_size {
            self.rotate();
        }
    }

    pub(super) fn rotate(&mut self) {
        let r = &mut self.rotation;
        let name = |n: u32| {
            let mut p = r.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if r.max_files > 1 {
            for n in (1..r.max_files - 1).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            let _ = std::fs::rename(&r.path, name(1));
        }
        // With max-file 1 the log starts again empty.
        match std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&r.path)
        {
            Ok(f) => {
                self.file = f;
                r.size = 0;
            }
            Err(_) => r.size = 0,
        }
    }

    /// Takes output of one stream; writes every complete line (and, with
    /// `flush`, the partial rest). dockerd splits very long lines at 16 KiB.
    pub(super) fn write(&mut self, stream: u8, data: &[u8], flush: bool) {
        let k = usize::from(stream == STDERR);
        let mut pending = std::mem::take(&mut self.pending[k]);
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            self.line(stream, &line);
        }
        while pending.len() >= 16 << 10 {
            let part: Vec<u8> = pending.drain(..16 << 10).collect();
            self.line(stream, &part);
        }
        if flush && !pending.is_empty() {
            self.line(stream, &pending);
            pending.clear();
        }
        self.pending[k] = pending;
    }
}
