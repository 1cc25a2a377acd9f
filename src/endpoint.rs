//! Where a client reaches a service: from the host (the published port), inside the stack
//! network (the service's alias), and what an application is given. Depends on the profile
//! model only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::profile::{Profile, Service};

/// Where a client reaches a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The name a client puts in its URL (`localhost`, an address, or the service's alias).
    pub host: String,
    pub port: u16,
}

/// Where hardstack's own checks reach a published service from the host: the address they
/// dial, which is also the name they verify (every server certificate covers the loopback
/// addresses), and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddress {
    pub address: IpAddr,
    pub port: u16,
}

/// The endpoint an application on the host uses: the published port at `localhost` (or at the
/// bind address when it is not loopback). `None` when nothing is published.
pub fn host_endpoint(profile: &Profile, service: Service) -> Option<Endpoint> {
    let bind = profile.network.bind_address;
    let host = if bind.is_loopback() || bind.is_unspecified() { "localhost".to_owned() } else { bind.to_string() };
    profile.network.publish.then(|| Endpoint { host, port: host_port(profile, service) })
}

/// The address and port hardstack's own checks dial on the host. `None` when nothing is
/// published.
pub fn host_address(profile: &Profile, service: Service) -> Option<HostAddress> {
    let bind = profile.network.bind_address;
    let address = match bind {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => bind,
    };
    // An exporter is for scrapes on the stack network only; Qdrant behind a front is reached
    // through it.
    publishes(profile, service).then(|| HostAddress { address, port: host_port(profile, service) })
}

/// The host port of a service; PostgreSQL's and Redis's are their primary node's (node 0's
/// until a switchover or failover moved it).
fn host_port(profile: &Profile, service: Service) -> u16 {
    match service {
        Service::Postgres => profile.network.ports.postgres_node(profile.postgres.primary_node()),
        Service::Redis => profile.network.ports.redis_node(profile.redis.primary_node()),
        _ => profile.network.ports.of(service),
    }
}

/// Whether a service's ports are bound on the host: where the stack publishes, never an
/// exporter's, and not Qdrant's own behind a front (the front publishes its ports).
pub fn publishes(profile: &Profile, service: Service) -> bool {
    profile.network.publish && !service.is_exporter() && service != Service::RedisSentinel && !profile.fronted(service)
}

/// Where an application reaches the Qdrant front's gRPC port: the host's where the stack
/// publishes, the stack network's otherwise.
pub fn front_grpc_endpoint(profile: &Profile) -> Endpoint {
    match host_endpoint(profile, Service::QdrantFront) {
        Some(Endpoint { host, .. }) => Endpoint { host, port: profile.network.ports.qdrant_grpc },
        None => Endpoint { host: Service::QdrantFront.name().to_owned(), port: QDRANT_GRPC_PORT },
    }
}

/// Qdrant's gRPC port, in its container and in the front's.
pub const QDRANT_GRPC_PORT: u16 = 6334;

/// The endpoint inside the stack network: the service's alias (PostgreSQL's primary node's)
/// and its container port.
pub fn network_endpoint(profile: &Profile, service: Service) -> Endpoint {
    let host = match service {
        Service::Postgres => replica_alias(profile.postgres.primary_node()),
        Service::Redis => crate::sentinel::alias(service, profile.redis.primary_node()),
        _ => service.name().to_owned(),
    };
    Endpoint { host, port: service.container_port() }
}

/// The endpoint an application is given (connections.json, `env`, the AWS store's RDS
/// fields): the host's when the stack publishes, the stack network's otherwise.
pub fn client_endpoint(profile: &Profile, service: Service) -> Endpoint {
    host_endpoint(profile, service).unwrap_or_else(|| network_endpoint(profile, service))
}

/// A PostgreSQL node's alias on the stack network and in its certificate: `postgres-1` for
/// replica 1, `postgres` for node 0.
pub fn replica_alias(node: u8) -> String {
    match node {
        0 => Service::Postgres.name().to_owned(),
        node => format!("{}-{node}", Service::Postgres.name()),
    }
}

/// Where an application reaches PostgreSQL's replica `node`: its published port on the host
/// where the stack publishes, its alias on the stack network otherwise.
pub fn replica_client_endpoint(profile: &Profile, node: u8) -> Endpoint {
    let port = profile.network.ports.postgres_node(node);
    match host_endpoint(profile, Service::Postgres) {
        Some(Endpoint { host, .. }) => Endpoint { host, port },
        None => Endpoint { host: replica_alias(node), port: Service::Postgres.container_port() },
    }
}

/// The address and port hardstack's own checks dial for replica `node` on the host; `None`
/// when nothing is published.
pub fn replica_host_address(profile: &Profile, node: u8) -> Option<HostAddress> {
    host_address(profile, Service::Postgres)
        .map(|address| HostAddress { port: profile.network.ports.postgres_node(node), ..address })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    fn shipped(name: &str) -> Profile {
        load(&ProfileSource::Shipped(name.into()), &[]).unwrap().profile
    }

    #[test]
    fn endpoints_from_the_host_and_inside_the_network() {
        let dev = shipped("dev");
        assert_eq!(client_endpoint(&dev, Service::Postgres), Endpoint { host: "localhost".into(), port: 5432 });
        let address = host_address(&dev, Service::Redis).unwrap();
        assert!(address.address.is_loopback());
        let prod = shipped("prod");
        assert_eq!(host_address(&prod, Service::Postgres), None);
        assert_eq!(client_endpoint(&prod, Service::Redis), Endpoint { host: "redis".into(), port: 6379 });
    }
}
