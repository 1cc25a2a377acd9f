//! The only code that writes files: atomic writes with explicit modes, and private directories.
//!
//! SECURITY: a file is created under a temporary name with its final mode already set, synced,
//! then renamed over the target, so a reader never sees a half-written key or a key that was
//! briefly world-readable.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Mode of directories hardstack creates. (Files get the mode `layout` gives them.)
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

/// Creates `dir` (0700) owned by `uid`, for a server in a container that writes into it
/// through a bind mount; an existing directory must already belong to `uid`.
pub fn ensure_owned_dir(dir: &Path, uid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    ensure_dir(dir)?;
    let owner = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?.uid();
    if owner != uid {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))
            .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)))
            .with_context(|| {
                format!(
                    "{} must belong to uid {uid}, the server's: run hardstack as root, or `sudo install -d -o {uid} -g {uid} -m 0700 {}`",
                    dir.display(),
                    dir.display()
                )
            })?;
    }
    Ok(())
}

/// Creates a new private file (0600) for a caller that streams into it (a download); it must
/// not exist yet.
pub fn create_private(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Sets a file's mode to 0600, or a directory's to 0700: what a tool in a container wrote with
/// its own umask becomes private.
pub fn make_private(path: &Path, directory: bool) -> anyhow::Result<()> {
    let mode = if directory { DIR_MODE } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Opens (creating, 0600) a lock file: locked, and at most holding who holds it.
pub fn open_lock(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Writes `bytes` to `path` atomically with `mode`, creating parent directories with 0700.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure_dir(parent)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        // The mode given to open() is filtered by the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Whether a file name is a temporary of [`write_atomic`] (`.<name>.tmp-<pid>`).
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the temporaries that writers killed between writing and renaming left in `root`,
/// and in its subdirectories when `deep` (they may hold secrets). Called by whoever holds the
/// stack directory's lock: no other writer is running then. Returns how many it removed.
pub fn remove_stale_temporaries(root: &Path, deep: bool) -> anyhow::Result<usize> {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(root) else { return Ok(0) };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let path = entry.path();
        let kind = entry.file_type().with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() && deep {
            removed += remove_stale_temporaries(&path, true)?;
        } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_temporary) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Renames `from` over `to` (same directory, so atomic), keeping the mode `from` was written
/// with.
pub fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to).with_context(|| format!("replacing {} with {}", to.display(), from.display()))
}

/// The permission bits of a file, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_sets_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/key.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), Some(0o600));
        assert_eq!(mode_of(&dir.path().join("a/b")), Some(0o700));
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }
}
