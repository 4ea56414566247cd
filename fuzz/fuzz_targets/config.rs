//! Configuration text: loading gives settings or an error that names the file, never a
//! panic. `x_file` keys are renamed first: they would read the fuzzing machine's files.
#![no_main]

use deskbridge::config::from_text;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.replace("_file", "_fiel");
    let env = [("FUZZ_TOKEN".to_string(), "token".to_string())];
    if let Err(e) = from_text(Path::new("fuzz.yaml"), &text, env.into_iter()) {
        assert!(!e.problems.is_empty());
        assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
    }
});
