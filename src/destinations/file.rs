//! `kind: file`: each rendered payload written to a folder, atomically (temp file, fsync,
//! rename), named after conversation, version and destination.

use super::{BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared};
use crate::config::FileSettings;
use crate::render::RenderError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file destination.
pub struct FileDestination {
    name: String,
    settings: FileSettings,
    shared: Shared,
}

impl FileDestination {
    /// Builds the destination.
    pub fn new(name: &str, settings: &FileSettings, shared: Shared) -> Self {
        Self {
            name: name.to_string(),
            settings: settings.clone(),
            shared,
        }
    }

    /// `<dir>/<key>-v<version>-<destination>.json`, with unusual characters replaced.
    fn path(&self, job: &Job<'_>) -> PathBuf {
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let file = format!(
            "{}-v{}-{}.json",
            safe(&job.conversation.key),
            job.conversation.version,
            safe(&self.name)
        );
        Path::new(&self.settings.dir).join(file)
    }
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Destination for FileDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        let body = self
            .shared
            .renderer
            .render(&self.settings.template, job.context)?;
        Ok(vec![Request {
            method: "WRITE".into(),
            url: self.path(job).display().to_string(),
            headers: Vec::new(),
            body,
        }])
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let request = self
                .requests(job)?
                .pop()
                .ok_or_else(|| DeliveryError::Permanent {
                    reason: "nothing was rendered".into(),
                    status: None,
                    excerpt: None,
                })?;
            let path = PathBuf::from(&request.url);
            let written = tokio::task::spawn_blocking(move || {
                write_atomically(&path, request.body.as_bytes()).map(|_| path)
            })
            .await
            .map_err(|e| DeliveryError::Retryable {
                reason: format!("file writer stopped: {e}"),
                status: None,
                retry_after: None,
                excerpt: None,
            })?
            .map_err(|e| DeliveryError::Retryable {
                reason: format!("cannot write file: {e}"),
                status: None,
                retry_after: None,
                excerpt: None,
            })?;
            Ok(Delivered {
                status: None,
                excerpt: None,
                result: Some(serde_json::json!({ "file": written }).to_string()),
            })
        })
    }
}
