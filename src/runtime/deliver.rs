//! Tar archives of the files a container needs, one per volume, with the owner and mode each
//! server requires. The engine unpacks them into the volumes keeping those headers.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::containers::ContainerSpec;
use crate::stackdir::StackDir;

/// One archive per volume key, with every directory (0700) and file of the deliveries.
pub fn archives(dir: &StackDir, spec: &ContainerSpec) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    archives_of(dir, spec, |_| true)
}

/// Archives of the deliveries `keep` selects (rotation re-delivers certificates only).
pub fn archives_of(
    dir: &StackDir,
    spec: &ContainerSpec,
    keep: impl Fn(&crate::containers::Delivery) -> bool,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut by_volume: BTreeMap<&str, tar::Builder<Vec<u8>>> = BTreeMap::new();
    let mut dirs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for file in spec.deliveries.iter().filter(|f| keep(f)) {
        let builder = by_volume.entry(&file.volume).or_insert_with(|| tar::Builder::new(Vec::new()));
        let seen = dirs.entry(&file.volume).or_default();
        let mut parents = Vec::new();
        let parts: Vec<&str> = file.path.split('/').collect();
        for index in 1..parts.len() {
            parents.push(parts[..index].join("/"));
        }
        for parent in parents {
            if !seen.contains(&parent) {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_uid(u64::from(file.uid));
                header.set_gid(u64::from(file.uid));
                header.set_mode(0o700);
                header.set_size(0);
                header.set_mtime(0);
                header.set_cksum();
                builder.append_data(&mut header, format!("{parent}/"), std::io::empty())?;
                seen.push(parent);
            }
        }
        let content = std::fs::read(dir.path(&file.source)).with_context(|| {
            format!("reading {}; run `hardstack init` to restore it", dir.path(&file.source).display())
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_uid(u64::from(file.uid));
        header.set_gid(u64::from(file.uid));
        // SECURITY: 0600 and owned by the server's uid, or PostgreSQL refuses its key.
        header.set_mode(u32::from_str_radix(&file.mode, 8).context("a delivery mode is octal")?);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, &file.path, &content[..])?;
    }
    by_volume.into_iter().map(|(key, builder)| Ok((key.to_owned(), builder.into_inner()?))).collect()
}

/// A hash of everything a container is made from: the spec and every delivered file. A
/// container whose label differs is out of date.
pub fn config_hash(dir: &StackDir, spec: &ContainerSpec) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(spec).context("hashing the container spec")?);
    for file in spec.deliveries.iter().filter(|f| !f.live) {
        hasher.update(file.source.as_bytes());
        hasher.update(std::fs::read(dir.path(&file.source)).with_context(|| format!("reading {}", file.source))?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// An archive of one file given by its content, for the volume of `delivery`, with the
/// delivery's owner and mode (rotation hands a container its new health password this way).
pub fn archive_of_content(delivery: &crate::containers::Delivery, content: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
    let mut builder = tar::Builder::new(Vec::new());
    let parts: Vec<&str> = delivery.path.split('/').collect();
    for index in 1..parts.len() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_uid(u64::from(delivery.uid));
        header.set_gid(u64::from(delivery.uid));
        header.set_mode(0o700);
        header.set_size(0);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, format!("{}/", parts[..index].join("/")), std::io::empty())?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_uid(u64::from(delivery.uid));
    header.set_gid(u64::from(delivery.uid));
    header.set_mode(u32::from_str_radix(&delivery.mode, 8).context("a delivery mode is octal")?);
    header.set_size(content.len() as u64);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, &delivery.path, content)?;
    Ok((delivery.volume.clone(), builder.into_inner()?))
}
