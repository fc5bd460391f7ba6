//! A process's RSS without the code pages only its start touched.

/// Drops this process's mappings of its own executable's pages that were
/// never written (code, relocation tables, read-only data): setup (spawning
/// the runtime, receiving the pty, parsing the config) touched far more of
/// them than the loop ever reads again, and every page touched stays in RSS.
/// Such pages are the file's own, so they fault back in from the page cache
/// when used. A mapping with any written (anonymous) page, such as data or the
/// relocated RELRO, is left alone: dropping it would lose what was written.
/// One shim runs per container: this is most of its RSS; in the daemon, the
/// start's code (the log's replay, RocksDB's open, the flags) is most of it.
pub fn shed_code_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [range, perms, _, _, _, path, ..] = fields.as_slice() {
            current = None;
            if perms.starts_with('r') && !perms.contains('w') && std::path::Path::new(path) == exe {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        current = Some((a, b));
                    }
                }
            }
            continue;
        }
        if let (Some((a, b)), ["Anonymous:", kb, ..]) = (current, fields.as_slice()) {
            current = None;
            if *kb != "0" {
                continue;
            }
            // SAFETY: a private file mapping none of whose pages was written:
            // dropping them only makes the next access read the file again.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
            }
        }
    }
}
