//! Reading configuration files (TOML) with errors that name the file, the line and the key,
//! and suggest the intended name for a misspelt one.

use std::fmt;

/// An error in a configuration file or name.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// {0}: {1}
    #[error("{0}: {1}")]
    Io(String, String),
    /// A parse or schema error at a location.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// A value that parsed but is not acceptable.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// A name that is not one of the known ones.
    #[error("unknown {what} `{name}`{}; known: {known}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownName { what: &'static str, name: String, suggestion: Option<String>, known: String },
}

/// Deserializes TOML text, turning serde's error into one with file, line and column, and
/// adding a "did you mean" to unknown-field errors.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let mut message = e.message().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some((name, expected)) = rest.split_once('`') {
                let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
                let suggestion = crate::util::suggest(name, known.iter().copied())
                    .or_else(|| crate::util::suggest_abbreviation(name, known.iter().copied()));
                if let Some(s) = suggestion {
                    message = format!("unknown key `{name}` (did you mean `{s}`?)");
                } else {
                    message = format!("unknown key `{name}`; expected one of {}", known.join(", "));
                }
            }
        }
        ConfigError::Syntax { file: file.to_string(), line, column, message }
    })
}

impl ConfigError {
    /// A short label for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Io(..) => "io",
            ConfigError::Syntax { .. } => "syntax",
            ConfigError::Invalid { .. } => "invalid",
            ConfigError::UnknownName { .. } => "unknown-name",
        }
    }
}

/// Displays a byte count like "256 MiB".
pub struct Bytes(pub u64);
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1 << 30) && self.0 > 0 {
            write!(f, "{} GiB", self.0 >> 30)
        } else if self.0.is_multiple_of(1 << 20) && self.0 > 0 {
            write!(f, "{} MiB", self.0 >> 20)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// Parses a size such as "256M", "1G", "65536", "64KiB".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let idx = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let n: u64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in `{s}` (use K, M or G)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size `{s}` is too large"))
}

/// The text and display name of a model: a built-in one by name (`dir` is where it lives in
/// the repository, for error messages), else a file by path; an unknown name gets a
/// suggestion among the built-in names.
pub fn builtin_or_file(
    builtin: &[(&str, &'static str)],
    dir: &str,
    what: &'static str,
    name_or_path: &str,
) -> Result<(std::borrow::Cow<'static, str>, String), ConfigError> {
    if let Some((n, text)) = builtin.iter().find(|(n, _)| *n == name_or_path) {
        return Ok((std::borrow::Cow::Borrowed(*text), format!("{dir}/{n}.toml")));
    }
    let p = std::path::Path::new(name_or_path);
    if p.exists() {
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Io(p.display().to_string(), e.to_string()))?;
        return Ok((std::borrow::Cow::Owned(text), p.display().to_string()));
    }
    let names: Vec<&str> = builtin.iter().map(|(n, _)| *n).collect();
    Err(ConfigError::UnknownName {
        what,
        name: name_or_path.to_string(),
        suggestion: crate::util::suggest(name_or_path, names.iter().copied()).map(str::to_string),
        known: names.join(", "),
    })
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        iterations: u64,
        warmup: u64,
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = from_toml::<T>("iterations = 1\nwarmpu = 2\n", "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:2:"), "{e}");
        assert!(e.contains("did you mean `warmup`"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
    }
}
