//! `kind: file`: each rendered payload written to a folder, atomically (a temporary file
//! created exclusively and owner-only, fsync, rename), named after conversation, version and
//! destination.

mod settings;

pub use settings::{FileKind, FileSettings};

use super::{BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared};
use crate::render::RenderError;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Longest file name (in bytes) common file systems accept.
const NAME_MAX: usize = 255;
/// Hex digits of the key's SHA-256 that tell apart keys whose names were altered.
const HASH_HEX: usize = 16;
/// Attempts at finding an unused temporary file name.
const TEMP_ATTEMPTS: usize = 8;

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

    fn path(&self, job: &Job<'_>) -> PathBuf {
        let file = file_name(&job.conversation.key, job.conversation.version, &self.name);
        Path::new(&self.settings.dir).join(file)
    }
}

/// `<key>-v<version>-<destination>.json`. A key of anything but lower-case letters, digits,
/// `-` and `_`, or too long for the name to stay within [`NAME_MAX`] bytes, is written as a
/// readable part (other characters replaced by `_`, cut to fit) followed by `~` and the start
/// of its SHA-256, so that no two keys share a file, also where file names ignore case.
/// Plain keys hold no `~`, so they never meet an altered one.
pub fn file_name(key: &str, version: i64, destination: &str) -> String {
    let tail = format!("-v{version}-{destination}.json");
    let budget = NAME_MAX.saturating_sub(tail.len());
    let plain = key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plain && !key.is_empty() && key.len() <= budget {
        return format!("{key}{tail}");
    }
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(budget.saturating_sub(HASH_HEX + 1))
        .collect();
    let digest = Sha256::digest(key.as_bytes());
    let hash = crate::text::hex(&digest[..HASH_HEX / 2]);
    format!("{readable}~{hash}{tail}")
}

/// Writes `body` to `path` through a temporary file in the same folder, so that readers see
/// the whole file or none; the temporary file is removed when anything fails.
fn write_atomically(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let (tmp, mut file) = create_temporary(dir)?;
    let written = file
        .write_all(body)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// A new file `.deskbridge-<random>.tmp` in `dir`, created exclusively (`O_CREAT|O_EXCL`: an
/// existing file or a planted symbolic link is never opened) and readable by the owner only.
/// The leading dot and the `.tmp` end keep it out of readers' way until it is renamed.
fn create_temporary(dir: &Path) -> io::Result<(PathBuf, File)> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(format!(".deskbridge-{:016x}.tmp", fastrand::u64(..)));
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused temporary file name",
    ))
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
            secret_path: false,
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
            super::note_sent(&request);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_keep_the_documented_name() {
        assert_eq!(
            file_name("208-55039", 1, "outbox"),
            "208-55039-v1-outbox.json"
        );
        assert_eq!(file_name("0-a_b", 12, "x"), "0-a_b-v12-x.json");
    }

    #[test]
    fn altered_keys_never_share_a_name() {
        let keys = [
            "1-a.b", "1-a_b", "1-a/b", "1-A_B", "1-a~b", "1-a b", "1-á_b", "",
        ];
        let names: std::collections::HashSet<String> =
            keys.iter().map(|k| file_name(k, 1, "d")).collect();
        assert_eq!(names.len(), keys.len(), "{names:?}");
        let name = file_name("1-a.b", 1, "d");
        assert!(
            name.starts_with("1-a_b~") && name.ends_with("-v1-d.json"),
            "{name}"
        );
        assert_eq!(name.len(), "1-a_b~".len() + HASH_HEX + "-v1-d.json".len());
        for name in names.iter().filter(|n| !n.starts_with("1-a_b-")) {
            assert_eq!(name.matches('~').count(), 1, "{name}");
        }
    }

    #[test]
    fn long_keys_fit_the_name_limit() {
        let long = "7".repeat(1000);
        for key in [long.as_str(), &long[..240], &"é".repeat(300)] {
            let name = file_name(key, i64::MAX, "destination-name");
            assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
            assert!(name.ends_with(&format!("-v{}-destination-name.json", i64::MAX)));
        }
        assert_ne!(file_name(&long, 1, "d"), file_name(&long[1..], 1, "d"));
    }

    #[test]
    fn temporary_files_are_exclusive_owner_only_and_removed_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, _file) = create_temporary(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&tmp).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // An existing name (here a planted link) is never opened.
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            assert!(options.open(&link).is_err());
            assert!(!dir.path().join("elsewhere").exists());
        }
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), "x").unwrap();
        assert!(write_atomically(&target, b"body").is_err());
        let temporary: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert_eq!(temporary, vec![tmp], "only the file created above is left");
    }
}
