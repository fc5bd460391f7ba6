//! How much event history the log keeps (`events-retention`): an age, a
//! size, or both; the oldest events beyond either go. The state they made
//! is kept in a snapshot first, so nothing the engine knows is lost: only
//! the history `docker events --since` can reach back through.

use std::time::Duration;

/// `events-retention`, parsed: `age=720h,size=1GB` (either part may be
/// left out; `none` for no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// Without a setting: all history, up to 1 GiB of it.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: None,
            max_bytes: Some(DEFAULT_MAX_BYTES),
        }
    }
}

impl Retention {
    /// Parses `age=DURATION,size=BYTES` (durations as `30d`, `12h`, `90m`,
    /// `45s`; sizes as `512MB`, `1GiB`, `65536`, binary units as dockerd's
    /// memory sizes; `none` lifts a limit).
    pub fn parse(s: &str) -> Result<Retention, String> {
        let mut r = Retention::default();
        if s.trim().is_empty() {
            return Err("empty; expected age=DURATION,size=BYTES".into());
        }
        for part in s.split(',').map(str::trim) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value (age=DURATION, size=BYTES)"))?;
            let none = value.eq_ignore_ascii_case("none");
            match key {
                "age" if none => r.max_age = None,
                "age" => r.max_age = Some(parse_duration(value)?),
                "size" if none => r.max_bytes = None,
                "size" => r.max_bytes = Some(parse_size(value)?),
                other => return Err(format!("unknown key {other:?} (age, size)")),
            }
        }
        Ok(r)
    }

    /// How often the log is checked against it: a minute, or more often
    /// for an age shorter than four minutes (tests, demos).
    pub fn check_every(&self) -> Duration {
        let minute = Duration::from_secs(60);
        match self.max_age {
            Some(age) => (age / 4).clamp(Duration::from_secs(1), minute),
            None => minute,
        }
    }

    /// The first sequence to keep, for a log holding `first..=last` in
    /// about `bytes`, whose first event at or after `now - age` is
    /// `first_young` (None: every event is older). Never past `last`: the
    /// newest event tells where the log goes on.
    pub fn keep_from(&self, first: u64, last: u64, bytes: u64, first_young: Option<u64>) -> u64 {
        if last == 0 || first > last {
            return first;
        }
        let mut keep = first;
        if self.max_age.is_some() {
            keep = keep.max(first_young.unwrap_or(last));
        }
        if let Some(max) = self.max_bytes.filter(|m| bytes > *m) {
            // Events are alike in size: drop the share over 90% of the limit.
            let count = last - first + 1;
            let per_event = (bytes / count).max(1);
            let over = bytes - max * 9 / 10;
            keep = keep.max(first + over.div_ceil(per_event));
        }
        keep.min(last)
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s, "age", "30d, 12h, 90m")?;
    let secs = match unit.as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid age {s:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s, "size", "512MB, 1GB")?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unit must be B, KB, MB, GB or TB"
            ))
        }
    };
    Ok(n.saturating_mul(1 << shift))
}

/// `30d` -> (30, "d"); the number must be more than 0.
fn number_and_unit(s: &str, what: &str, examples: &str) -> Result<(u64, String), String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid {what} {s:?} (e.g. {examples})"))?;
    if n == 0 {
        return Err(format!(
            "invalid {what} {s:?}: must be more than 0 (or none)"
        ));
    }
    Ok((n, s[digits.len()..].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_age_size_and_none() {
        let r = Retention::parse("age=30d,size=512MB").expect("valid");
        assert_eq!(r.max_age, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(r.max_bytes, Some(512 << 20));
        let r = Retention::parse("age=90m").expect("valid");
        assert_eq!(r.max_age, Some(Duration::from_secs(5400)));
        assert_eq!(r.max_bytes, Some(DEFAULT_MAX_BYTES));
        let r = Retention::parse("size=none").expect("valid");
        assert_eq!(r.max_bytes, None);
        assert_eq!(
            Retention::parse("size=1GiB").expect("valid").max_bytes,
            Some(1 << 30)
        );
        assert_eq!(
            Retention::parse("size=65536").expect("valid").max_bytes,
            Some(65536)
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "age",
            "age=10",
            "age=10w",
            "age=0s",
            "size=1XB",
            "size=-1",
            "color=red",
        ] {
            assert!(Retention::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn keeps_from_the_first_young_event_and_under_the_size() {
        let age = Retention::parse("age=1h,size=none").expect("valid");
        assert_eq!(age.keep_from(1, 100, 0, Some(40)), 40);
        // All old: the newest stays.
        assert_eq!(age.keep_from(1, 100, 0, None), 100);
        let size = Retention::parse("size=1000").expect("valid");
        // 100 events of 20 bytes: down to 900 bytes, 45 events.
        assert_eq!(size.keep_from(1, 100, 2000, None), 56);
        assert_eq!(size.keep_from(1, 100, 900, None), 1);
        // Both: the later cut wins.
        let both = Retention::parse("age=1h,size=1000").expect("valid");
        assert_eq!(both.keep_from(1, 100, 2000, Some(80)), 80);
        assert_eq!(both.keep_from(1, 100, 2000, Some(10)), 56);
    }

    #[test]
    fn checks_often_enough_for_a_short_age() {
        assert_eq!(
            Retention::parse("age=8s").expect("valid").check_every(),
            Duration::from_secs(2)
        );
        assert_eq!(
            Retention::parse("age=1h").expect("valid").check_every(),
            Duration::from_secs(60)
        );
        assert_eq!(Retention::default().check_every(), Duration::from_secs(60));
    }
}
