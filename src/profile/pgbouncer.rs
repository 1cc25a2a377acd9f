//! The settings of the pooling and monitoring services in the profile: PgBouncer's pool mode
//! and sizes, Prometheus's scrape interval and retention.

use serde::{Deserialize, Serialize};

/// How PgBouncer shares server connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A server connection per client connection, for its whole life.
    Session,
    /// A server connection per transaction: most clients per server connection; session state
    /// (SET, advisory locks, LISTEN) does not survive a transaction.
    Transaction,
    /// A server connection per statement; multi-statement transactions are refused.
    Statement,
}

impl PoolMode {
    /// PgBouncer's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// PgBouncer settings. Each login of each application user is one pool to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PgbouncerSettings {
    /// How server connections are shared among clients (`pool_mode`): `transaction` serves the
    /// most clients; `session` keeps session state (SET, advisory locks, LISTEN).
    pub pool_mode: PoolMode,
    /// Server connections per pool (`default_pool_size`): at most the login's
    /// `postgres.connection_limit`, and all pools together fit in `max_connections`.
    pub pool_size: u32,
    /// Client connections PgBouncer accepts in all (`max_client_conn`).
    pub max_client_connections: u32,
    /// Protocol-level prepared statements kept per server connection
    /// (`max_prepared_statements`; 0 turns their support off).
    pub max_prepared_statements: u32,
}

impl Default for PgbouncerSettings {
    fn default() -> Self {
        PgbouncerSettings {
            pool_mode: PoolMode::Transaction,
            pool_size: 10,
            max_client_connections: 500,
            max_prepared_statements: 200,
        }
    }
}

impl PgbouncerSettings {
    pub(super) fn is_default(&self) -> bool {
        *self == PgbouncerSettings::default()
    }
}

/// Prometheus settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusSettings {
    /// How often every target is scraped and the rules evaluated; an alert fires once its
    /// condition held for four of them.
    pub scrape_interval: super::Span,
    /// How long samples are kept (`--storage.tsdb.retention.time`).
    pub retention: super::Span,
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        PrometheusSettings {
            scrape_interval: super::Span(std::time::Duration::from_secs(15)),
            retention: super::Span(std::time::Duration::from_secs(15 * 86_400)),
        }
    }
}

impl PrometheusSettings {
    pub fn is_default(&self) -> bool {
        *self == PrometheusSettings::default()
    }
}
