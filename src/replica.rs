//! PostgreSQL's nodes as containers: node 0 (`<stack>-postgres`, made by initdb) and the
//! streaming replicas (`postgres.replicas`), node N (1-based): container `<stack>-postgres-N`,
//! alias `postgres-N`, volumes of its own, its physical slot `postgres_N`, made by a base
//! backup into its volumes (see `converge::replica`), never by initdb. Each node's spec is
//! derived from node 0's, so it has the primary's posture, files and limits.
//!
//! Which node is the primary is the profile's `postgres.primary` (the stack directory's
//! `topology.json`, written by a switchover or failover): node 0 until the first. A node's
//! spec is the same whatever its role, so a promotion recreates nothing: the role is in the
//! rendered files (`primary_conninfo` names the primary's alias, the init SQL makes the
//! standbys' slots, node 0 follows through slot `postgres_0`, the pooler and the exporter
//! connect to the primary's alias) and in `standby.signal`. Pure: no engine, no disk.

use crate::containers::{self, ContainerSpec};
use crate::endpoint;
use crate::layout::{self, StackFile};
use crate::profile::{Profile, Service};

/// The standbys' specs: every node the profile declares but the primary, in node order.
pub fn specs(profile: &Profile) -> Vec<ContainerSpec> {
    match profile.runs(Service::Postgres) {
        true => nodes(profile).filter(|node| *node != primary(profile)).map(|node| spec(profile, node)).collect(),
        false => Vec::new(),
    }
}

/// Every PostgreSQL node the profile declares: 0, then the replicas'.
pub fn nodes(profile: &Profile) -> impl Iterator<Item = u8> + use<> {
    0..=profile.postgres.replicas
}

/// The primary's node.
pub fn primary(profile: &Profile) -> u8 {
    profile.postgres.primary_node()
}

/// The primary's spec.
pub fn primary_spec(profile: &Profile) -> ContainerSpec {
    spec(profile, primary(profile))
}

/// The primary's container name.
pub fn primary_name(profile: &Profile) -> String {
    container_name(profile, primary(profile))
}

/// The node number of a standby's spec: a PostgreSQL node that is not the primary; `None` for
/// the primary's and every other service's.
pub fn standby_node(profile: &Profile, spec: &ContainerSpec) -> Option<u8> {
    node(spec).filter(|node| *node != primary(profile))
}

/// Whether `spec` is a standby's.
pub fn is_standby(profile: &Profile, spec: &ContainerSpec) -> bool {
    standby_node(profile, spec).is_some()
}

/// The container name of node `node` (`<stack>-postgres` for node 0).
pub fn container_name(profile: &Profile, node: u8) -> String {
    match node {
        0 => containers::container_name(profile, Service::Postgres),
        _ => format!("{}-{}", profile.stack.name, endpoint::replica_alias(node)),
    }
}

/// The node number of a container name of the stack that is a replica's (`<stack>-postgres-2`).
pub fn node_of(profile: &Profile, container: &str) -> Option<u8> {
    let prefix = format!("{}-{}-", profile.stack.name, Service::Postgres.name());
    container.strip_prefix(&prefix)?.parse().ok().filter(|node| *node > 0)
}

/// The replication connection a standby makes to the primary (`primary_conninfo`, and the
/// first copy's): the primary's alias, libpq's keywords, verify-full TLS at least at the
/// profile's minimum, the replication login's certificate and pgpass file where a node
/// receives them. No secret: the password is in the pgpass file.
pub fn conninfo(profile: &Profile) -> String {
    let delivered = layout::replica_deliveries(profile);
    let at = |file: StackFile| {
        delivered.iter().find(|d| d.file == file).map(|d| d.container_path(Service::Postgres)).unwrap_or_default()
    };
    format!(
        "host={} port={} user={} sslmode=verify-full sslrootcert={} sslcert={} sslkey={} passfile={} ssl_min_protocol_version={}",
        endpoint::replica_alias(primary(profile)),
        Service::Postgres.container_port(),
        layout::REPLICATION,
        at(StackFile::CaCert),
        at(StackFile::ClientCert(layout::REPLICATION.into())),
        at(StackFile::ClientKey(layout::REPLICATION.into())),
        at(StackFile::ReplicationPgpass),
        profile.postgres.tls_min_version.as_str(),
    )
}

/// The node number of a PostgreSQL node's spec (0 for `<stack>-postgres`); `None` for every
/// other service's.
pub fn node(spec: &ContainerSpec) -> Option<u8> {
    let prefix = format!("{}-", Service::Postgres.name());
    match spec.service {
        Service::Postgres if spec.alias == Service::Postgres.name() => Some(0),
        Service::Postgres => spec.alias.strip_prefix(&prefix)?.parse().ok(),
        _ => None,
    }
}

/// Node `node`'s spec, whatever its role: node 0's is the service's own; a replica's is node
/// 0's with the node's name, alias, volumes (config, data and WAL, each `postgres-N-...`) and
/// published port; no init scripts, the same WAL archive (where the profile keeps one: a
/// standby does not archive, and once promoted it archives on its new timeline beside the old
/// primary's), and its slot and name on the command line (the rest of its settings is the
/// shared file, `primary_conninfo` included).
pub fn spec(profile: &Profile, node: u8) -> ContainerSpec {
    let primary = containers::container_spec(profile, Service::Postgres);
    if node == 0 {
        return primary;
    }
    let alias = endpoint::replica_alias(node);
    // No init scripts; the files a replica receives (its login's pgpass, the init SQL kept in
    // its config volume).
    let mut first = primary.clone();
    let initdb = layout::Volume::Initdb.key(Service::Postgres);
    first.volumes.retain(|v| v.key != initdb);
    first.deliveries =
        layout::replica_deliveries(profile).into_iter().map(|d| containers::delivery(Service::Postgres, d)).collect();
    let mut spec = crate::node::renamed(&first, profile, container_name(profile, node), &alias);
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
    spec.publish = primary.publish.map(|(address, _)| (address, profile.network.ports.postgres_node(node)));
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
        // The init SQL waits in its config volume for the day it is the primary.
        assert!(second.deliveries.iter().any(|d| d.file == StackFile::InitSql && d.path == "init.sql"));
        assert_eq!(second.publish.as_ref().map(|p| p.1), Some(profile.network.ports.postgres + 2));
        assert!(second.command.contains(&"primary_slot_name=postgres_2".to_owned()));
        assert_eq!(
            (&second.posture, second.memory_bytes, &second.user),
            (&primary.posture, primary.memory_bytes, &primary.user)
        );
        assert_eq!(node_of(&profile, "t-postgres-2"), Some(2));
        assert_eq!(node_of(&profile, "t-postgres-exporter"), None);
    }

    #[test]
    fn a_recorded_primary_moves_what_names_the_primary_and_no_spec() {
        let sets = ["stack.name=t".to_owned(), "postgres.replicas=2".to_owned()];
        let mut profile = load(&ProfileSource::Shipped("dev".into()), &sets).unwrap().profile;
        let before: Vec<ContainerSpec> = nodes(&profile).map(|node| spec(&profile, node)).collect();
        profile.postgres.primary = Some(2);
        let after: Vec<ContainerSpec> = nodes(&profile).map(|node| spec(&profile, node)).collect();
        assert_eq!(before, after, "a promotion recreates no container");
        assert_eq!(primary_name(&profile), "t-postgres-2");
        let standbys: Vec<String> = specs(&profile).into_iter().map(|s| s.name).collect();
        assert_eq!(standbys, ["t-postgres", "t-postgres-1"]);
        assert!(is_standby(&profile, &before[0]) && !is_standby(&profile, &before[2]));
        assert!(conninfo(&profile).starts_with("host=postgres-2 port=5432 "));
        let published = crate::endpoint::host_address(&profile, Service::Postgres).unwrap().port;
        assert_eq!(published, profile.network.ports.postgres + 2);
        assert_eq!(crate::endpoint::network_endpoint(&profile, Service::Postgres).host, "postgres-2");
        assert_eq!(profile.postgres.standby_nodes().collect::<Vec<_>>(), [0, 1]);
    }
}
