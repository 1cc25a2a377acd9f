//! Semantic validation: values that parse but cannot make a working, hardened stack.
//! Returns every problem at once, each with the dotted key it belongs to, so the loader can
//! point at the file and line.

use std::collections::HashSet;
use std::time::Duration;

use super::{MAX_POSTGRES_REPLICAS, Profile, Service, StoreKind};

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key path, `users.0.name`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Names hardstack uses itself, so an application user cannot take them.
pub const RESERVED_USERS: &[&str] =
    &["postgres", "admin", "health", "default", "public", "root", "replica", "sentinel", "discovery"];

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 40
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Redis's replicas and Sentinels: replicas need the Sentinels that promote one, three of
/// them (a quorum of two survives one lost), and host ports of their own.
fn redis_nodes(profile: &Profile, seen_ports: &mut HashSet<u16>, fail: &mut impl FnMut(&str, String)) {
    let (replicas, sentinels) = (profile.redis.replicas, profile.redis.sentinels);
    if profile.stack.services.contains(&Service::RedisSentinel) {
        fail("stack.services", "redis-sentinel runs by redis.sentinels = 3: drop it from stack.services".into());
    }
    if (replicas > 0 || sentinels > 0) && !profile.runs(Service::Redis) {
        let key = if replicas > 0 { "redis.replicas" } else { "redis.sentinels" };
        fail(key, "replicas and Sentinels are Redis's: list redis in stack.services, or set 0".into());
    } else if replicas > super::MAX_REDIS_REPLICAS {
        let max = super::MAX_REDIS_REPLICAS;
        fail("redis.replicas", format!("{replicas} is more than {max}; use 0 to {max}"));
    } else if replicas > 0 && sentinels != super::SENTINELS {
        let three = super::SENTINELS;
        fail(
            "redis.sentinels",
            format!("{sentinels}: replicas are promoted by Sentinel; set redis.sentinels = {three}"),
        );
    } else if replicas == 0 && sentinels > 0 {
        fail(
            "redis.sentinels",
            "Sentinels promote a replica: set redis.replicas to 1 or more, or redis.sentinels = 0".into(),
        );
    } else if replicas > 0 && profile.redis.data != super::DataMode::Volume {
        fail(
            "redis.replicas",
            "a node that restarts must keep its data until it has caught up: set redis.data = \"volume\"".into(),
        );
    } else if replicas > 0 && crate::endpoint::publishes(profile, Service::Redis) {
        for node in 1..=replicas {
            let port = profile.network.ports.redis_node(node);
            if port < 1024 || !seen_ports.insert(port) {
                fail(
                    "network.ports.redis",
                    format!(
                        "replica {node}'s port {port} (Redis's + {node}) is taken; pick a Redis port with {replicas} free after it"
                    ),
                );
                break;
            }
        }
    }
}

/// Qdrant's peers: 1 to the most, a cluster only of Qdrant, on volumes (a peer that restarts
/// keeps its consensus state and shards), and not where backups are required (a snapshot holds
/// one peer's shards; hardstack backs up a single node only).
fn qdrant_nodes(profile: &Profile, fail: &mut impl FnMut(&str, String)) {
    let nodes = profile.qdrant.nodes;
    if nodes == 0 || nodes > super::MAX_QDRANT_NODES {
        let max = super::MAX_QDRANT_NODES;
        fail("qdrant.nodes", format!("{nodes} peers: use 1 (a single node) to {max} (a cluster)"));
    } else if nodes > 1 && !profile.runs(Service::Qdrant) {
        fail("qdrant.nodes", "peers are Qdrant's: list qdrant in stack.services, or set 1".into());
    } else if nodes > 1 && profile.qdrant.data != super::DataMode::Volume {
        fail(
            "qdrant.nodes",
            "a peer that restarts must keep its consensus state and shards: set qdrant.data = \"volume\"".into(),
        );
    } else if nodes > 1 && profile.backup.required {
        fail(
            "qdrant.nodes",
            "hardstack backs up a single Qdrant node only (a cluster's snapshots are per peer): \
             set backup.required = false, or qdrant.nodes = 1"
                .into(),
        );
    }
}

/// Checks every rule; an empty list means the profile is usable.
pub fn validate(profile: &Profile) -> Vec<Invalid> {
    let mut problems = Vec::new();
    let mut fail = |key: &str, message: String| problems.push(Invalid { key: key.to_owned(), message });

    let name = &profile.stack.name;
    if name.is_empty()
        || name.len() > 30
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.starts_with('-')
    {
        fail("stack.name", format!("`{name}` must be 1-30 characters of a-z, 0-9 and -, not starting with -"));
    }
    if profile.stack.services.is_empty() {
        fail("stack.services", "list at least one of postgres, redis, qdrant".into());
    }
    let unique: HashSet<_> = profile.stack.services.iter().collect();
    if unique.len() != profile.stack.services.len() {
        fail("stack.services", "a service is listed twice".into());
    }

    let mut seen_ports = HashSet::new();
    for service in Service::ALL.into_iter().filter(|s| profile.runs(*s)) {
        let image = profile.images.of(service);
        if image.trim().is_empty() || image.contains(char::is_whitespace) {
            fail(&format!("images.{service}"), format!("`{image}` is not an image reference"));
        }
        let port = profile.network.ports.of(service);
        if port == 0 {
            fail(&format!("network.ports.{service}"), "port 0 is not a port; pick one from 1024 to 65535".into());
        } else if crate::endpoint::publishes(profile, service) && !seen_ports.insert(port) {
            // The front publishes Qdrant's port: the key is Qdrant's.
            let key = if service == Service::QdrantFront { Service::Qdrant } else { service };
            fail(&format!("network.ports.{key}"), format!("port {port} is already used by another service"));
        }
        let limits = profile.resources.of(service);
        if limits.memory.0 < 64 * 1024 * 1024 {
            fail(&format!("resources.{service}.memory"), "at least 64MiB".into());
        }
        if !(limits.cpus > 0.0 && limits.cpus <= 1024.0) {
            fail(
                &format!("resources.{service}.cpus"),
                format!("{} is not a CPU count; use a number above 0", limits.cpus),
            );
        }
        if limits.pids < 32 {
            fail(&format!("resources.{service}.pids"), "at least 32, or the server cannot start its workers".into());
        }
    }

    if profile.runs(Service::Redis) && profile.redis.maxmemory.0 >= profile.resources.redis.memory.0 {
        fail(
            "redis.maxmemory",
            "must be below resources.redis.memory, or the container is killed before Redis evicts".into(),
        );
    }
    let replicas = profile.postgres.replicas;
    if replicas > 0 && !profile.runs(Service::Postgres) {
        fail("postgres.replicas", "replicas copy PostgreSQL: list postgres in stack.services, or set 0".into());
    } else if replicas > MAX_POSTGRES_REPLICAS {
        fail(
            "postgres.replicas",
            format!("{replicas} is more than {MAX_POSTGRES_REPLICAS}; use 0 to {MAX_POSTGRES_REPLICAS}"),
        );
    } else if replicas > 0 && profile.postgres.workload == super::Workload::Desktop {
        fail("postgres.replicas", "the desktop workload turns WAL streaming off (wal_level = minimal); pick another postgres.workload, or set 0".into());
    } else if replicas > 0 && profile.postgres.data != super::DataMode::Volume {
        fail(
            "postgres.replicas",
            "a replica is made by a base backup into volumes: set postgres.data = \"volume\"".into(),
        );
    } else if replicas > 0 && crate::endpoint::publishes(profile, Service::Postgres) {
        for node in profile.postgres.replica_nodes() {
            let port = profile.network.ports.postgres_replica(node);
            if port < 1024 || !seen_ports.insert(port) {
                fail(
                    "network.ports.postgres_replicas",
                    format!(
                        "replica {node}'s port {port} is taken or below 1024; pick a first port with {replicas} free after it"
                    ),
                );
                break;
            }
        }
    }
    redis_nodes(profile, &mut seen_ports, &mut fail);
    qdrant_nodes(profile, &mut fail);
    if profile.runs(Service::QdrantFront) && !profile.runs(Service::Qdrant) {
        fail("stack.services", "qdrant-front is in front of Qdrant: list qdrant too, or drop qdrant-front".into());
    }
    if crate::endpoint::publishes(profile, Service::QdrantFront)
        && !seen_ports.insert(profile.network.ports.qdrant_grpc)
    {
        let port = profile.network.ports.qdrant_grpc;
        fail("network.ports.qdrant_grpc", format!("port {port} is already used by another service"));
    }
    if profile.postgres.max_connections > 10_000 {
        fail("postgres.max_connections", "above 10000; put a pooler in front instead".into());
    }
    if profile.postgres.connection_limit == 0 {
        fail("postgres.connection_limit", "0 would lock the application out; use at least 1".into());
    }
    if profile.runs(Service::Pgbouncer) {
        let pgbouncer = &profile.pgbouncer;
        let max_connections = profile.postgres.effective_max_connections();
        // Two pools per application user (its two logins), and room left for hardstack's own
        // logins (admin, health, backup, pgbouncer: 16; monitor: 5 more) and the superuser's
        // reserve (3).
        let pooled = 2 * profile.users.len() as u32 * pgbouncer.pool_size;
        let reserved = if profile.runs(Service::PostgresExporter) { 24 } else { 19 };
        if pgbouncer.pool_size == 0 || pgbouncer.pool_size > profile.postgres.connection_limit {
            fail(
                "pgbouncer.pool_size",
                format!(
                    "{} is not between 1 and postgres.connection_limit ({}): a pool larger than its login's limit fails its extra connections",
                    pgbouncer.pool_size, profile.postgres.connection_limit
                ),
            );
        } else if pooled + reserved > max_connections {
            fail(
                "pgbouncer.pool_size",
                format!(
                    "{} pools of {} need {pooled} server connections, more than max_connections ({max_connections}) leaves after {reserved} for hardstack's logins; lower the pool size or raise postgres.max_connections",
                    2 * profile.users.len(),
                    pgbouncer.pool_size
                ),
            );
        }
        if pgbouncer.max_client_connections == 0 {
            fail("pgbouncer.max_client_connections", "0 would refuse every client; use at least 1".into());
        }
    }

    let day = Duration::from_secs(86_400);
    let tls = &profile.tls;
    for (key, span) in [
        ("tls.ca_lifetime", tls.ca_lifetime),
        ("tls.server_lifetime", tls.server_lifetime),
        ("tls.client_lifetime", tls.client_lifetime),
    ] {
        if span.0 < day {
            fail(key, "at least one day".into());
        }
    }
    if tls.server_lifetime > tls.ca_lifetime {
        fail("tls.server_lifetime", "longer than tls.ca_lifetime; a certificate cannot outlive its CA".into());
    }
    if tls.client_lifetime > tls.ca_lifetime {
        fail("tls.client_lifetime", "longer than tls.ca_lifetime; a certificate cannot outlive its CA".into());
    }
    for (index, san) in tls.extra_sans.iter().enumerate() {
        if san.parse::<std::net::IpAddr>().is_err() && !is_dns_name(san) {
            fail(&format!("tls.extra_sans.{index}"), format!("`{san}` is neither a DNS name nor an IP address"));
        }
    }

    if profile.users.is_empty() {
        fail("users", "declare at least one application user with [[users]]".into());
    }
    let mut names = HashSet::new();
    for (index, user) in profile.users.iter().enumerate() {
        if !is_identifier(&user.name) {
            fail(
                &format!("users.{index}.name"),
                format!("`{}` must be 1-40 characters of a-z, 0-9 and _, starting with a letter or _", user.name),
            );
        } else if RESERVED_USERS.contains(&user.name.as_str()) {
            fail(
                &format!("users.{index}.name"),
                format!("`{}` is reserved by hardstack; pick another name", user.name),
            );
        } else if user.name.ends_with("_alt") {
            fail(
                &format!("users.{index}.name"),
                format!("`{}` ends with _alt, which hardstack uses for the second login of each user", user.name),
            );
        } else if !names.insert(user.name.as_str()) {
            fail(&format!("users.{index}.name"), format!("`{}` is declared twice", user.name));
        }
        if !is_identifier(&user.database) || user.database == "postgres" || user.database.starts_with("template") {
            fail(
                &format!("users.{index}.database"),
                format!("`{}` must be a plain identifier and not a system database", user.database),
            );
        }
        if user.redis_keys.is_empty() || user.redis_keys.contains(char::is_whitespace) || user.redis_keys == "*" {
            fail(
                &format!("users.{index}.redis_keys"),
                format!("`{}` must be a key pattern without spaces, narrower than *", user.redis_keys),
            );
        }
    }

    if profile.secrets.store == StoreKind::Aws && profile.secrets.aws.region.is_empty() {
        fail("secrets.aws.region", "the aws store needs a region".into());
    }
    let rotation = &profile.rotation;
    if rotation.cert_renew_before >= tls.server_lifetime {
        fail("rotation.cert_renew_before", "must be shorter than tls.server_lifetime, or every run re-issues".into());
    }
    let backup = &profile.backup;
    for (key, schedule) in [
        ("rotation.schedule", &rotation.schedule),
        ("backup.schedule", &backup.schedule),
        ("backup.test_schedule", &backup.test_schedule),
    ] {
        if schedule.trim().is_empty() || schedule.contains('\n') {
            fail(key, "a systemd OnCalendar expression such as \"daily\"".into());
        }
    }
    if backup.dir.trim().is_empty() || backup.dir.contains(['\n', ':']) {
        fail(
            "backup.dir",
            format!(
                "`{}` must be a directory path without ':' (absolute, or relative to the stack directory)",
                backup.dir
            ),
        );
    }
    if backup.keep == 0 {
        fail("backup.keep", "keep at least one set".into());
    }
    let dns_label = |name: &str| {
        !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    };
    let kubernetes = &profile.kubernetes;
    if !kubernetes.namespace.is_empty() && !dns_label(&kubernetes.namespace) {
        fail(
            "kubernetes.namespace",
            format!("`{}` must be a DNS label: lowercase letters, digits and '-', at most 63", kubernetes.namespace),
        );
    }
    for (index, client) in kubernetes.clients.iter().enumerate() {
        if !dns_label(&client.namespace) {
            fail(
                &format!("kubernetes.clients.{index}.namespace"),
                format!("`{}` must be a namespace's name (a DNS label)", client.namespace),
            );
        }
        if client.pods.keys().any(|k| k.is_empty() || k.contains(char::is_whitespace)) {
            fail(&format!("kubernetes.clients.{index}.pods"), "label keys are non-empty, without spaces".into());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    fn dev() -> Profile {
        load(&ProfileSource::Shipped("dev".into()), &[]).expect("dev is valid").profile
    }

    #[test]
    fn shipped_profiles_are_valid() {
        for name in ["dev", "test", "prod"] {
            let profile = load(&ProfileSource::Shipped(name.into()), &[]).unwrap().profile;
            assert_eq!(validate(&profile), vec![], "{name}");
        }
    }

    #[test]
    fn reserved_and_duplicate_users_are_rejected() {
        let mut profile = dev();
        profile.users.push(profile.users[0].clone());
        profile.users[0].name = "postgres".into();
        let keys: Vec<_> = validate(&profile).into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"users.0.name".to_string()), "{keys:?}");
    }

    #[test]
    fn maxmemory_must_fit_the_container() {
        let mut profile = dev();
        profile.redis.maxmemory = profile.resources.redis.memory;
        assert!(validate(&profile).iter().any(|p| p.key == "redis.maxmemory"));
    }

    #[test]
    fn bad_extra_san_is_named_by_index() {
        let mut profile = dev();
        profile.tls.extra_sans = vec!["ok.example".into(), "not a name".into()];
        let problems = validate(&profile);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "tls.extra_sans.1");
    }

    #[test]
    fn duplicate_published_ports_are_rejected() {
        let mut profile = dev();
        profile.network.ports.redis = profile.network.ports.postgres;
        assert!(validate(&profile).iter().any(|p| p.key == "network.ports.redis"));
    }

    #[test]
    fn pools_must_fit_the_login_limit_and_max_connections() {
        let mut profile = dev();
        profile.stack.services.push(Service::Pgbouncer);
        assert_eq!(validate(&profile), vec![]);
        profile.pgbouncer.pool_size = profile.postgres.connection_limit + 1;
        let problems = validate(&profile);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "pgbouncer.pool_size");
        assert!(problems[0].message.contains("postgres.connection_limit"), "{}", problems[0].message);
        // Two pools per user: ten users of ten connections each need 200 of max_connections 200.
        profile.pgbouncer.pool_size = 10;
        profile.postgres.max_connections = 200;
        for n in 1..10 {
            let mut user = profile.users[0].clone();
            user.name = format!("user{n}");
            user.database = format!("db{n}");
            profile.users.push(user);
        }
        let problems = validate(&profile);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("need 200 server connections"), "{}", problems[0].message);
    }
}
