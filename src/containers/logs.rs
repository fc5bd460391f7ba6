//! The json-file log as the shim writes it (one JSON object per line: log,
//! stream, time), read back for `docker logs` and attach, and the multiplexed
//! stream framing dockerd uses when there is no tty.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// stdin 0, stdout 1, stderr 2, as the header's first byte says.
pub fn stream_id(stream: &str) -> u8 {
    match stream {
        "stdin" => 0,
        "stderr" => 2,
        _ => 1,
    }
}

/// One frame of the multiplexed stream: [stream, 0, 0, 0, size BE u32] + bytes.
pub fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + bytes.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Complete entries written after byte `offset`; returns them and the offset
/// after the last complete line (a line being written is read next time).
pub fn read_from(path: &Path, offset: u64) -> (Vec<Entry>, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (Vec::new(), offset);
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return (Vec::new(), offset);
    }
    let complete = buf
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let entries = buf[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    (entries, offset + complete as u64)
}

/// The files `<log>.N` … `<log>.1` that rotation left, oldest first.
pub fn rotated(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for n in 1.. {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = std::path::PathBuf::from(p);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out
}

/// Every entry of a log, its rotated files first; and the offset reached in
/// the current file.
pub fn read_all(path: &Path) -> (Vec<Entry>, u64) {
    let mut entries = Vec::new();
    for p in rotated(path) {
        entries.extend(read_from(&p, 0).0);
    }
    let (current, offset) = read_from(path, 0);
    entries.extend(current);
    (entries, offset)
}

/// Entries after `offset` for a follower: when the log was rotated under
/// it (it is now shorter), the rest of the file it read (now `<log>.1`)
/// comes first, then the new file from its start.
pub fn follow_from(path: &Path, offset: u64) -> (Vec<Entry>, u64) {
    if size_of(path) < offset {
        let mut first = path.as_os_str().to_owned();
        first.push(".1");
        let (mut entries, _) = read_from(Path::new(&first), offset);
        let (more, next) = read_from(path, 0);
        entries.extend(more);
        return (entries, next);
    }
    read_from(path, offset)
}

/// How `docker logs` (without --follow) wants the log.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub tty: bool,
    pub timestamps: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub tail: Option<usize>,
}

/// One json-file line, borrowed from the file's bytes where it can be.
#[derive(Deserialize)]
struct EntryRef<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
}

/// Writes the whole log (rotated files first) as `q` asks, entry by entry
/// as it is read, so the client starts on the first lines while the rest
/// are parsed; with `tail`, only the last entries (kept as they go).
pub fn write_log(path: &Path, q: &Query, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut files = rotated(path);
    files.push(path.to_path_buf());
    let mut kept: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut rendered = Vec::with_capacity(256);
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        for line in bytes[..complete]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let Ok(e) = serde_json::from_slice::<EntryRef<'_>>(line) else {
                continue;
            };
            let wanted = if e.stream == "stderr" {
                q.stderr
            } else {
                q.stdout
            };
            if !wanted {
                continue;
            }
            if q.since.is_some() || q.until.is_some() {
                let t = crate::clock::parse_rfc3339_ns(&e.time).unwrap_or(0);
                if q.since.is_some_and(|s| t < s) || q.until.is_some_and(|u| t > u) {
                    continue;
                }
            }
            rendered.clear();
            let text_len = e.log.len() + if q.timestamps { e.time.len() + 1 } else { 0 };
            if !q.tty {
                rendered.extend_from_slice(&[stream_id(&e.stream), 0, 0, 0]);
                rendered.extend_from_slice(&(text_len as u32).to_be_bytes());
            }
            if q.timestamps {
                rendered.extend_from_slice(e.time.as_bytes());
                rendered.push(b' ');
            }
            rendered.extend_from_slice(e.log.as_bytes());
            match q.tail {
                Some(0) => {}
                Some(n) => {
                    if kept.len() == n {
                        kept.pop_front();
                    }
                    kept.push_back(rendered.clone());
                }
                None => out.write_all(&rendered)?,
            }
        }
    }
    for r in kept {
        out.write_all(&r)?;
    }
    out.flush()
}

pub fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Renders entries for the client: framed without a tty, raw with one;
/// `timestamps` prefixes each line with its time, as `docker logs -t`.
pub fn render(
    entries: &[Entry],
    tty: bool,
    timestamps: bool,
    stdout: bool,
    stderr: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let wanted = if e.stream == "stderr" { stderr } else { stdout };
        if !wanted {
            continue;
        }
        let text = if timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if tty {
            out.extend_from_slice(text.as_bytes());
        } else {
            out.extend(frame(stream_id(&e.stream), text.as_bytes()));
        }
    }
    out
}

/// Keeps the entries `docker logs` asks for: between `since` and `until` (ns),
/// then the last `tail` of them.
pub fn select(
    entries: &mut Vec<Entry>,
    since: Option<i64>,
    until: Option<i64>,
    tail: Option<usize>,
) {
    if since.is_some() || until.is_some() {
        entries.retain(|e| {
            let t = crate::clock::parse_rfc3339_ns(&e.time).unwrap_or(0);
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
        });
    }
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
}

/// dockerd's refusal to read the log of a container whose driver keeps none.
pub fn check_readable(
    body: &bollard_stubs::models::ContainerCreateBody,
) -> crate::error::Result<()> {
    let driver = body
        .host_config
        .as_ref()
        .and_then(|h| h.log_config.as_ref())
        .and_then(|l| l.typ.as_deref())
        .unwrap_or_default();
    if driver == "none" {
        return Err(crate::error::Error::not_implemented(
            "configured logging driver does not support reading",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_log_matches_render_select_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.json");
        std::fs::write(
            dir.path().join("l.json.1"),
            "{\"log\":\"old\\n\",\"stream\":\"stdout\",\"time\":\"2020-01-01T00:00:00Z\"}\n",
        )
        .unwrap();
        std::fs::write(&p, "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2020-01-01T00:00:01Z\"}\n{\"log\":\"b\\n\",\"stream\":\"stderr\",\"time\":\"2020-01-01T00:00:02Z\"}\n").unwrap();
        let q = Query {
            tty: false,
            timestamps: true,
            stdout: true,
            stderr: true,
            since: None,
            until: None,
            tail: None,
        };
        let mut out = Vec::new();
        write_log(&p, &q, &mut out).unwrap();
        let (mut entries, _) = read_all(&p);
        assert_eq!(out, render(&entries, false, true, true, true));
        let mut out = Vec::new();
        write_log(
            &p,
            &Query {
                tail: Some(2),
                timestamps: false,
                ..q
            },
            &mut out,
        )
        .unwrap();
        select(&mut entries, None, None, Some(2));
        assert_eq!(out, render(&entries, false, false, true, true));
        let mut out = Vec::new();
        write_log(
            &p,
            &Query {
                tty: true,
                timestamps: false,
                stderr: false,
                since: Some(1_577_836_801_000_000_000),
                ..q
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"a\n");
    }

    #[test]
    fn frames_and_partial_lines() {
        assert_eq!(
            frame(1, b"hi\n"),
            [1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.json");
        std::fs::write(
            &p,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t1\"}\n{\"log\":\"b\\n\",\"stream\":\"stderr\",\"time\":\"t2\"}\n{\"log\":\"partial",
        )
        .unwrap();
        let (entries, off) = read_from(&p, 0);
        assert_eq!(entries.len(), 2);
        assert_eq!(read_from(&p, off).0.len(), 0);
        assert_eq!(render(&entries, true, true, true, false), b"t1 a\n");
    }

    #[test]
    fn since_until_and_tail() {
        let e = |t: &str| Entry {
            log: "x\n".into(),
            stream: "stdout".into(),
            time: t.into(),
        };
        let mut v = vec![
            e("2026-01-01T00:00:01.5Z"),
            e("2026-01-01T00:00:02Z"),
            e("2026-01-01T00:00:03Z"),
        ];
        let since = crate::clock::parse_timestamp_ns("2026-01-01T00:00:02Z");
        select(&mut v, since, None, None);
        assert_eq!(v.len(), 2);
        select(&mut v, None, None, Some(1));
        assert_eq!(v[0].time, "2026-01-01T00:00:03Z");
    }
}
