//! Settings of `kind: file` and their checks.

use super::FileDestination;
use crate::config::{Common, Problems, RateLimit};
use crate::destinations::registry::{self, BuildContext, Kind, KindSettings, SecretKey};
use crate::destinations::Destination;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Longest name of a file destination, so that its file names stay within 255 bytes.
const MAX_FILE_DESTINATION_NAME: usize = 100;

/// `kind: file`.
pub struct FileKind;

impl Kind for FileKind {
    fn name(&self) -> &str {
        "file"
    }
    fn secret_keys(&self) -> &[SecretKey] {
        &[]
    }
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        registry::parse_own::<FileSettings>(own, at, out)
    }
}

/// The own keys of `kind: file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Template path under `templates.dir`.
    #[serde(default = "crate::destinations::webhook::default_template")]
    pub template: String,
    /// Folder the files are written to (created when missing).
    pub dir: String,
}

impl KindSettings for FileSettings {
    fn kind(&self) -> &str {
        "file"
    }

    fn validate(&self, name: &str, at: &str, out: &mut Problems) {
        if self.dir.trim().is_empty() {
            out.add(&format!("{at}.dir"), "must name a folder");
        }
        if name.len() > MAX_FILE_DESTINATION_NAME {
            out.add(
                at,
                format!("a file destination's name is part of every file it writes: at most {MAX_FILE_DESTINATION_NAME} characters"),
            );
        }
    }

    fn templates(&self) -> Vec<(String, &str)> {
        vec![("template".into(), &self.template)]
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        Vec::new()
    }

    fn lane_rate(&self, common: &Common) -> Option<RateLimit> {
        common.rate_limit
    }

    fn build(&self, name: &str, _: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        Arc::new(FileDestination::new(name, self, cx.shared.clone()))
    }
}
