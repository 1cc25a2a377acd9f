//! Tar archives of the files a container needs, one per volume, with the owner and mode each
//! server requires. The engine unpacks them into the volumes keeping those headers.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::containers::{ContainerSpec, Placement, Posture};
use crate::stackdir::StackDir;

/// One archive per volume key, with every file the spec delivers (read from the stack
/// directory) and every directory it makes.
pub fn archives(dir: &StackDir, spec: &ContainerSpec) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for delivery in &spec.deliveries {
        let path = dir.file(&delivery.file);
        let content = std::fs::read(&path)
            .with_context(|| format!("reading {}; run `hardstack init` to restore it", path.display()))?;
        files.push((delivery.placement(), content));
    }
    archives_of_contents(&files, &spec.directories)
}

/// Archives of files given by their content, one per volume, each with its delivery's owner and
/// mode, and of directories made in volumes (0700, their owner).
pub fn archives_of_contents(
    files: &[(Placement, Vec<u8>)],
    dirs: &[crate::containers::OwnedDir],
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut by_volume: BTreeMap<&str, Archive> = BTreeMap::new();
    for dir in dirs {
        by_volume.entry(&dir.volume).or_default().add_dir(&dir.path, dir.uid)?;
    }
    for (file, content) in files {
        by_volume.entry(&file.volume).or_default().add(file, content)?;
    }
    by_volume.into_iter().map(|(key, archive)| Ok((key.to_owned(), archive.finish()?))).collect()
}

/// The archives of several volumes as one, each entry under its volume's key (the directory
/// the helper mounts that volume on); the volumes' own roots are left as the engine made them.
pub fn under_volume_keys(archives: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (key, bytes) in archives {
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries()? {
            let entry = entry?;
            let path = format!("{key}/{}", entry.path()?.display());
            let mut header = entry.header().clone();
            builder.append_data(&mut header, path, entry)?;
        }
    }
    Ok(builder.into_inner()?)
}

/// A tar archive of files given by path (relative, without a leading slash), owner, mode and
/// content; each parent directory once, 0700.
pub fn archive_of_files(files: &[(String, u32, u32, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut archive = Archive::default();
    for (path, uid, mode, content) in files {
        let placement = Placement { volume: String::new(), path: path.clone(), uid: *uid, mode: format!("{mode:o}") };
        archive.add(&placement, content)?;
    }
    archive.finish()
}

/// A tar archive for one volume: each parent directory once (0700, the file's owner), then
/// the files with their owner and mode.
struct Archive {
    builder: tar::Builder<Vec<u8>>,
    dirs: Vec<String>,
}

impl Default for Archive {
    fn default() -> Archive {
        Archive { builder: tar::Builder::new(Vec::new()), dirs: Vec::new() }
    }
}

impl Archive {
    fn add_dir(&mut self, path: &str, uid: u32) -> anyhow::Result<()> {
        if !self.dirs.iter().any(|d| d == path) {
            let mut header = header(tar::EntryType::Directory, uid, 0o700, 0);
            self.builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            self.dirs.push(path.to_owned());
        }
        Ok(())
    }

    fn add(&mut self, file: &Placement, content: &[u8]) -> anyhow::Result<()> {
        let parts: Vec<&str> = file.path.split('/').collect();
        for index in 1..parts.len() {
            let parent = parts[..index].join("/");
            if !self.dirs.contains(&parent) {
                let mut header = header(tar::EntryType::Directory, file.uid, 0o700, 0);
                self.builder.append_data(&mut header, format!("{parent}/"), std::io::empty())?;
                self.dirs.push(parent);
            }
        }
        // SECURITY: 0600 and owned by the server's uid, or PostgreSQL refuses its key.
        let mode = u32::from_str_radix(&file.mode, 8).context("a delivery mode is octal")?;
        let mut header = header(tar::EntryType::Regular, file.uid, mode, content.len() as u64);
        self.builder.append_data(&mut header, &file.path, content)?;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<Vec<u8>> {
        Ok(self.builder.into_inner()?)
    }
}

fn header(kind: tar::EntryType, uid: u32, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(uid));
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_cksum();
    header
}

/// A hash of the container's spec: its image, command, environment, mounts, ports, posture
/// and where each file is delivered, but neither its limits (updated in place) nor the
/// delivered files' content (delivered when it changes, and recorded in the container's
/// volume). A container whose label differs is recreated.
pub fn config_hash(spec: &ContainerSpec) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let replication: Vec<crate::layout::StackFile> =
        crate::layout::replication_deliveries().into_iter().map(|d| d.file).collect();
    let deliveries: Vec<&crate::containers::Delivery> =
        spec.deliveries.iter().filter(|d| !replication.contains(&d.file)).collect();
    let hashed = Hashed {
        service: spec.service,
        name: &spec.name,
        alias: &spec.alias,
        image: &spec.image,
        user: &spec.user,
        entrypoint: &spec.entrypoint,
        command: &spec.command,
        environment: &spec.environment,
        volumes: &spec.volumes,
        binds: &spec.binds,
        tmpfs: &spec.tmpfs,
        cap_add: &spec.cap_add,
        memory_bytes: 0,
        nano_cpus: 0,
        pids: 0,
        publish: &spec.publish,
        container_port: spec.container_port,
        healthcheck: &spec.healthcheck,
        deliveries: &deliveries,
        directories: &spec.directories,
        posture: (spec.posture != Posture::hardened()).then_some(&spec.posture),
    };
    let bytes = serde_json::to_vec(&hashed).context("hashing the container spec")?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// What the config hash covers, in the order and form containers made by earlier versions were
/// hashed in (so an upgrade recreates none): the spec without its limits and network (its name
/// follows the stack's, as the container's does), and the posture only where it is not the
/// hardened one every service has.
#[derive(serde::Serialize)]
struct Hashed<'a> {
    service: crate::profile::Service,
    name: &'a str,
    alias: &'a str,
    image: &'a str,
    user: &'a str,
    entrypoint: &'a Option<Vec<String>>,
    command: &'a [String],
    environment: &'a [(String, String)],
    volumes: &'a [crate::containers::VolumeMount],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    binds: &'a [crate::containers::BindMount],
    tmpfs: &'a [crate::containers::TmpfsMount],
    cap_add: &'a [String],
    memory_bytes: u64,
    nano_cpus: u64,
    pids: u32,
    publish: &'a Option<(String, u16)>,
    container_port: u16,
    healthcheck: &'a str,
    /// Without the replication login's files (see `layout::replication_deliveries`).
    deliveries: &'a [&'a crate::containers::Delivery],
    directories: &'a [crate::containers::OwnedDir],
    #[serde(skip_serializing_if = "Option::is_none")]
    posture: Option<&'a Posture>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each entry of an archive: path, owner, mode.
    fn entries_of(bytes: &[u8]) -> Vec<(String, u64, u32)> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().uid().unwrap(), e.header().mode().unwrap())
            })
            .collect()
    }

    #[test]
    fn archives_carry_owner_and_mode_and_each_parent_once() {
        let key = Placement {
            volume: "postgres-config".into(),
            path: "tls/server.key".into(),
            uid: 999,
            mode: "0600".into(),
        };
        let cert = Placement { path: "tls/server.crt".into(), mode: "0644".into(), ..key.clone() };
        let mut archive = Archive::default();
        archive.add(&key, b"key").unwrap();
        archive.add(&cert, b"cert").unwrap();
        let bytes = archive.finish().unwrap();
        let entries = entries_of(&bytes);
        assert_eq!(
            entries,
            [
                ("tls/".to_owned(), 999, 0o700),
                ("tls/server.key".to_owned(), 999, 0o600),
                ("tls/server.crt".to_owned(), 999, 0o644)
            ]
        );
    }

    #[test]
    fn archives_of_several_volumes_become_one_under_their_keys() {
        let file = |volume: &str, path: &str| Placement {
            volume: volume.into(),
            path: path.into(),
            uid: 999,
            mode: "0600".into(),
        };
        let archives = archives_of_contents(
            &[(file("config", "tls/server.key"), b"key".to_vec()), (file("initdb", "a.sql"), b"sql".to_vec())],
            &[],
        )
        .unwrap();
        let bytes = under_volume_keys(&archives).unwrap();
        let entries = entries_of(&bytes);
        assert_eq!(
            entries,
            [
                ("config/tls/".to_owned(), 999, 0o700),
                ("config/tls/server.key".to_owned(), 999, 0o600),
                ("initdb/a.sql".to_owned(), 999, 0o600)
            ]
        );
    }

    /// The config hashes of the shipped profiles' containers as hardstack 0.x made them before
    /// the spec carried its posture (d3af4a2): a container whose hash changes is recreated by
    /// the next `up`, so an upgrade that changes one recreates every running stack's server.
    #[test]
    fn config_hashes_of_the_shipped_profiles_are_those_earlier_versions_labelled() {
        let pinned = [
            ("dev", "postgres", "39e569614154f48d3ee6a75b7cfe9fdb928ee1a9edf6a74350dbe2e6b0e40fc8"),
            ("dev", "redis", "c083175bfd0bafe9a0b6c0f490adec8f4c1bddc368aa037642d8530bfa32137f"),
            ("dev", "qdrant", "a38d0136953fb33520636a50a3f017e888b8ebe1885fd2169efdf6526c24b9e2"),
            ("test", "postgres", "2cdec7fc4215a7de3489bea2c2ac1d5e0f820b5527424e0d4d0fcf24002e6c6a"),
            ("test", "redis", "3742176bdea56c80df3a6f6fde1846cc318ee3a294893c848258e781b009a0be"),
            ("test", "qdrant", "cc404ebbd5d3a27ae51d3d991524b48a7c04eb525b9ec00efaeacf61beaacc2e"),
            ("prod", "postgres", "dd5a9fec6cb97bc2eb2afad52bede483366ea82bac3829da21342f8fe6785be7"),
            ("prod", "redis", "9f37d917fcfd294290053dda9d2466aba7f63749ec6555ace3c65aeae795a1bc"),
            ("prod", "qdrant", "6295bbc47cd640348fbcbe8b5f73b1d839c24bf7f8bcb6cc7f47deeaf04b8a3d"),
        ];
        // A stack's hardstack.toml lists its services: those made before the Qdrant front keep
        // the lists the shipped profiles had then, and their Qdrant is the one pinned here.
        let before_the_front = |name: &str| match name {
            "prod" => {
                r#"stack.services=["postgres","redis","qdrant","pgbouncer","postgres-exporter","redis-exporter","pgbouncer-exporter","prometheus"]"#
            }
            _ => r#"stack.services=["postgres","redis","qdrant"]"#,
        };
        for (name, service, hash) in pinned {
            let source = crate::profile::ProfileSource::Shipped(name.into());
            let overrides = [before_the_front(name).to_owned()];
            let profile = crate::profile::load(&source, &overrides).unwrap().profile;
            let spec = crate::containers::container_specs(&profile)
                .into_iter()
                .find(|spec| spec.service.name() == service)
                .unwrap();
            assert_eq!(config_hash(&spec).unwrap(), hash, "{name}: {service}");
        }
    }
}
