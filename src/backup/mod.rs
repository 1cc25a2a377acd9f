//! Backups that are restored. `take` writes a backup set: one directory per set in the profile's
//! backup directory, a subdirectory per service, and the set's manifest written last and
//! atomically; a set without a manifest is not a set (a backup killed at any moment leaves
//! nothing that looks complete, and the next backup removes what it left). `restore` checks a
//! set against its manifest before it touches anything, then fills a stack with no data from it;
//! `test` restores the latest set into a throwaway stack and compares it with what was backed up.
//!
//! The tools are the servers' own: `pg_basebackup` and `pg_verifybackup`, `redis-cli --rdb` and
//! `redis-check-rdb` run in short-lived containers from the stack's own images on the stack
//! network, as the backup logins (replication only; the RDB transfer only); Qdrant's snapshot
//! API over verified TLS.

mod digest;
pub mod postgres;
pub mod qdrant;
pub mod redis;
pub mod restore;
pub mod test;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use digest::sha256_file;
use digest::{ReadEarly, Watch};

use crate::layout;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// The schema of a set's manifest.
pub const SCHEMA: &str = "hardstack.backup-set/v2";
/// The schema of sets made before v2: the same, with a SHA-256 per file instead of a BLAKE3.
const SCHEMA_V1: &str = "hardstack.backup-set/v1";

/// What a backup works with.
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub dir: &'a StackDir,
    pub store: &'a Store,
    pub engine: &'a Engine,
}

/// A set's manifest: what was backed up, how, and every file with its size and digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub stack: String,
    pub id: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    pub services: Vec<ServiceSet>,
}

impl Manifest {
    /// The set restricted to the services `profile` runs, and the services left out.
    pub fn only_run_by(mut self, profile: &Profile) -> (Manifest, Vec<Service>) {
        let left_out = self.services.iter().map(|s| s.service).filter(|s| !profile.runs(*s)).collect();
        self.services.retain(|s| profile.runs(s.service));
        (self, left_out)
    }
}

/// One service's part of a set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSet {
    pub service: Service,
    pub server_version: String,
    /// How it was taken (`pg_basebackup`, `redis-cli --rdb`, `qdrant snapshot`).
    pub method: String,
    /// Relative to the set's directory.
    pub files: Vec<FileEntry>,
    /// What the server held when the backup ended: the restore test compares with it.
    pub contents: Contents,
    /// PostgreSQL: where the base backup's WAL starts (for the archive and `--to-time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalStart>,
}

/// A file of a set: its BLAKE3 (sets of schema v2), or its SHA-256 (v1, read still).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Counts and checksums of what a server holds: PostgreSQL rows and a checksum per table
/// (`database.schema.table`), Redis keys per database and a digest of sampled values, Qdrant
/// points per collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub counts: BTreeMap<String, u64>,
    pub checksums: BTreeMap<String, String>,
}

impl Contents {
    /// Every difference between what was backed up (`self`) and what a restore holds.
    pub fn differences(&self, restored: &Contents) -> Vec<String> {
        let mut differences = Vec::new();
        for (name, count) in &self.counts {
            match restored.counts.get(name) {
                Some(other) if other == count => {}
                Some(other) => differences.push(format!("{name}: {count} backed up, {other} restored")),
                None => differences.push(format!("{name}: {count} backed up, absent after the restore")),
            }
        }
        for (name, checksum) in &self.checksums {
            if restored.checksums.get(name) != Some(checksum) {
                differences.push(format!("{name}: checksum differs after the restore"));
            }
        }
        differences
    }
}

/// The first WAL segment a base backup needs, and its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalStart {
    pub timeline: u32,
    /// The 24-hex-digit segment file name.
    pub segment: String,
}

/// A set directory in the backup directory.
#[derive(Debug, Clone)]
pub struct SetDir {
    pub id: String,
    pub path: PathBuf,
    /// Its manifest exists: the backup finished.
    pub complete: bool,
}

/// The backup directory of a stack.
#[derive(Debug, Clone)]
pub struct Backups {
    pub root: PathBuf,
}

impl Backups {
    /// The profile's backup directory (relative: under the stack directory).
    pub fn of(profile: &Profile, dir: &StackDir) -> Backups {
        Backups { root: dir.absolute().join(&profile.backup.dir) }
    }

    /// The WAL archive PostgreSQL writes into.
    pub fn archive(&self) -> PathBuf {
        self.root.join(layout::backups::ARCHIVE)
    }

    /// Every set directory, oldest first.
    pub fn sets(&self) -> anyhow::Result<Vec<SetDir>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).with_context(|| format!("reading {}", self.root.display())),
        };
        let mut sets = Vec::new();
        for entry in entries {
            let entry = entry?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if !is_set_id(&id) || !entry.file_type()?.is_dir() {
                continue;
            }
            let path = entry.path();
            let complete = path.join(layout::backups::SET_MANIFEST).is_file();
            sets.push(SetDir { id, path, complete });
        }
        sets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(sets)
    }

    /// The newest complete set.
    pub fn latest(&self) -> anyhow::Result<Option<SetDir>> {
        Ok(self.sets()?.into_iter().rev().find(|s| s.complete))
    }

    /// A set named by its id or its path.
    pub fn find(&self, set: &str) -> anyhow::Result<SetDir> {
        let path = if Path::new(set).is_dir() { PathBuf::from(set) } else { self.root.join(set) };
        anyhow::ensure!(
            path.is_dir(),
            "no backup set {set} (neither a directory nor a set in {}); `hardstack status` lists the sets",
            self.root.display()
        );
        let id = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let complete = path.join(layout::backups::SET_MANIFEST).is_file();
        Ok(SetDir { id, path, complete })
    }

    /// The last restore test's record, if any.
    pub fn restore_test(&self) -> anyhow::Result<Option<test::Record>> {
        match crate::stackdir::read_optional(&self.root.join(layout::backups::RESTORE_TEST))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).context("reading the restore-test record")?)),
            None => Ok(None),
        }
    }
}

/// A set id is a UTC timestamp: `20261127T011200.123Z`.
fn is_set_id(name: &str) -> bool {
    name.len() == 20
        && name.ends_with('Z')
        && name.as_bytes()[8] == b'T'
        && name[..8].bytes().all(|b| b.is_ascii_digit())
}

/// The id of a set started at `time`.
fn set_id(time: SystemTime) -> String {
    rfc3339(time).replace(['-', ':'], "")
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Parses an RFC 3339 time in UTC (`2026-11-27T01:12:00Z`, fractions allowed).
pub fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .with_context(|| format!("`{text}` is not a UTC time; write it like 2026-11-27T01:12:00Z"))
}

/// The roles of the one-off containers a backup runs.
const ONE_OFF_ROLES: [&str; 2] = ["backup-postgres", "backup-redis"];

/// What `take` did.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    pub set: String,
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Sets removed by retention.
    pub removed: Vec<String>,
    /// Incomplete sets (of backups that died) removed.
    pub incomplete_removed: Vec<String>,
    /// Where the time went, per service (`backup -v` prints it).
    #[serde(skip)]
    pub phases: Vec<String>,
}

/// Takes a backup set of every service the stack runs, then applies retention.
pub async fn take(context: &Context<'_>) -> anyhow::Result<Taken> {
    anyhow::ensure!(
        !crate::peers::is_cluster(context.profile),
        "hardstack backs up a single Qdrant node only, and this stack runs a cluster (qdrant.nodes = {}): a \
         snapshot holds one peer's shards; snapshot each collection on each peer with Qdrant's API instead",
        context.profile.qdrant.nodes
    );
    let backups = Backups::of(context.profile, context.dir);
    crate::fsio::ensure_dir(&backups.root)?;
    // One backup at a time: the lock goes with the process, however it ends.
    let lock_path = backups.root.join(layout::backups::LOCK);
    let lock = crate::fsio::open_lock(&lock_path)?;
    lock.try_lock()
        .map_err(|_| anyhow::anyhow!("another backup of this stack is running (it holds {})", lock_path.display()))?;
    // A backup killed outright (SIGKILL) may have left its tool running, still writing into its
    // set: it goes first, then what it wrote.
    for role in ONE_OFF_ROLES {
        context.engine.remove_one_offs(&context.profile.stack.name, role, &[]).await?;
    }
    let mut incomplete_removed = Vec::new();
    for set in backups.sets()?.into_iter().filter(|s| !s.complete) {
        std::fs::remove_dir_all(&set.path).with_context(|| format!("removing {}", set.path.display()))?;
        incomplete_removed.push(set.id);
    }
    let started = SystemTime::now();
    let id = set_id(started);
    let path = backups.root.join(&id);
    crate::fsio::ensure_dir(&path)?;
    let mut services = Vec::new();
    let mut phases = Vec::new();
    for service in layout::services(context.profile).filter(|s| s.holds_data()) {
        let part = path.join(layout::backups::service_dir(service));
        crate::fsio::ensure_dir(&part)?;
        let taking = std::time::Instant::now();
        // The set's own digests: each file read while the tool writes it, the rest after.
        let follows: digest::Follows = match service {
            Service::Postgres => postgres::read_as_written(&part),
            _ => Box::new(|_| false),
        };
        let watch = Watch::start(&part, follows)?;
        let set = match service {
            Service::Postgres => postgres::backup(context, &part, &id).await,
            Service::Redis => redis::backup(context, &part).await,
            Service::Qdrant => qdrant::backup(context, &part).await,
            Service::Pgbouncer
            | Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::Prometheus
            | Service::QdrantFront
            | Service::RedisSentinel => {
                unreachable!("a service that holds no data is not backed up")
            }
        }
        .with_context(|| format!("backing up {service}"));
        let early = watch.finish();
        let mut set = set?;
        // Every file read once: for PostgreSQL the same pass checks every file against the
        // CRC-32C the server put in its backup manifest (pg_verifybackup checked the rest: the
        // file list, the sizes, the WAL).
        let taken = taking.elapsed();
        let hashing = std::time::Instant::now();
        let mut hashed = hash_files(&path, &part, early)?;
        if service == Service::Postgres {
            postgres::check_manifest_checksums(&part, &mut hashed)?;
        }
        set.files = hashed.into_iter().map(|h| h.entry).collect();
        phases.push(format!(
            "{service}: {:.2}s copied and checked by its tool (PostgreSQL's rows counted and files read meanwhile), {:.2}s the rest of the files read for their digests",
            taken.as_secs_f64(),
            hashing.elapsed().as_secs_f64()
        ));
        services.push(set);
    }
    let manifest = Manifest {
        schema: SCHEMA.into(),
        stack: context.profile.stack.name.clone(),
        id: id.clone(),
        started: rfc3339(started),
        finished: rfc3339(SystemTime::now()),
        services,
    };
    // Last, and atomically: from here on the set is complete.
    let bytes = serde_json::to_vec_pretty(&manifest).context("serializing the manifest")?;
    crate::fsio::write_atomic(&path.join(layout::backups::SET_MANIFEST), &bytes, 0o600)?;
    let removed = retain(&backups, context.profile.backup.keep)?;
    Ok(Taken { set: id, path, manifest, removed, incomplete_removed, phases })
}

/// Keeps the newest `keep` complete sets, and the archived WAL the oldest of them needs.
fn retain(backups: &Backups, keep: u32) -> anyhow::Result<Vec<String>> {
    let complete: Vec<SetDir> = backups.sets()?.into_iter().filter(|s| s.complete).collect();
    let excess = complete.len().saturating_sub(keep.max(1) as usize);
    let mut removed = Vec::new();
    for set in &complete[..excess] {
        std::fs::remove_dir_all(&set.path).with_context(|| format!("removing {}", set.path.display()))?;
        removed.push(set.id.clone());
    }
    if let Some(oldest) = complete.get(excess) {
        let manifest = read_manifest(&oldest.path)?;
        if let Some(wal) = manifest.services.iter().find_map(|s| s.wal.clone()) {
            postgres::clean_archive(&backups.archive(), &wal)?;
        }
    }
    Ok(removed)
}

/// Reads a set's manifest.
pub fn read_manifest(set: &Path) -> anyhow::Result<Manifest> {
    let path = set.join(layout::backups::SET_MANIFEST);
    let bytes = std::fs::read(&path).with_context(|| {
        format!("{} has no manifest: the backup that wrote it did not finish, so it is not a set", set.display())
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        manifest.schema == SCHEMA || manifest.schema == SCHEMA_V1,
        "{} is a {} document, not {SCHEMA}",
        path.display(),
        manifest.schema
    );
    Ok(manifest)
}

/// Checks every file of a set against its manifest (present, same size, same digest: BLAKE3,
/// or SHA-256 in a set of schema v1) and that the set holds no file the manifest does not list;
/// the error names the file.
pub fn check(set: &Path) -> anyhow::Result<Manifest> {
    let manifest = read_manifest(set)?;
    let mut listed = std::collections::BTreeSet::new();
    for part in &manifest.services {
        let paths: Vec<PathBuf> = part.files.iter().map(|file| set.join(&file.path)).collect();
        for (file, path) in part.files.iter().zip(&paths) {
            listed.insert(file.path.clone());
            let metadata = std::fs::metadata(path)
                .with_context(|| format!("{}: missing from the set (the manifest lists it)", path.display()))?;
            anyhow::ensure!(
                metadata.len() == file.size,
                "{}: {} bytes, the manifest says {}: the set is damaged",
                path.display(),
                metadata.len(),
                file.size
            );
        }
        let (current, v1): (Vec<_>, Vec<_>) =
            part.files.iter().zip(&paths).partition(|(file, _)| file.blake3.is_some());
        let read: Vec<PathBuf> = current.iter().map(|(_, path)| (*path).clone()).collect();
        for ((file, path), digest) in current.iter().zip(digest::digest_files(&read, ReadEarly::default())?) {
            anyhow::ensure!(
                file.blake3.as_ref() == Some(&digest.blake3),
                "{}: its BLAKE3 differs from the manifest's: the set is damaged",
                path.display()
            );
        }
        for (file, path) in v1 {
            let listed_sha256 =
                file.sha256.as_ref().with_context(|| format!("{}: the manifest gives no digest", path.display()))?;
            anyhow::ensure!(
                sha256_file(path)? == *listed_sha256,
                "{}: its SHA-256 differs from the manifest's: the set is damaged",
                path.display()
            );
        }
        let part_dir = set.join(layout::backups::service_dir(part.service));
        for path in files_under(&part_dir)? {
            let relative = path.strip_prefix(set).expect("under the set").to_string_lossy().into_owned();
            anyhow::ensure!(listed.contains(&relative), "{}: not in the manifest: the set was altered", path.display());
        }
    }
    Ok(manifest)
}

/// Every file under `dir`, after making the modes private (0600 files, 0700 directories).
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("reading {}", current.display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                crate::fsio::make_private(&path, true)?;
                pending.push(path);
            } else if kind.is_file() {
                crate::fsio::make_private(&path, false)?;
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// Every file under `dir` with its size and BLAKE3, relative to `set`, modes made private.
#[cfg(test)]
fn files_of(set: &Path, dir: &Path) -> anyhow::Result<Vec<FileEntry>> {
    Ok(hash_files(set, dir, ReadEarly::default())?.into_iter().map(|h| h.entry).collect())
}

/// A file of a set as read: its entry, and its CRC-32C (what PostgreSQL's backup manifest holds).
pub struct HashedFile {
    pub entry: FileEntry,
    pub crc32c: u32,
}

/// Every file under `dir` with its size, BLAKE3 and CRC-32C, relative to `set`, modes made
/// private; the files `early` did not read are read on every core.
fn hash_files(set: &Path, dir: &Path, early: ReadEarly) -> anyhow::Result<Vec<HashedFile>> {
    let found = files_under(dir)?;
    let digests = digest::digest_files(&found, early)?;
    let mut files: Vec<HashedFile> = found
        .iter()
        .zip(digests)
        .map(|(path, digest)| {
            let relative = path.strip_prefix(set).expect("under the set").to_string_lossy().into_owned();
            HashedFile {
                entry: FileEntry { path: relative, size: digest.size, blake3: Some(digest.blake3), sha256: None },
                crc32c: digest.crc32c,
            }
        })
        .collect();
    files.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(files)
}

/// The image a service runs now (the profile's, or the local one `up` fell back to): tools
/// run with the server's own version.
pub async fn running_image(engine: &Engine, profile: &Profile, service: Service) -> anyhow::Result<String> {
    let spec = crate::containers::container_spec(profile, service);
    engine
        .inspect(&spec.name)
        .await?
        .with_context(|| format!("{} does not exist: run `hardstack up` first", spec.name))?;
    engine.image_of(&spec).await
}

/// The owner (`uid:gid`) of a directory hardstack made: what one-off containers writing into it
/// run as, so their files are hardstack's own.
pub fn owner_of(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{}:{}", metadata.uid(), metadata.gid()))
}

/// The files a one-off container gets to log in as `login`: the CA, the login's client
/// certificate and key, owned by `owner` (`uid:gid`), 0600; plus `extra`.
pub fn login_files(dir: &StackDir, login: &str, owner: &str, extra: Vec<(String, Vec<u8>)>) -> anyhow::Result<Vec<u8>> {
    use crate::layout::StackFile;
    let uid: u32 = owner.split(':').next().and_then(|u| u.parse().ok()).context("an owner uid")?;
    let read = |file: &StackFile| {
        let path = dir.file(file);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let mut files = vec![
        (format!("{ROOT}/ca.crt"), uid, 0o600, read(&StackFile::CaCert)?),
        (format!("{ROOT}/client.crt"), uid, 0o600, read(&StackFile::ClientCert(login.into()))?),
        (format!("{ROOT}/client.key"), uid, 0o600, read(&StackFile::ClientKey(login.into()))?),
    ];
    for (name, content) in extra {
        files.push((format!("{ROOT}/{name}"), uid, 0o600, content));
    }
    crate::runtime::deliver::archive_of_files(&files)
}

/// Where a one-off container finds the files of `login_files`.
pub const ROOT: &str = "hardstack-backup";

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with_one_file(root: &Path) -> (PathBuf, PathBuf) {
        set_named(root, "20261127T011200.000Z")
    }

    fn set_named(root: &Path, id: &str) -> (PathBuf, PathBuf) {
        let set = root.join(id);
        let file = set.join("redis/dump.rdb");
        crate::fsio::write_atomic(&file, b"REDIS0011 data", 0o600).unwrap();
        let part = ServiceSet {
            service: Service::Redis,
            server_version: "8".into(),
            method: "test".into(),
            files: files_of(&set, &set.join("redis")).unwrap(),
            contents: Contents::default(),
            wal: None,
        };
        let manifest = Manifest {
            schema: SCHEMA.into(),
            stack: "s".into(),
            id: id.into(),
            started: "2026-11-27T01:12:00.000Z".into(),
            finished: "2026-11-27T01:12:01.000Z".into(),
            services: vec![part],
        };
        crate::fsio::write_atomic(
            &set.join(layout::backups::SET_MANIFEST),
            &serde_json::to_vec(&manifest).unwrap(),
            0o600,
        )
        .unwrap();
        (set, file)
    }

    #[test]
    fn a_set_that_differs_from_its_manifest_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (set, file) = set_with_one_file(dir.path());
        check(&set).expect("an intact set passes");
        crate::fsio::write_atomic(&file, b"REDIS0011 dat4", 0o600).unwrap();
        let err = format!("{:#}", check(&set).unwrap_err());
        assert!(err.contains(&format!("{}: its BLAKE3 differs", file.display())), "{err}");
        crate::fsio::write_atomic(&file, b"REDIS", 0o600).unwrap();
        let err = format!("{:#}", check(&set).unwrap_err());
        assert!(err.contains("5 bytes, the manifest says 14"), "{err}");
        std::fs::remove_file(&file).unwrap();
        let err = format!("{:#}", check(&set).unwrap_err());
        assert!(err.contains("missing from the set"), "{err}");
    }

    /// A set of schema v1 (SHA-256 per file) is still checked, by its SHA-256.
    #[test]
    fn a_set_of_schema_v1_is_checked_by_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let (set, file) = set_with_one_file(dir.path());
        let path = set.join(layout::backups::SET_MANIFEST);
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        manifest["schema"] = SCHEMA_V1.into();
        let entry = &mut manifest["services"][0]["files"][0];
        entry.as_object_mut().unwrap().remove("blake3");
        entry["sha256"] = sha256_file(&file).unwrap().into();
        crate::fsio::write_atomic(&path, &serde_json::to_vec(&manifest).unwrap(), 0o600).unwrap();
        check(&set).expect("an intact v1 set passes");
        crate::fsio::write_atomic(&file, b"REDIS0011 dat4", 0o600).unwrap();
        let err = format!("{:#}", check(&set).unwrap_err());
        assert!(err.contains(&format!("{}: its SHA-256 differs", file.display())), "{err}");
    }

    #[test]
    fn only_a_set_with_its_manifest_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let backups = Backups { root: dir.path().to_path_buf() };
        let (set, _) = set_with_one_file(dir.path());
        crate::fsio::ensure_dir(&dir.path().join("20261127T011300.000Z/postgres")).unwrap();
        crate::fsio::ensure_dir(&dir.path().join("not-a-set")).unwrap();
        let sets = backups.sets().unwrap();
        assert_eq!(
            sets.iter().map(|s| (s.id.as_str(), s.complete)).collect::<Vec<_>>(),
            [("20261127T011200.000Z", true), ("20261127T011300.000Z", false)]
        );
        assert_eq!(backups.latest().unwrap().unwrap().path, set);
        let err = format!("{:#}", read_manifest(&dir.path().join("20261127T011300.000Z")).unwrap_err());
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn retention_keeps_the_newest_sets() {
        let dir = tempfile::tempdir().unwrap();
        let backups = Backups { root: dir.path().to_path_buf() };
        for id in ["20261125T010000.000Z", "20261126T010000.000Z", "20261127T010000.000Z"] {
            set_named(dir.path(), id);
        }
        crate::fsio::ensure_dir(&dir.path().join("20261127T020000.000Z")).unwrap();
        assert_eq!(retain(&backups, 2).unwrap(), ["20261125T010000.000Z"]);
        let left: Vec<String> = backups.sets().unwrap().into_iter().map(|s| s.id).collect();
        // An incomplete set is not retention's to remove (the next backup's).
        assert_eq!(left, ["20261126T010000.000Z", "20261127T010000.000Z", "20261127T020000.000Z"]);
        assert!(retain(&backups, 2).unwrap().is_empty());
    }

    #[test]
    fn set_ids_are_utc_timestamps_in_order() {
        let id = set_id(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_741_920_123));
        assert!(is_set_id(&id), "{id}");
        assert_eq!(id, "20261127T011200.123Z");
        assert_eq!(
            parse_time("2026-11-27T01:12:00.123Z").unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_741_920_123)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn differences_name_what_changed() {
        let mut backed_up = Contents::default();
        backed_up.counts.insert("app.public.t".into(), 3);
        backed_up.checksums.insert("app.public.t".into(), "9".into());
        assert!(backed_up.differences(&backed_up.clone()).is_empty());
        let mut restored = backed_up.clone();
        restored.counts.insert("app.public.t".into(), 2);
        restored.checksums.insert("app.public.t".into(), "8".into());
        assert_eq!(restored.differences(&restored.clone()), Vec::<String>::new());
        assert_eq!(
            backed_up.differences(&restored),
            ["app.public.t: 3 backed up, 2 restored", "app.public.t: checksum differs after the restore"]
        );
        assert_eq!(
            backed_up.differences(&Contents::default())[0],
            "app.public.t: 3 backed up, absent after the restore"
        );
    }

    #[test]
    fn the_archive_keeps_what_the_oldest_set_needs() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000004.00000028.backup",
            "000000020000000000000005",
            "00000002.history",
        ] {
            crate::fsio::write_atomic(&dir.path().join(name), b"x", 0o600).unwrap();
        }
        let start = WalStart { timeline: 1, segment: "000000010000000000000004".into() };
        postgres::clean_archive(dir.path(), &start).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "000000010000000000000004",
                "000000010000000000000004.00000028.backup",
                "00000002.history",
                "000000020000000000000005"
            ]
        );
    }
}
