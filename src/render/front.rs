//! The render context of the Qdrant front (HAProxy): its TLS posture, the files it reads, the
//! SHA-256 of every application key it accepts with the access each gives, and Qdrant's own
//! keys, which it sends on in their place.

use serde_json::{Value, json};
use sha2::Digest as _;

use super::Material;
use crate::layout::{self, StackFile};
use crate::profile::{Profile, QdrantAccess, Service, TlsVersion};

/// The lowercase hex SHA-256 of a key: what the front's key map holds, so its files carry no
/// application key.
pub fn key_digest(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// What a user's access is called in the front's maps.
pub fn role(access: QdrantAccess) -> Option<&'static str> {
    match access {
        QdrantAccess::ReadWrite => Some("rw"),
        QdrantAccess::ReadOnly => Some("ro"),
        QdrantAccess::None => None,
    }
}

pub(super) fn context(profile: &Profile, material: &Material) -> anyhow::Result<Value> {
    let at = |file: StackFile| layout::container_path(profile, Service::QdrantFront, &file);
    let mut keys = Vec::new();
    for user in layout::front_key_users(profile) {
        let name = layout::login_secret(Service::QdrantFront, &user.name);
        let role = role(user.qdrant).expect("a user with a front key has Qdrant access");
        let others = material.front_other_keys.get(&name).into_iter().flatten();
        for key in std::iter::once(material.value(&name)?).chain(others) {
            keys.push(json!({ "digest": key_digest(key.expose()), "role": role, "user": user.name }));
        }
    }
    Ok(json!({
        "tls_min": match profile.qdrant.tls_min_version { TlsVersion::V12 => "TLSv1.2", TlsVersion::V13 => "TLSv1.3" },
        "verify": if profile.mutual_tls() { "required" } else { "none" },
        "server_cert": at(StackFile::ServerCert(Service::QdrantFront)),
        "server_key": at(StackFile::ServerKey(Service::QdrantFront)),
        "client_cert": at(StackFile::ClientCert(layout::FRONT.into())),
        "client_key": at(StackFile::ClientKey(layout::FRONT.into())),
        "ca": at(StackFile::CaCert),
        "users_map": at(StackFile::FrontUsers),
        "roles_map": at(StackFile::FrontRoles),
        "admin_socket": FRONT_ADMIN_SOCKET,
        "qdrant": Service::Qdrant.name(),
        // Every peer of a cluster, node 0 first: the front sends each request to one that is
        // ready, and again to another when a peer goes away under it.
        "peers": profile.qdrant.node_numbers().map(crate::peers::alias).collect::<Vec<_>>(),
        "rest_port": Service::Qdrant.container_port(),
        "grpc_port": crate::containers::QDRANT_GRPC_PORT,
        "keys": keys,
        "read_write_key": material.value(layout::QDRANT_API_KEY)?.expose(),
        "read_only_key": material.value(layout::QDRANT_READ_ONLY_API_KEY)?.expose(),
    }))
}

/// HAProxy's admin socket in the front's container (its tmpfs): rotation changes the key map
/// through it.
pub const FRONT_ADMIN_SOCKET: &str = "/tmp/admin.sock";
