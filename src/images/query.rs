//! Read-side queries over the projection: finding images by name and listing
//! them with dockerd's filters. Pure functions of the state, so API reads never
//! wait on the ImageService.

use crate::error::{Error, Result};
use crate::events::projection::{ImageRecord, State};
use crate::registry::reference::Reference;

/// Finds an image as dockerd does: by tag or digest reference first, then by ID
/// or a unique ID prefix.
pub fn resolve<'a>(state: &'a State, name: &str) -> Result<&'a ImageRecord> {
    let not_found = || Error::not_found(format!("No such image: {name}"));
    if let Ok(r) = Reference::parse(name) {
        if let Some(d) = &r.digest {
            let wanted = format!("{}@{d}", r.familiar_name());
            if let Some(i) = state
                .images
                .values()
                .find(|i| i.repo_digests.contains(&wanted))
            {
                return Ok(i);
            }
        } else {
            let tagged = r
                .clone()
                .with_default_tag()
                .familiar_tagged()
                .unwrap_or_default();
            if let Some(i) = state
                .images
                .values()
                .find(|i| i.repo_tags.contains(&tagged))
            {
                return Ok(i);
            }
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let mut matches = state
        .images
        .values()
        .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex));
    match (matches.next(), matches.next()) {
        (Some(i), None) => Ok(i),
        (Some(_), Some(_)) => Err(Error::invalid(format!("{name}: ambiguous image ID prefix"))),
        _ => Err(not_found()),
    }
}

/// The filters `docker images` sends, parsed.
#[derive(Debug, Default)]
pub struct ImageFilters {
    pub dangling: Option<bool>,
    pub reference: Option<Vec<String>>,
    pub before: Option<String>,
    pub since: Option<String>,
    /// `key` or `key=value`; an image must match all of them.
    pub label: Option<Vec<String>>,
    /// `docker images -a`: a build's intermediate images too.
    pub all: bool,
}

/// Whether `labels` satisfy every `key` / `key=value` filter.
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    filters: &[String],
) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(f.as_str()),
    })
}

/// Images matching `f`, newest first. As dockerd: with a reference filter only
/// the matching names are listed.
pub fn list(
    state: &State,
    f: &ImageFilters,
    labels_of: &dyn Fn(&ImageRecord) -> std::collections::HashMap<String, String>,
) -> Result<Vec<ImageRecord>> {
    let stored_ns = |name: &Option<String>| -> Result<Option<u64>> {
        name.as_deref()
            .map(|n| resolve(state, n).map(|i| i.stored_ns))
            .transpose()
    };
    let (before, since) = (stored_ns(&f.before)?, stored_ns(&f.since)?);
    // An untagged image another was made from is an intermediate one: only
    // `-a` lists it, and it is not dangling (dockerd's rule).
    let parents: std::collections::HashSet<&str> = state
        .images
        .values()
        .map(|i| i.parent.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let untagged = |i: &ImageRecord| i.repo_tags.is_empty() && i.repo_digests.is_empty();
    let intermediate = |i: &ImageRecord| untagged(i) && parents.contains(i.id.as_str());
    let mut images: Vec<ImageRecord> = state
        .images
        .values()
        .filter(|i| f.all || !intermediate(i))
        .filter(|i| {
            f.dangling
                .is_none_or(|d| d == (i.repo_tags.is_empty() && !parents.contains(i.id.as_str())))
        })
        .filter(|i| f.reference.as_ref().is_none_or(|p| matches_reference(i, p)))
        .filter(|i| before.is_none_or(|b| i.stored_ns < b))
        .filter(|i| since.is_none_or(|s| i.stored_ns > s))
        .filter(|i| {
            f.label
                .as_ref()
                .is_none_or(|l| labels_match(&labels_of(i), l))
        })
        .cloned()
        .collect();
    images.sort_by(|a, b| b.stored_ns.cmp(&a.stored_ns));
    if let Some(patterns) = &f.reference {
        for i in &mut images {
            i.repo_tags
                .retain(|t| patterns.iter().any(|p| reference_matches(t, p)));
            i.repo_digests
                .retain(|d| patterns.iter().any(|p| reference_matches(d, p)));
        }
    }
    Ok(images)
}

/// Bytes of `image` in layers that another image uses too (`docker system df`).
pub fn shared_size(state: &State, image: &ImageRecord) -> u64 {
    image
        .chain_ids
        .iter()
        .filter(|c| {
            state
                .images
                .values()
                .filter(|o| o.chain_ids.contains(c))
                .count()
                > 1
        })
        .filter_map(|c| state.layers.get(c))
        .map(|l| l.size)
        .sum()
}

/// Whether one reference (`repo:tag` or `repo@digest`) matches a filter pattern.
fn reference_matches(reference: &str, pattern: &str) -> bool {
    let (repo, tag) = match reference.split_once('@') {
        Some((r, d)) => (r, d),
        None => reference
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((reference, "")),
    };
    let (prepo, ptag) = match pattern.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => match pattern.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (pattern, None),
        },
    };
    glob(prepo, repo) && ptag.is_none_or(|pt| glob(pt, tag))
}

fn matches_reference(image: &ImageRecord, patterns: &[String]) -> bool {
    image
        .repo_tags
        .iter()
        .chain(image.repo_digests.iter())
        .any(|r| patterns.iter().any(|p| reference_matches(r, p)))
}

/// Shell-style `*` matching, enough for reference filters.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len()).any(|i| glob(tail, &s[head.len() + i..]))
        }
    }
}

/// Whether the image's names amount to one (moby's isSingleReference): at most
/// one tag, and digests only of that tag's repository.
pub fn single_reference(image: &ImageRecord) -> bool {
    let repo_of = |r: &str| -> String {
        match r.split_once('@') {
            Some((repo, _)) => repo.to_string(),
            None => r
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map(|(repo, _)| repo.to_string())
                .unwrap_or_else(|| r.to_string()),
        }
    };
    let digest_repos: std::collections::HashSet<String> =
        image.repo_digests.iter().map(|d| repo_of(d)).collect();
    match image.repo_tags.as_slice() {
        [] => digest_repos.len() <= 1,
        [tag] => {
            digest_repos.is_empty()
                || (digest_repos.len() == 1 && digest_repos.contains(&repo_of(tag)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_glob() {
        let i = ImageRecord {
            repo_tags: vec!["busybox:latest".into(), "127.0.0.1:5000/x/y:1".into()],
            ..Default::default()
        };
        assert!(matches_reference(&i, &["busybox".into()]));
        assert!(matches_reference(&i, &["busy*".into()]));
        assert!(matches_reference(&i, &["busybox:lat*".into()]));
        assert!(matches_reference(&i, &["127.0.0.1:5000/x/y:1".into()]));
        assert!(!matches_reference(&i, &["alpine".into()]));
    }

    #[test]
    fn label_filters_need_every_label() {
        let labels: std::collections::HashMap<String, String> =
            [("a".to_string(), "1".to_string()), ("b".into(), "".into())].into();
        assert!(labels_match(&labels, &["a".into()]));
        assert!(labels_match(&labels, &["a=1".into(), "b".into()]));
        assert!(labels_match(&labels, &["b=".into()]));
        assert!(!labels_match(&labels, &["a=2".into()]));
        assert!(!labels_match(&labels, &["a".into(), "c".into()]));
    }
}
