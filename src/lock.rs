//! The stack directory's lock: one mutating run (`init`, `up`, `down`, `rotate`, `backup`,
//! `restore`) at a time on one stack. An OS file lock (`flock`), so a process that dies, even by
//! SIGKILL, releases it; the file also says who holds it (command, pid, since), for the message
//! of the run that waits. Read-only commands never take it.
//!
//! Waiters take turns: a run first takes the queue lock (held only while waiting), then the
//! lock, then lets the queue go. A run that arrives while another waits queues behind it, so a
//! command that keeps coming back (a schedule of backups) cannot take the lock again and again
//! ahead of one that has been waiting (a rotation). `flock` alone grants to whoever asks first
//! after a release.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::layout::StackFile;
use crate::retry::Attempt;
use crate::stackdir::StackDir;

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StackLock {
    /// Held open: closing it releases the lock.
    file: File,
    /// The stack directory, when taking the lock created it: a run that wrote nothing else
    /// into it leaves no directory behind (bad input writes nothing).
    created: Option<std::path::PathBuf>,
}

impl Drop for StackLock {
    fn drop(&mut self) {
        // No holder any more: a waiter must not name this run while the next holder has not
        // written itself yet.
        let _ = self.file.set_len(0);
        let Some(root) = &self.created else { return };
        let ours = [StackFile::Lock.path(), StackFile::LockQueue.path(), StackFile::Identity.path()];
        let Ok(entries) = std::fs::read_dir(root) else { return };
        let names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        if names.iter().all(|name| ours.contains(name)) {
            for name in names {
                let _ = std::fs::remove_file(root.join(name));
            }
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Who holds a lock, as its holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub command: String,
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`hardstack {}` (pid {}) since {}", self.command, self.pid, self.since)
    }
}

impl StackLock {
    /// Takes the lock of `dir` for `command` (creating the directory, 0700, if needed), waiting
    /// at most `wait`; `on_wait` is called once with the holder when the lock is taken already.
    /// Gives up with an error that names the holder and what to do.
    pub async fn acquire(
        dir: &StackDir,
        command: &str,
        wait: Duration,
        on_wait: impl FnOnce(&Holder),
    ) -> anyhow::Result<StackLock> {
        let created = (!dir.root.exists()).then(|| dir.root.clone());
        crate::fsio::ensure_dir(&dir.root)?;
        let path = dir.file(&StackFile::Lock);
        let mut file = crate::fsio::open_lock(&path)?;
        let queue_path = dir.file(&StackFile::LockQueue);
        let queue = crate::fsio::open_lock(&queue_path)?;
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        let mut holder = None;
        let mut in_turn = false;
        let taken = crate::retry::Backoff::every(Duration::from_millis(100), wait)
            .run(|| {
                let attempt = match take(&queue, &queue_path, in_turn).and_then(|queued| {
                    in_turn = queued;
                    if queued { take(&file, &path, false) } else { Ok(false) }
                }) {
                    Ok(true) => Attempt::Done(()),
                    Ok(false) => {
                        let held_by = read_holder(&mut file);
                        // The holder writes its name just after it takes the lock: give it a moment.
                        if (held_by.pid != 0 || started.elapsed() > Duration::from_secs(1))
                            && let Some(report) = on_wait.take()
                        {
                            report(&held_by);
                        }
                        let busy = anyhow::anyhow!("locked by {held_by}");
                        holder = Some(held_by);
                        Attempt::Retry(busy)
                    }
                    Err(err) => Attempt::Fail(err),
                };
                std::future::ready(attempt)
            })
            .await;
        if let Err(err) = taken {
            let Some(holder) = holder.filter(|_| err.downcast_ref::<crate::retry::Exhausted>().is_some()) else {
                return Err(err);
            };
            anyhow::bail!(
                "stack directory {} is locked by {holder}; waited {}s: let it finish, or stop it, then run this again (--lock-wait sets how long to wait)",
                dir.root.display(),
                wait.as_secs()
            );
        }
        // The next waiter's turn.
        drop(queue);
        let since = humantime::format_rfc3339_seconds(SystemTime::now());
        let record = format!("{command}\n{}\n{since}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .with_context(|| format!("writing the holder into {}", path.display()))?;
        // A writer killed between writing a temporary and renaming it left it behind. Only
        // where hardstack writes: a backup directory inside can hold thousands of files.
        crate::fsio::remove_stale_temporaries(&dir.root, false)?;
        for written in crate::layout::WRITTEN_DIRS {
            crate::fsio::remove_stale_temporaries(&dir.root.join(written), true)?;
        }
        Ok(StackLock { file, created })
    }
}

/// Takes `file`'s lock if it is free (true), or says it is held (false); `held` when this run
/// holds it already.
fn take(file: &File, path: &std::path::Path, held: bool) -> anyhow::Result<bool> {
    if held {
        return Ok(true);
    }
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(anyhow::Error::new(err).context(format!("locking {}", path.display())))
        }
    }
}

/// The holder a locked file names; unknown fields when it has not written them yet.
fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut lines = text.lines();
    Holder {
        command: lines.next().unwrap_or("?").to_owned(),
        pid: lines.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        since: lines.next().unwrap_or("?").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_lock_waits_names_the_holder_and_gives_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StackDir::new(tmp.path().join("stack"));
        let held = StackLock::acquire(&dir, "rotate", Duration::ZERO, |_| panic!("free")).await.unwrap();
        let mut seen = None;
        let err =
            StackLock::acquire(&dir, "up", Duration::from_millis(300), |h| seen = Some(h.clone())).await.unwrap_err();
        let holder = seen.expect("the waiter was told who holds it");
        assert_eq!((holder.command.as_str(), holder.pid), ("rotate", std::process::id()));
        assert!(format!("{err}").contains("locked by `hardstack rotate`"), "{err}");
        drop(held);
        assert!(!dir.root.exists(), "a run that wrote nothing leaves no directory");
        std::fs::create_dir_all(dir.path("secrets/redis")).unwrap();
        std::fs::write(dir.path("secrets/redis/.app.json.tmp-4242"), b"{}").unwrap();
        let held = StackLock::acquire(&dir, "up", Duration::ZERO, |_| panic!("released")).await.unwrap();
        assert!(!dir.path("secrets/redis/.app.json.tmp-4242").exists(), "a killed writer's temporary is removed");
        std::fs::write(dir.path("kept"), b"").unwrap();
        drop(held);
        assert!(dir.root.join("kept").exists());
    }

    #[tokio::test]
    async fn a_waiter_takes_the_lock_before_a_run_that_comes_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StackDir::new(tmp.path().join("stack"));
        std::fs::create_dir_all(&dir.root).unwrap();
        let held = StackLock::acquire(&dir, "backup", Duration::ZERO, |_| panic!("free")).await.unwrap();
        let waiter = {
            let dir = StackDir::new(dir.root.clone());
            tokio::spawn(async move { StackLock::acquire(&dir, "rotate", Duration::from_secs(10), |_| ()).await })
        };
        tokio::time::sleep(Duration::from_millis(350)).await;
        drop(held);
        let mut seen = None;
        // Asks at once, between the waiter's attempts: without turns, flock would grant it.
        let late = StackLock::acquire(&dir, "backup", Duration::ZERO, |h| seen = Some(h.clone())).await;
        assert!(late.is_err(), "the run that came later waits its turn");
        let rotate = waiter.await.unwrap().expect("the waiter got the lock");
        assert_eq!(read_holder(&mut rotate.file.try_clone().unwrap()).command, "rotate");
        drop(rotate);
        let mut record = String::new();
        std::fs::File::open(dir.file(&StackFile::Lock)).unwrap().read_to_string(&mut record).unwrap();
        assert_eq!(record, "", "a released lock names no holder");
    }
}
