//! Small helpers shared by the layers: edit-distance suggestions and whole-or-nothing file
//! writes.

use std::io::Write;
use std::path::Path;

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible misspelling.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The one candidate that `name` abbreviates word by word (words split at `_`): each word of
/// `name` is a prefix of the candidate's next word, or the initials of its next few words, and
/// every word of both is used (`shadow_rw_fields` for `shadow_read_write_fields`). `None` when
/// no candidate or more than one matches.
pub fn suggest_abbreviation<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn abbreviates(short: &[&str], long: &[&str]) -> bool {
        let Some((first, rest)) = short.split_first() else { return long.is_empty() };
        if first.is_empty() {
            return false;
        }
        if long.first().is_some_and(|w| w.starts_with(first)) && abbreviates(rest, &long[1..]) {
            return true;
        }
        let n = first.len();
        n >= 2
            && long.len() >= n
            && long[..n].iter().zip(first.chars()).all(|(w, c)| w.starts_with(c))
            && abbreviates(rest, &long[n..])
    }
    let short: Vec<&str> = name.split('_').collect();
    let mut found = candidates.into_iter().filter(|c| abbreviates(&short, &c.split('_').collect::<Vec<_>>()));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename,
/// so a reader never sees half a file and an interrupted run loses nothing that was there.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let c = ["GUEST_RIP", "GUEST_RSP", "HOST_RIP"];
        assert_eq!(suggest("GUEST_RIPP", c), Some("GUEST_RIP"));
        assert_eq!(suggest("completely_else", c), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_expansions_of_abbreviations() {
        let c = ["shadow_read_write_fields", "shadow_read_write_fields_source", "shadow_read_only_fields"];
        assert_eq!(suggest_abbreviation("shadow_rw_fields", c), Some("shadow_read_write_fields"));
        assert_eq!(suggest_abbreviation("shadow_ro_fields", c), Some("shadow_read_only_fields"));
        assert_eq!(suggest_abbreviation("sh_r_w_f", c), Some("shadow_read_write_fields"));
        assert_eq!(suggest_abbreviation("shadow_fields", c), None);
        assert_eq!(suggest_abbreviation("shadow", ["shadow_a", "shadow_b"]), None);
    }
}
