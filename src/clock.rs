//! Time, as the whole engine reads and writes it: now in nanoseconds, RFC 3339
//! the way Go's time.Time marshals it, and dockerd's `since`/`until` values. A
//! leaf: it imports nothing of the engine, so every layer may use it.

pub use berth_shim::time::{now_ns, rfc3339};

/// The current time as RFC 3339 with nanoseconds, UTC, as Go's time.Time marshals.
pub fn rfc3339_now() -> String {
    rfc3339(now_ns())
}

/// Seconds since the epoch of an RFC 3339 time ("2019-01-01T00:00:00Z", offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time_end = rest
        .find(|c| c == 'Z' || c == '+' || c == '-')
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss = t
        .next()
        .and_then(|x| x.split('.').next()?.parse::<i64>().ok())
        .unwrap_or(0);
    let offset = match zone.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let mut z = zone[1..].split(':');
            let secs = z.next()?.parse::<i64>().ok()? * 3600
                + z.next().and_then(|x| x.parse::<i64>().ok()).unwrap_or(0) * 60;
            if sign == '+' {
                secs
            } else {
                -secs
            }
        }
        _ => 0,
    };
    // Days from civil (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// An RFC 3339 time in nanoseconds since the epoch, its fraction kept.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    parse_rfc3339(s).map(|secs| secs * 1_000_000_000 + frac_ns(s))
}

/// The fraction of a second after the first '.', in nanoseconds.
fn frac_ns(t: &str) -> i64 {
    t.split_once('.')
        .map(|(_, f)| {
            let digits: String = f
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .take(9)
                .collect();
            format!("{digits:0<9}").parse().unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `since`/`until` as the CLI sends them: unix seconds with a fraction, read
/// exactly (an f64 would round the last digits away and move a bound across
/// an event), or RFC 3339. Nanoseconds.
pub fn parse_timestamp_ns(v: &str) -> Option<i64> {
    if let Some((s, f)) = v.split_once('.') {
        if let (Ok(s), true) = (s.parse::<i64>(), f.chars().all(|c| c.is_ascii_digit())) {
            let frac: String = f.chars().take(9).collect();
            return Some(s * 1_000_000_000 + format!("{frac:0<9}").parse::<i64>().ok()?);
        }
    }
    if let Ok(s) = v.parse::<i64>() {
        return Some(s * 1_000_000_000);
    }
    parse_rfc3339_ns(v)
}

/// `until=` of prune filters and `since`/`until` of events: a Unix time, an RFC 3339 time, or a duration
/// before now (`10m`, `24h`), as dockerd reads it. Returns nanoseconds.
pub fn until_ns(v: &str, now_ns: u64) -> crate::error::Result<u64> {
    let bad = || {
        crate::error::Error::invalid(format!(
            "failed to parse value as time or duration: \"{v}\""
        ))
    };
    if let Some(t) = parse_timestamp_ns(v) {
        return Ok(t.max(0) as u64);
    }
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "ms" => 1e6,
        _ => return Err(bad()),
    };
    Ok(now_ns.saturating_sub((n * scale) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timestamps_exactly() {
        assert_eq!(parse_timestamp_ns("10.5"), Some(10_500_000_000));
        assert_eq!(
            parse_timestamp_ns("1796502135.131476650"),
            Some(1_796_502_135_131_476_650)
        );
        assert_eq!(
            parse_timestamp_ns("2026-01-01T00:00:02.25Z"),
            parse_timestamp_ns("1767225602.25")
        );
        assert_eq!(
            until_ns("1796502135.131476650", 0).ok(),
            Some(1_796_502_135_131_476_650)
        );
        assert_eq!(
            until_ns("10m", 3_600_000_000_000).ok(),
            Some(3_000_000_000_000)
        );
        assert!(until_ns("soon", 0).is_err());
    }

    #[test]
    fn formats_times_like_go() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_764_375_147_019_263_474),
            "2025-11-29T00:12:27.019263474Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn parses_go_times() {
        assert_eq!(parse_rfc3339("2019-01-01T00:00:00Z"), Some(1_546_300_800));
        assert_eq!(
            parse_rfc3339("2019-01-01T01:00:00+01:00"),
            Some(1_546_300_800)
        );
        assert_eq!(
            parse_rfc3339("2019-01-01T00:00:00.123456789Z"),
            Some(1_546_300_800)
        );
    }
}
