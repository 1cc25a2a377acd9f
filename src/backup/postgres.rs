//! PostgreSQL: a physical base backup (`pg_basebackup`, plain format, the WAL streamed along,
//! the server's backup manifest with a CRC-32C of every file as the server sent it, then
//! `pg_verifybackup`), taken from a short-lived container of the server's own image on the stack
//! network, as the replication-only `backup` login with its client certificate and password.
//! What the server held is read as the superuser over the container's socket while the copy
//! runs: the rows of every table. A restored copy is read in full: rows and an order-independent
//! checksum per table.

use std::path::Path;

use anyhow::Context as _;

use super::{Contents, Context, ServiceSet, WalStart};
use crate::layout;
use crate::profile::Service;
use crate::runtime::OneOff;
use crate::secrets::Secret;
use crate::secrets::store::{SecretStore as _, Stage};

/// Where the set's PostgreSQL directory is mounted in the one-off container.
const MOUNT: &str = "/backup";

/// Takes the base backup into `part` (`part/base`).
pub async fn backup(context: &Context<'_>, part: &Path, id: &str) -> anyhow::Result<ServiceSet> {
    let image = super::running_image(context.engine, context.profile, Service::Postgres).await?;
    // The manifest's checksums are the server's CRC-32C (pg_basebackup's default; SHA-256 in
    // the server costs a third more time). pg_verifybackup checks the file list, the sizes and
    // the WAL; the files' checksums are checked in the pass that computes the set's BLAKE3
    // (`check_manifest_checksums`), so every file is read once.
    let script = format!(
        "set -e; umask 077\n\
         pg_basebackup -d \"{connection}\" -D {MOUNT}/base -Fp -X stream -c fast --no-password -l hardstack-{id}\n\
         pg_verifybackup -q --skip-checksums {MOUNT}/base >&2\n\
         postgres -V\n",
        connection = connection(context.profile)
    );
    let mounts = vec![format!("{}:{MOUNT}", part.display())];
    // The rows are counted while the copy runs: the counting reads the tables in the server,
    // the copy their files.
    let spec = crate::replica::primary_spec(context.profile);
    let (output, contents) = tokio::join!(
        with_backup_login(context, &image, part, mounts, &script, "backup-postgres"),
        contents_of(context.engine, &spec, Reading::Rows)
    );
    let output = output?;
    let wal = wal_start(&part.join("base/backup_label"))?;
    Ok(ServiceSet {
        service: Service::Postgres,
        server_version: output.trim().to_owned(),
        method: "pg_basebackup -Fp -X stream, pg_verifybackup".into(),
        files: Vec::new(),
        contents: contents?,
        wal: Some(wal),
    })
}

/// Logs in over the replication protocol as `backup` with `password` and runs
/// `IDENTIFY_SYSTEM`: what rotation's test step asks of the backup login.
pub async fn check_login(context: &Context<'_>, password: &Secret) -> anyhow::Result<()> {
    let image = super::running_image(context.engine, context.profile, Service::Postgres).await?;
    let owner = super::owner_of(&context.dir.absolute())?;
    let archive = super::login_files(context.dir, layout::BACKUP, &owner, vec![("pgpass".into(), pgpass(password))])?;
    let script = format!("psql -X -w -tA -c IDENTIFY_SYSTEM \"{} replication=true\"", connection(context.profile));
    run(context, &image, &owner, archive, Vec::new(), &script, "backup-login").await.map(|_| ())
}

/// Runs `script` with the backup login's files: the current password; when the server refuses
/// it, a rotation is under way or just finished, so the store is read again and the password
/// not tried yet (pending, or the new current) is used (a backup never waits for a rotation).
async fn with_backup_login(
    context: &Context<'_>,
    image: &str,
    part: &Path,
    mounts: Vec<String>,
    script: &str,
    role: &str,
) -> anyhow::Result<String> {
    let secret = layout::login_secret(Service::Postgres, layout::BACKUP);
    let owner = super::owner_of(part)?;
    let mut tried: Vec<Secret> = Vec::new();
    loop {
        let current = context.store.current(&secret).await?.value;
        let pending = context.store.get(&secret, Stage::Pending).await?.map(|v| v.value);
        let Some(password) = [Some(current), pending].into_iter().flatten().find(|p| !tried.contains(p)) else {
            anyhow::bail!("the backup login's passwords were all refused (tried {})", tried.len());
        };
        let archive =
            super::login_files(context.dir, layout::BACKUP, &owner, vec![("pgpass".into(), pgpass(&password))])?;
        tried.push(password);
        match run(context, image, &owner, archive, mounts.clone(), script, role).await {
            Err(err) if format!("{err:#}").contains("password authentication failed") && tried.len() < 3 => {
                // Start again from an empty directory.
                for entry in std::fs::read_dir(part)? {
                    let path = entry?.path();
                    if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
                }
            }
            other => return other,
        }
    }
}

async fn run(
    context: &Context<'_>,
    image: &str,
    owner: &str,
    archive: Vec<u8>,
    mounts: Vec<String>,
    script: &str,
    role: &str,
) -> anyhow::Result<String> {
    let names = crate::containers::stack_names(context.profile);
    let script = format!("export PGPASSFILE=/{}/pgpass\n{script}", super::ROOT);
    let run = OneOff {
        image: image.to_owned(),
        user: owner.to_owned(),
        command: vec!["/bin/sh".into(), "-c".into(), script],
        archive,
        mounts,
        cap_add: Vec::new(),
    };
    Ok(context.engine.run_once(&names.stack, &names.network, role, run).await?.output)
}

/// The libpq connection string of the backup login inside the stack network (its password
/// comes from the pgpass file, never the command line).
fn connection(profile: &crate::profile::Profile) -> String {
    let endpoint = crate::endpoint::network_endpoint(profile, Service::Postgres);
    let root = super::ROOT;
    format!(
        "host={} port={} user={} sslmode=verify-full sslrootcert=/{root}/ca.crt sslcert=/{root}/client.crt sslkey=/{root}/client.key",
        endpoint.host,
        endpoint.port,
        layout::BACKUP
    )
}

/// A pgpass file for the backup login (any database: it may open replication connections only).
fn pgpass(password: &Secret) -> Vec<u8> {
    let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{escaped}\n", layout::BACKUP).into_bytes()
}

/// The first WAL segment and timeline of a base backup, from its `backup_label`.
fn wal_start(label: &Path) -> anyhow::Result<WalStart> {
    let text = std::fs::read_to_string(label).with_context(|| format!("reading {}", label.display()))?;
    let segment = text
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: ")?.split("(file ").nth(1)?.strip_suffix(')'))
        .with_context(|| format!("{} names no start WAL file", label.display()))?;
    let timeline = text
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE: ")?.trim().parse().ok())
        .with_context(|| format!("{} names no timeline", label.display()))?;
    Ok(WalStart { timeline, segment: segment.to_owned() })
}

/// How much of each table [`contents_of`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The rows counted (what a backup records).
    Rows,
    /// The rows counted and every row read into a checksum (what a restore test compares):
    /// every page of every table is read, and with data checksums on, PostgreSQL checks each.
    RowsAndChecksums,
}

/// Rows (and with [`Reading::RowsAndChecksums`] a checksum) of every table of every database,
/// read as the superuser in a PostgreSQL container made from `spec`. The checksum is a sum of
/// row hashes: independent of the physical order, which a restore need not keep.
pub async fn contents_of(
    engine: &crate::runtime::Engine,
    spec: &crate::containers::ContainerSpec,
    reading: Reading,
) -> anyhow::Result<Contents> {
    let databases = crate::superuser::sql(
        engine,
        spec,
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1;",
    )
    .await
    .context("listing the databases")?;
    let checksum = match reading {
        Reading::Rows => "",
        // sum() of bigint adds in 128 bits: the same value as a sum of numerics, sooner.
        Reading::RowsAndChecksums => " || coalesce(sum(hashtextextended(t::text, 0)), 0)",
    };
    let mut sql = String::new();
    for database in databases.lines().map(str::trim).filter(|d| !d.is_empty()) {
        anyhow::ensure!(
            database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database name {database:?} is not one hardstack makes"
        );
        sql.push_str(&format!(
            "\\connect {database}\n\
             SELECT format('SELECT %L || ''|'' || count(*) || ''|''{checksum} FROM %I.%I t', \
             '{database}.' || schemaname || '.' || tablename, schemaname, tablename) \
             FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 \\gexec\n",
            checksum = checksum.replace('\'', "''")
        ));
    }
    let output = crate::superuser::sql(engine, spec, &sql).await.context("counting the tables' rows")?;
    let mut contents = Contents::default();
    for line in output.lines() {
        let mut fields = line.splitn(3, '|');
        if let (Some(name), Some(count), Some(checksum)) = (fields.next(), fields.next(), fields.next()) {
            contents.counts.insert(name.to_owned(), count.parse().with_context(|| format!("row count {count:?}"))?);
            if !checksum.is_empty() {
                contents.checksums.insert(name.to_owned(), checksum.to_owned());
            }
        }
    }
    Ok(contents)
}

/// The files of a base backup that may be read as pg_basebackup writes them (start to end):
/// those its backup manifest lists with the server's CRC-32C, which
/// [`check_manifest_checksums`] checks. Not the streamed WAL (written over its zero padding)
/// nor the manifest itself.
pub fn read_as_written(part: &Path) -> super::digest::Follows {
    let base = part.join("base");
    let wal = base.join("pg_wal");
    Box::new(move |path| {
        path.starts_with(&base)
            && !path.starts_with(&wal)
            && !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("backup_manifest"))
    })
}

/// Checks every file PostgreSQL's backup manifest lists against the checksum the server wrote
/// (CRC-32C, pg_basebackup's default), from the pass that hashed the set: what
/// `pg_verifybackup` does without `--skip-checksums`. A file read as it was written that
/// differs is read once more (its digests replaced) before it counts as damaged; the error
/// names the file.
pub fn check_manifest_checksums(part: &Path, hashed: &mut [super::HashedFile]) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct BackupManifest {
        #[serde(rename = "Files")]
        files: Vec<ManifestFile>,
    }
    #[derive(serde::Deserialize)]
    struct ManifestFile {
        #[serde(rename = "Path")]
        path: String,
        #[serde(rename = "Checksum-Algorithm")]
        algorithm: Option<String>,
        #[serde(rename = "Checksum")]
        checksum: Option<String>,
    }
    let path = part.join("base/backup_manifest");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: BackupManifest =
        serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))?;
    // The set's paths are `<service>/base/<path the manifest lists>`.
    let copied: std::collections::HashMap<String, usize> = hashed
        .iter()
        .enumerate()
        .filter_map(|(index, file)| Some((file.entry.path.split_once("/base/")?.1.to_owned(), index)))
        .collect();
    for listed in &manifest.files {
        let (Some("CRC32C"), Some(checksum)) = (listed.algorithm.as_deref(), &listed.checksum) else {
            anyhow::bail!("{}: {} has no CRC-32C checksum", path.display(), listed.path);
        };
        let index = *copied
            .get(listed.path.as_str())
            .with_context(|| format!("{}: the backup manifest lists it, the copy lacks it", listed.path))?;
        // PostgreSQL writes the CRC's bytes as they lie in memory: little-endian.
        let matches = |crc32c: u32| hex::encode(crc32c.to_le_bytes()) == *checksum;
        let file = &mut hashed[index];
        if !matches(file.crc32c) {
            // The entry's path is relative to the set, which holds `part`.
            let set = part.parent().context("a service's part of a set is inside the set")?;
            let again = super::digest::digest_file(&set.join(&file.entry.path))?;
            (file.crc32c, file.entry.size, file.entry.blake3) = (again.crc32c, again.size, Some(again.blake3));
        }
        anyhow::ensure!(
            matches(file.crc32c),
            "{}: its CRC-32C differs from the one the server sent in its backup manifest: the copy is damaged",
            file.entry.path
        );
    }
    Ok(())
}

/// The WAL segment a file of the archive is, or begins with (`.partial`, `.backup`): its
/// 24 hexadecimal digits, timeline first.
pub fn segment_of(name: &str) -> Option<&str> {
    name.get(..24).filter(|segment| segment.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes archived WAL that no kept set needs: segments (of any timeline) before `start`.
/// Timeline history files stay.
pub fn clean_archive(archive: &Path, start: &WalStart) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(archive) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", archive.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if segment_of(&name).is_some_and(|segment| segment[8..] < start.segment[8..]) {
            std::fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{FileEntry, HashedFile};

    fn copied(path: &str, crc32c: u32) -> HashedFile {
        HashedFile { entry: FileEntry { path: path.into(), size: 9, blake3: None, sha256: None }, crc32c }
    }

    /// The manifest's CRC-32C as PostgreSQL writes it (the CRC's bytes in memory order) against
    /// the copy's: CRC-32C("123456789") is 0xE3069283.
    #[test]
    fn every_listed_file_is_checked_against_the_servers_crc() {
        let set = tempfile::tempdir().unwrap();
        let part = set.path().join("postgres");
        std::fs::create_dir_all(part.join("base/global")).unwrap();
        let manifest = r#"{"Files": [{"Path": "global/pg_control", "Size": 9, "Checksum-Algorithm": "CRC32C", "Checksum": "839206e3"}]}"#;
        std::fs::write(part.join("base/backup_manifest"), manifest).unwrap();
        let control = part.join("base/global/pg_control");
        std::fs::write(&control, b"123456789").unwrap();
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let mut good = [copied("postgres/base/global/pg_control", 0xE306_9283)];
        check_manifest_checksums(&part, &mut good).unwrap();
        // Read while it was written, and wrongly: read again, and the digests are the file's.
        let mut stale = [copied("postgres/base/global/pg_control", 0xE306_9284)];
        check_manifest_checksums(&part, &mut stale).unwrap();
        assert_eq!(stale[0].crc32c, 0xE306_9283);
        assert_eq!(stale[0].entry.blake3, Some(blake3::hash(b"123456789").to_hex().to_string()));
        std::fs::write(&control, b"123456780").unwrap();
        let mut damaged = [copied("postgres/base/global/pg_control", 0xE306_9284)];
        let err = check_manifest_checksums(&part, &mut damaged).unwrap_err();
        assert!(format!("{err:#}").contains("postgres/base/global/pg_control: its CRC-32C differs"), "{err:#}");
        let missing = check_manifest_checksums(&part, &mut []).unwrap_err();
        assert!(format!("{missing:#}").contains("global/pg_control: the backup manifest lists it, the copy lacks it"));
    }
}
