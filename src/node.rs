//! A node of a replicated service as a container: node 0's spec under the node's own container
//! name and alias, on volumes of its own (each key's service prefix replaced by the alias,
//! `redis-data` becoming `redis-2-data`), receiving the same files and directories there.
//! PostgreSQL's replicas, Redis's nodes and Sentinels and Qdrant's peers start from it and
//! change what differs (`replica::spec`, `sentinel::spec`, `peers::spec`). Pure.

use crate::containers::{ContainerSpec, Delivery, OwnedDir, VolumeMount};
use crate::profile::Profile;

/// Node 0's spec `first` as the node named `name` with `alias`.
pub fn renamed(first: &ContainerSpec, profile: &Profile, name: String, alias: &str) -> ContainerSpec {
    let key = |key: &str| key.replacen(first.service.name(), alias, 1);
    let mut spec = first.clone();
    spec.name = name;
    spec.alias = alias.to_owned();
    spec.volumes = first
        .volumes
        .iter()
        .map(|v| {
            let key = key(&v.key);
            VolumeMount { name: format!("{}-{key}", profile.stack.name), key, ..v.clone() }
        })
        .collect();
    spec.deliveries = first.deliveries.iter().map(|d| Delivery { volume: key(&d.volume), ..d.clone() }).collect();
    spec.directories = first.directories.iter().map(|d| OwnedDir { volume: key(&d.volume), ..d.clone() }).collect();
    spec
}
