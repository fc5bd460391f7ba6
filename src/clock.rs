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

/// `until=` of prune filters: a Unix time, an RFC 3339 time, or a duration
/// before now (`10m`, `24h`), as dockerd reads it. Returns nanoseconds.
pub fn until_ns(v: &str, now_ns: u64) -> crate::error::Result<u64> {
    let bad = || {
        crate::error::Error::invalid(format!(
            "failed to parse value as time or duration: \"{v}\""
        ))
    };
    // "seconds.nanoseconds", as the CLI sends it: exact (an f64 would round
    // the last digits away and move a bound across an event).
    if let Some((secs, frac)) = v.split_once('.').or(Some((v, ""))) {
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if digits(secs) && (frac.is_empty() || (digits(frac) && frac.len() <= 9)) {
            let s: u64 = secs.parse().map_err(|_| bad())?;
            let n: u64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().map_err(|_| bad())?
            };
            return Ok(s.saturating_mul(1_000_000_000).saturating_add(n));
        }
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1e9) as u64);
    }
    if let Some(secs) = parse_rfc3339(v) {
        return Ok(secs.max(0) as u64 * 1_000_000_000);
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
