//! What a set's files are, each read once: size, BLAKE3 (the set's digest: as strong as SHA-256,
//! and about three times faster on this machine kind, where the reading shares two cores with the
//! copy) and CRC-32C (what PostgreSQL's backup manifest holds), on every core. While a tool
//! writes a set, [`Watch`] reads each file as it is written or closed, so the reading overlaps
//! the copy; what it did not read (or what changed after it read it) is read once the copy is
//! done.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

/// What one read of a file gives.
pub struct Digest {
    pub size: u64,
    pub blake3: String,
    pub crc32c: u32,
}

/// A digest being computed, one piece of the file after the other.
struct Hashing {
    blake3: blake3::Hasher,
    crc32c: u32,
    size: u64,
}

impl Hashing {
    fn new() -> Hashing {
        Hashing { blake3: blake3::Hasher::new(), crc32c: 0, size: 0 }
    }

    /// Reads `file` from where it stands to its current end.
    fn read_to_end(&mut self, file: &mut std::fs::File) -> std::io::Result<()> {
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(());
            }
            self.size += read as u64;
            self.blake3.update(&buffer[..read]);
            self.crc32c = crc32c::crc32c_append(self.crc32c, &buffer[..read]);
        }
    }

    fn finish(&self) -> Digest {
        Digest { size: self.size, blake3: self.blake3.finalize().to_hex().to_string(), crc32c: self.crc32c }
    }
}

/// Which file a path was, and in what state: a file whose identity changed after it was read is
/// read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
}

impl Identity {
    fn of(metadata: &std::fs::Metadata) -> Identity {
        Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        }
    }
}

/// Files read while they were written: each with the identity it had while it was read.
#[derive(Default)]
pub struct ReadEarly {
    digests: HashMap<PathBuf, (Identity, Digest)>,
}

/// Reads a file once: its size as read, BLAKE3 and CRC-32C.
pub fn digest_file(path: &Path) -> anyhow::Result<Digest> {
    Ok(read_file(path)?.1)
}

/// The SHA-256 of a file, hex (Qdrant's snapshot checksums, and sets of schema v1).
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Reads a file, and the identity it kept while it was read (None when it changed meanwhile).
fn read_file(path: &Path) -> anyhow::Result<(Option<Identity>, Digest)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let before = Identity::of(&file.metadata().with_context(|| format!("reading {}", path.display()))?);
    let mut hashing = Hashing::new();
    hashing.read_to_end(&mut file).with_context(|| format!("reading {}", path.display()))?;
    let after = Identity::of(&file.metadata().with_context(|| format!("reading {}", path.display()))?);
    let kept = (before == after && after.size == hashing.size).then_some(after);
    Ok((kept, hashing.finish()))
}

/// The digest of each of `paths`, in order: from `early` where the file is still the one read
/// then, otherwise read now by as many threads as there are cores (a base backup is a thousand
/// files; hashing, not the disk, is what takes the time), the largest first: a table's 1 GB
/// segment read last would keep one thread busy alone.
pub fn digest_files(paths: &[PathBuf], mut early: ReadEarly) -> anyhow::Result<Vec<Digest>> {
    use std::sync::atomic::AtomicUsize;
    let mut digests: Vec<Option<anyhow::Result<Digest>>> = Vec::with_capacity(paths.len());
    let mut left = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let now = Identity::of(&metadata);
        match early.digests.remove(path) {
            Some((read, digest)) if read == now => digests.push(Some(Ok(digest))),
            _ => {
                digests.push(None);
                left.push((index, now.size));
            }
        }
    }
    left.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let threads = cores().min(left.len().max(1));
    let next = AtomicUsize::new(0);
    let read: Vec<(usize, anyhow::Result<Digest>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let Some(&(index, _)) = left.get(next.fetch_add(1, Ordering::Relaxed)) else { break done };
                        done.push((index, digest_file(&paths[index])));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("a hashing thread does not panic")).collect()
    });
    for (index, digest) in read {
        digests[index] = Some(digest);
    }
    digests.into_iter().map(|digest| digest.expect("every file read")).collect()
}

/// Reads the files written under a directory while a tool writes them, until
/// [`Watch::finish`]: each file as its writer closes it, or, where the caller says a file is
/// written from start to end and checked against a checksum of its own afterwards, following
/// its writer as it grows. Only a speed-up: a file it missed (made in a directory before the
/// watch on that directory began, or events lost) or that changed after it read it is read by
/// [`digest_files`]. A file closed again unchanged (a tool's final fsync opens every file for
/// writing) is not read again.
pub struct Watch {
    shared: Arc<Shared>,
    watcher: std::thread::JoinHandle<()>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Whether a file of the set may be read as it grows (see [`Watch`]).
pub type Follows = Box<dyn Fn(&Path) -> bool + Send>;

/// What the watching thread and the readers share.
struct Shared {
    /// Set when the tool is done writing; the watching thread waits on it between batches.
    stop: (Mutex<bool>, std::sync::Condvar),
    /// Files whose writer closed them at least once.
    closed: Mutex<HashSet<PathBuf>>,
    jobs: Mutex<std::sync::mpsc::Receiver<Job>>,
    read: Mutex<ReadEarly>,
    /// How many batches of events the watching thread took: followers wait for the next one.
    batches: (Mutex<u64>, std::sync::Condvar),
}

enum Job {
    /// Read a file its writer closed.
    Read(PathBuf),
    /// Read a file as its writer writes it, until it is closed.
    Follow(PathBuf),
}

impl Watch {
    /// Starts watching `dir` and every directory made under it. The files are read on all
    /// cores but one while the tool runs: the copy being watched needs one.
    pub fn start(dir: &Path, follows: Follows) -> anyhow::Result<Watch> {
        let inotify = inotify::Inotify::init().context("starting to watch the set being written (inotify)")?;
        let mut watched = HashMap::new();
        add_watches(&inotify, dir, &mut watched)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            stop: (Mutex::new(false), std::sync::Condvar::new()),
            closed: Mutex::default(),
            jobs: Mutex::new(queue),
            read: Mutex::default(),
            batches: (Mutex::new(0), std::sync::Condvar::new()),
        });
        let readers = (1..cores().max(2)).map(|_| spawn_reader(&shared)).collect();
        let watching = shared.clone();
        let watcher = std::thread::spawn(move || watch(inotify, watched, &watching, &jobs, &follows));
        Ok(Watch { shared, watcher, readers })
    }

    /// Stops watching (the tool is done writing), finishes reading what was closed on every
    /// core, and returns what was read.
    pub fn finish(mut self) -> ReadEarly {
        *lock(&self.shared.stop.0) = true;
        self.shared.stop.1.notify_all();
        self.shared.batches.1.notify_all();
        self.watcher.join().expect("the watching thread does not panic");
        self.readers.push(spawn_reader(&self.shared));
        for reader in self.readers {
            reader.join().expect("a reading thread does not panic");
        }
        std::mem::take(&mut *lock(&self.shared.read))
    }
}

impl Shared {
    /// Until the watching thread takes its next batch of events (a write to a followed file is
    /// one), or a few milliseconds.
    fn wait_for_events(&self) {
        let (count, taken) = &self.batches;
        let seen = *lock(count);
        let _ = taken
            .wait_timeout_while(lock(count), std::time::Duration::from_millis(5), |now| *now == seen)
            .expect("never poisoned");
    }

    fn stopped(&self) -> bool {
        *lock(&self.stop.0)
    }

    /// Until the stop, or `most`: between two batches of events, so that a file's writes
    /// arrive as one event (inotify merges an event with the same one still unread).
    fn wait_for_stop(&self, most: std::time::Duration) {
        let (stopped, told) = &self.stop;
        let _ = told.wait_timeout_while(lock(stopped), most, |stopped| !*stopped).expect("never poisoned");
    }

    fn took_events(&self) {
        let (count, taken) = &self.batches;
        *lock(count) += 1;
        taken.notify_all();
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("a lock of the watch is never poisoned")
}

fn spawn_reader(shared: &Arc<Shared>) -> std::thread::JoinHandle<()> {
    let shared = shared.clone();
    std::thread::spawn(move || {
        // The queue's sender goes with the watching thread: the readers end with it.
        while let Ok(job) = lock(&shared.jobs).recv() {
            match job {
                Job::Read(path) => read_closed(&path, &shared),
                Job::Follow(path) => follow(&path, &shared),
            }
        }
    })
}

/// Reads a file just closed, unless it was read already as it is now.
fn read_closed(path: &Path, shared: &Shared) {
    let Ok(metadata) = std::fs::metadata(path) else { return };
    let now = Identity::of(&metadata);
    if lock(&shared.read).digests.get(path).map(|(identity, _)| *identity) == Some(now) {
        return;
    }
    if let Ok((Some(identity), digest)) = read_file(path) {
        lock(&shared.read).digests.insert(path.to_path_buf(), (identity, digest));
    }
}

/// Reads a file as it grows, until its writer closed it (or the tool is done) and every byte
/// was read.
fn follow(path: &Path, shared: &Shared) {
    let Ok(mut file) = std::fs::File::open(path) else { return };
    let mut hashing = Hashing::new();
    loop {
        // Closed before this read to the end: the end is the file's last byte.
        let written = shared.stopped() || lock(&shared.closed).contains(path);
        if hashing.read_to_end(&mut file).is_err() {
            return;
        }
        if written {
            break;
        }
        shared.wait_for_events();
    }
    let Ok(metadata) = file.metadata() else { return };
    let identity = Identity::of(&metadata);
    if identity.size == hashing.size {
        lock(&shared.read).digests.insert(path.to_path_buf(), (identity, hashing.finish()));
    }
}

const MASK: inotify::WatchMask =
    inotify::WatchMask::CLOSE_WRITE.union(inotify::WatchMask::CREATE).union(inotify::WatchMask::MODIFY);

/// Watches `dir` and the directories already under it.
fn add_watches(
    inotify: &inotify::Inotify,
    dir: &Path,
    watched: &mut HashMap<inotify::WatchDescriptor, PathBuf>,
) -> anyhow::Result<()> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let descriptor = match inotify.watches().add(&current, MASK) {
            Ok(descriptor) => descriptor,
            // Gone already: nothing to read in it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("watching {}", current.display())),
        };
        watched.insert(descriptor, current.clone());
        if let Ok(entries) = std::fs::read_dir(&current) {
            pending.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
    }
    Ok(())
}

/// The watching thread: each file closed after writing is read; a file that `follows` and that
/// is still open when its making or writing is seen is followed instead (the large ones: the
/// small are made and closed between two looks); each directory made is watched.
fn watch(
    mut inotify: inotify::Inotify,
    mut watched: HashMap<inotify::WatchDescriptor, PathBuf>,
    shared: &Shared,
    jobs: &std::sync::mpsc::Sender<Job>,
    follows: &Follows,
) {
    use inotify::EventMask;
    let mut followed = HashSet::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // Events that came before the stop are still taken: one more read after it.
        let stopping = shared.stopped();
        let events: Vec<(EventMask, PathBuf)> = match inotify.read_events(&mut buffer) {
            Ok(events) => {
                events.filter_map(|event| Some((event.mask, watched.get(&event.wd)?.join(event.name?)))).collect()
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if stopping {
                    break;
                }
                shared.wait_for_stop(std::time::Duration::from_millis(1));
                continue;
            }
            // The watch is only a speed-up: whatever it did not read is read afterwards.
            Err(_) => break,
        };
        let closed: HashSet<&PathBuf> =
            events.iter().filter(|(mask, _)| mask.contains(EventMask::CLOSE_WRITE)).map(|(_, path)| path).collect();
        for (mask, path) in &events {
            if mask.contains(EventMask::CREATE | EventMask::ISDIR) {
                if add_watches(&inotify, path, &mut watched).is_err() {
                    return;
                }
            } else if mask.intersects(EventMask::CREATE | EventMask::MODIFY) {
                // Written to since the last look and still open (made before its directory was
                // watched, the making is not seen: the writing is).
                let open = !closed.contains(path) && !lock(&shared.closed).contains(path);
                if follows(path) && open && !followed.contains(path) {
                    followed.insert(path.clone());
                    let _ = jobs.send(Job::Follow(path.clone()));
                }
            } else if mask.contains(EventMask::CLOSE_WRITE) {
                lock(&shared.closed).insert(path.clone());
                if !followed.contains(path) {
                    let _ = jobs.send(Job::Read(path.clone()));
                }
            }
        }
        shared.took_events();
        shared.wait_for_stop(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blake3(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    /// Writes `content` to `path` and closes it, as a tool writing a set does.
    fn write(path: &Path, content: &[u8]) {
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn files_closed_while_watched_are_read_then_and_a_file_changed_after_is_read_again() {
        let root = tempfile::tempdir().unwrap();
        let watch = Watch::start(root.path(), Box::new(|_| false)).unwrap();
        let nested = root.path().join("base/16384");
        std::fs::create_dir_all(&nested).unwrap();
        // Give the watch time to see the new directories, as a copy's first files do.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let table = nested.join("2619");
        let changed = root.path().join("base/backup_label");
        write(&table, b"rows");
        write(&changed, b"first");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let early = watch.finish();
        assert!(early.digests.contains_key(&table), "a file closed while watched is read then");
        assert!(early.digests.contains_key(&changed));
        // Rewritten in place after it was read (a size of its own: the same size within the
        // file system's clock tick would not be seen, which is why only files closed once count).
        write(&changed, b"second, longer");
        let digests = digest_files(&[table.clone(), changed.clone()], early).unwrap();
        assert_eq!(digests[0].blake3, blake3(b"rows"));
        assert_eq!(digests[1].blake3, blake3(b"second, longer"), "changed after it was read: read again");
        assert_eq!(digests[1].size, 14);
    }

    #[test]
    fn a_file_written_again_after_it_was_read_is_read_again() {
        let root = tempfile::tempdir().unwrap();
        let watch = Watch::start(root.path(), Box::new(|_| false)).unwrap();
        let segment = root.path().join("000000010000000000000002");
        write(&segment, b"padded");
        std::thread::sleep(std::time::Duration::from_millis(100));
        write(&segment, b"padded, then written");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let early = watch.finish();
        let digests = digest_files(std::slice::from_ref(&segment), early).unwrap();
        assert_eq!(digests[0].blake3, blake3(b"padded, then written"));
    }
}
