//! YAML text to the JSON tree that loading layers: the `config` crate's parser, after a check
//! that aliases (`*name`) do not expand a small file into a huge tree.

use serde_json::Value;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};

/// Most values (scalars, lists and maps, each alias counted as all it stands for) a
/// configuration may hold. Real ones hold a few hundred; the parser expands every alias into
/// a copy, so without a limit 300 bytes of nested aliases take gigabytes.
pub const MAX_VALUES: u64 = 100_000;

/// Parses YAML `text` into a tree, or says what is wrong.
pub fn parse(text: &str) -> Result<Value, String> {
    check_expansion(text)?;
    let source = config::File::from_str(text, config::FileFormat::Yaml);
    let built = config::Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| format!("not valid YAML: {e}"))?;
    built
        .try_deserialize::<Value>()
        .map_err(|e| format!("not valid YAML: {e}"))
}

/// Counts the values `text` holds once its aliases are expanded, without expanding them.
/// Syntax errors are left to the parse that follows, which words them better.
fn check_expansion(text: &str) -> Result<(), String> {
    let mut parser = Parser::new_from_str(text);
    // Size of each anchored value, by anchor id.
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    // Lists and maps not closed yet: their anchor id and the count when they opened.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut count: u64 = 0;
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(());
        };
        match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(_, _, anchor, _) => {
                count += 1;
                if anchor > 0 {
                    sizes.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, count));
                count += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop() {
                    if anchor > 0 {
                        sizes.insert(anchor, count - start);
                    }
                }
            }
            Event::Alias(anchor) => {
                count = count.saturating_add(sizes.get(&anchor).copied().unwrap_or(0));
            }
            _ => {}
        }
        if count > MAX_VALUES {
            return Err(format!(
                "line {}: more than {MAX_VALUES} values once the aliases (*name) are expanded",
                mark.line()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/fuzz_targets/config.rs): nine levels of nine aliases, a few
    /// hundred bytes, took more than 2 GB before loading refused or accepted anything.
    #[test]
    fn alias_bombs_are_refused_before_expansion() {
        let mut text = String::from(
            "l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..9 {
            let aliases = vec![format!("*l{}", i - 1); 9].join(",");
            text.push_str(&format!("l{i}: &l{i} [{aliases}]\n"));
        }
        assert!(text.len() < 500);
        let err = parse(&text).unwrap_err();
        assert!(err.contains("more than 100000 values"), "{err}");
        assert!(err.starts_with("line 6:"), "{err}");
    }

    #[test]
    fn modest_aliases_still_work() {
        let text = "base: &base {kind: webhook, url: \"https://x\"}\ncopy: *base\nlist: &l [1, 2]\nagain: *l\n";
        let tree = parse(text).unwrap();
        assert_eq!(tree["copy"]["kind"], "webhook");
        assert_eq!(tree["again"], serde_json::json!([1, 2]));
    }

    #[test]
    fn syntax_errors_come_from_the_parser() {
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.starts_with("not valid YAML"), "{err}");
    }
}
