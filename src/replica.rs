//! PostgreSQL's streaming replicas (`postgres.replicas`) as containers: each replica's spec,
//! derived from the primary's so it has the primary's posture, files and limits. A replica is
//! node N (1-based): container `<stack>-postgres-N`, alias `postgres-N`, volumes of its own,
//! its physical slot `postgres_N`. It is made by a base backup into its volumes (see
//! `converge::replica`), never by initdb: it has no init scripts. Pure: no engine, no disk.

use crate::containers::{self, ContainerSpec};
use crate::endpoint;
use crate::layout::{self, StackFile};
use crate::profile::{Profile, Service};

/// The spec of every replica the profile declares, node 1 first.
pub fn specs(profile: &Profile) -> Vec<ContainerSpec> {
    match profile.runs(Service::Postgres) {
        true => profile.postgres.replica_nodes().map(|node| spec(profile, node)).collect(),
        false => Vec::new(),
    }
}

/// The container name of replica `node`.
pub fn container_name(profile: &Profile, node: u8) -> String {
    format!("{}-{}", profile.stack.name, endpoint::replica_alias(node))
}

/// The node number of a container name of the stack that is a replica's (`<stack>-postgres-2`).
pub fn node_of(profile: &Profile, container: &str) -> Option<u8> {
    let prefix = format!("{}-{}-", profile.stack.name, Service::Postgres.name());
    container.strip_prefix(&prefix)?.parse().ok().filter(|node| *node > 0)
}

/// The replication connection a replica makes to the primary (`primary_conninfo`, and the
/// first copy's): libpq's keywords, verify-full TLS at least at the profile's minimum, the
/// replication login's certificate and pgpass file where a replica receives them. No secret:
/// the password is in the pgpass file.
pub fn conninfo(profile: &Profile) -> String {
    let delivered = layout::replica_deliveries(profile);
    let at = |file: StackFile| {
        delivered.iter().find(|d| d.file == file).map(|d| d.container_path(Service::Postgres)).unwrap_or_default()
    };
    format!(
        "host={} port={} user={} sslmode=verify-full sslrootcert={} sslcert={} sslkey={} passfile={} ssl_min_protocol_version={}",
        Service::Postgres.name(),
        Service::Postgres.container_port(),
        layout::REPLICATION,
        at(StackFile::CaCert),
        at(StackFile::ClientCert(layout::REPLICATION.into())),
        at(StackFile::ClientKey(layout::REPLICATION.into())),
        at(StackFile::ReplicationPgpass),
        profile.postgres.tls_min_version.as_str(),
    )
}

/// The node number of a replica's spec; `None` for every other spec (the primary's included).
pub fn node(spec: &ContainerSpec) -> Option<u8> {
    let prefix = format!("{}-", Service::Postgres.name());
    match spec.service {
        Service::Postgres => spec.alias.strip_prefix(&prefix)?.parse().ok(),
        _ => None,
    }
}

/// Replica `node`: the primary's spec with the node's name, alias, volumes (config, data and
/// WAL, each `postgres-N-...`) and published port; no init scripts, no WAL archive (a replica
/// does not archive), and its slot and name on the command line (the rest of its settings is
/// the primary's file, `primary_conninfo` included).
pub fn spec(profile: &Profile, node: u8) -> ContainerSpec {
    let primary = containers::container_spec(profile, Service::Postgres);
    let alias = endpoint::replica_alias(node);
    let key = |key: &str| key.replacen(Service::Postgres.name(), &alias, 1);
    let initdb = layout::Volume::Initdb.key(Service::Postgres);
    let mut spec = primary.clone();
    spec.name = container_name(profile, node);
    spec.alias = alias.clone();
    spec.volumes = primary
        .volumes
        .iter()
        .filter(|v| v.key != initdb)
        .map(|v| {
            let key = key(&v.key);
            containers::VolumeMount { name: format!("{}-{key}", profile.stack.name), key, ..v.clone() }
        })
        .collect();
    spec.deliveries = layout::replica_deliveries(profile)
        .into_iter()
        .map(|d| containers::delivery(Service::Postgres, d))
        .map(|d| containers::Delivery { volume: key(&d.volume), ..d })
        .collect();
    spec.directories =
        primary.directories.iter().map(|d| containers::OwnedDir { volume: key(&d.volume), ..d.clone() }).collect();
    spec.binds = Vec::new();
    // Without the superuser's password the entrypoint refuses to initdb an empty data
    // directory: a replica whose copy is missing stops instead of starting a primary of its own.
    spec.environment.retain(|(name, _)| !name.starts_with("POSTGRES_"));
    spec.command.extend([
        // The file's listen_addresses names the primary's alias, which is not this container.
        "-c".into(),
        format!("listen_addresses=localhost,{alias}"),
        "-c".into(),
        format!("cluster_name={alias}"),
        "-c".into(),
        format!("primary_slot_name={}", layout::replica_slot(node)),
    ]);
    spec.publish = primary.publish.map(|(address, _)| (address, profile.network.ports.postgres_replica(node)));
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    #[test]
    fn a_replica_is_the_primary_on_volumes_of_its_own() {
        let sets = ["stack.name=t".to_owned(), "postgres.replicas=2".to_owned()];
        let profile = load(&ProfileSource::Shipped("dev".into()), &sets).unwrap().profile;
        let primary = containers::container_spec(&profile, Service::Postgres);
        let replicas = specs(&profile);
        assert_eq!(replicas.len(), 2);
        let second = &replicas[1];
        assert_eq!((second.name.as_str(), second.alias.as_str()), ("t-postgres-2", "postgres-2"));
        let volumes: Vec<&str> = second.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["t-postgres-2-config", "t-postgres-2-data", "t-postgres-2-wal"]);
        assert!(second.deliveries.iter().all(|d| d.volume == "postgres-2-config"));
        assert!(second.deliveries.iter().any(|d| d.file == StackFile::ReplicationPgpass));
        assert!(!second.deliveries.iter().any(|d| d.file == StackFile::InitSql));
        assert_eq!(second.publish.as_ref().map(|p| p.1), Some(profile.network.ports.postgres + 2));
        assert!(second.command.contains(&"primary_slot_name=postgres_2".to_owned()));
        assert_eq!(
            (&second.posture, second.memory_bytes, &second.user),
            (&primary.posture, primary.memory_bytes, &primary.user)
        );
        assert_eq!(node_of(&profile, "t-postgres-2"), Some(2));
        assert_eq!(node_of(&profile, "t-postgres-exporter"), None);
    }
}
