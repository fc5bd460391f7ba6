//! Instruction flags (`--from=x`) checked as buildkit's `BFlags.Parse` does.

/// Whether a flag may be given more than once (`RUN --mount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Once,
    Many,
}

/// The values given for each known flag, in the order of `spec`.
#[derive(Debug, Default)]
pub(crate) struct Values {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Values {
    /// The value of a once-only flag, if given.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.all(name).last().cloned()
    }

    /// All values of a flag, in order.
    pub(crate) fn all(&self, name: &str) -> &[String] {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

/// Checks `words` (each `--name[=value]`) against the allowed flags. The error
/// is dockerd's text.
pub(crate) fn parse(words: &[String], spec: &[(&'static str, Kind)]) -> Result<Values, String> {
    let mut values = Values {
        values: spec.iter().map(|(n, _)| (*n, Vec::new())).collect(),
    };
    for word in words {
        let Some(arg) = word.strip_prefix("--") else {
            return Err(format!("Arg should start with -- : {word}"));
        };
        if arg.is_empty() {
            return Ok(values);
        }
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let Some(i) = spec.iter().position(|(n, _)| *n == name) else {
            return Err(format!("Unknown flag: {name}"));
        };
        let (_, kind) = spec[i];
        let slot = &mut values.values[i].1;
        if kind == Kind::Once && !slot.is_empty() {
            return Err(format!("Duplicate flag specified: {name}"));
        }
        let Some(value) = value else {
            return Err(format!("Missing a value on flag: {name}"));
        };
        slot.push(value.to_string());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const COPY: &[(&str, Kind)] = &[("chown", Kind::Once), ("from", Kind::Once)];

    #[test]
    fn flag_errors_are_dockerds_words() {
        let cases = [
            (vec!["--foo=1"], "Unknown flag: foo"),
            (vec!["--from"], "Missing a value on flag: from"),
            (
                vec!["--from=a", "--from=b"],
                "Duplicate flag specified: from",
            ),
            (vec!["--from=a", "--nope", "--from=b"], "Unknown flag: nope"),
        ];
        for (w, want) in cases {
            assert_eq!(parse(&words(&w), COPY).err().as_deref(), Some(want));
        }
    }

    #[test]
    fn values_are_kept() {
        let v = parse(&words(&["--from=a=b", "--chown="]), COPY);
        let v = match v {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(v.get("from").as_deref(), Some("a=b"));
        assert_eq!(v.get("chown").as_deref(), Some(""));
        let many = parse(
            &words(&["--mount=a", "--mount=b"]),
            &[("mount", Kind::Many)],
        );
        assert_eq!(
            many.map(|v| v.all("mount").to_vec()),
            Ok(words(&["a", "b"]))
        );
    }
}
