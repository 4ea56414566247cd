//! Problems of a configuration: each names the file, the line where the key stands, and the
//! dotted key, and all of them are reported together.

use std::fmt;
use std::path::Path;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line in the file, when the key stands in it.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `destinations.archive.url`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The configuration file.
    pub file: String,
    /// What is wrong, in file order where known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(key) = &p.key {
                write!(f, ": {key}")?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            problems: vec![Problem {
                line: None,
                key: None,
                message: message.into(),
            }],
        }
    }
}

/// Collects problems and places each key on its line in the file's text.
pub struct Problems<'a> {
    text: &'a str,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    /// An empty list for the given file text.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            list: Vec::new(),
        }
    }
    /// Records a problem with `key` (dotted path).
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.list.push(Problem {
            line: find_line(self.text, key),
            key: Some(key.to_string()),
            message: message.into(),
        });
    }
    /// How many problems were recorded so far.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether nothing was recorded so far.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// `Ok` when nothing was recorded.
    pub fn finish(mut self, file: &Path) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            return Ok(());
        }
        self.list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(ConfigError {
            file: file.display().to_string(),
            problems: self.list,
        })
    }
}

/// The 1-based line on which the dotted `key` stands in the YAML `text`, or the line of its
/// nearest ancestor that stands there.
pub fn find_line(text: &str, key: &str) -> Option<usize> {
    let wanted: Vec<&str> = key
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .filter(|p| !p.is_empty())
        .collect();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - content.len();
        let mut content = content;
        while let Some(rest) = content.strip_prefix("- ") {
            indent += 2;
            content = rest.trim_start();
        }
        let Some(name) = key_of(content) else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, name));
        let depth = stack
            .iter()
            .zip(&wanted)
            .take_while(|((_, have), want)| have == *want)
            .count();
        if depth == stack.len() && best.is_none_or(|(d, _)| depth > d) {
            best = Some((depth, number + 1));
        }
    }
    best.map(|(_, line)| line)
}

fn key_of(content: &str) -> Option<String> {
    let colon = content.find(':')?;
    let after = &content[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    let key = content[..colon]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_for_nested_keys() {
        let text =
            "server:\n  listen: x\ndestinations:\n  archive:\n    kind: webhook\n    urll: y\n";
        assert_eq!(find_line(text, "destinations.archive.urll"), Some(6));
        assert_eq!(find_line(text, "server.listen"), Some(2));
        assert_eq!(find_line(text, "destinations.archive.url"), Some(4));
        assert_eq!(find_line(text, "store.url"), None);
    }
}
