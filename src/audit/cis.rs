//! What the CIS PostgreSQL 17 benchmark v1.0.0 (as pgdsat v2.0 checks it:
//! https://github.com/HexaCluster/pgdsat, lib/PGDSAT/Labels.pm for the item list) accepts, for
//! the audit rules and the live checks alike.

/// The suites pgdsat's CIS 6.10 check allows: AEAD, forward secret.
pub const CIS_CIPHERS: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES256-CCM",
    "ECDHE-ECDSA-AES128-CCM",
    "DHE-RSA-AES256-CCM",
    "DHE-RSA-AES128-CCM",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "DHE-DSS-AES256-GCM-SHA384",
    "DHE-DSS-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-CHACHA20-POLY1305",
];

/// Whether every suite of an `ssl_ciphers` list is one CIS 6.10 allows.
pub fn forward_secret(ciphers: &str) -> bool {
    ciphers.split(':').all(|c| CIS_CIPHERS.contains(&c.trim()))
}

/// Whether a `listen_addresses` value names every interface.
pub fn listens_everywhere(addresses: &str) -> bool {
    addresses.split(',').map(str::trim).any(|a| matches!(a, "*" | "0.0.0.0" | "::" | ""))
}
