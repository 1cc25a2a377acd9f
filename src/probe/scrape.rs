//! Scrapes of an exporter: `GET /metrics` over TLS verified against the stack CA, presenting a
//! client certificate of the stack (the exporters require one). The exporters are never
//! published: the checks reach them at their address on the stack network (from the host, the
//! container's address on the engine's bridge, which a local engine routes) and verify the
//! certificate against their alias.

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::profile::Service;

use super::{CONNECT_TIMEOUT, ClientTls, rustls_config, rustls_config_with};

/// Where an exporter is scraped.
#[derive(Debug, Clone)]
pub struct MetricsTarget {
    pub address: SocketAddr,
    /// The name its certificate is verified against (its alias on the stack network).
    pub name: String,
    pub tls: ClientTls,
}

/// The exporter's metrics, in Prometheus's text format.
pub async fn scrape(target: &MetricsTarget) -> anyhow::Result<String> {
    get(target, "/metrics").await
}

/// The body of `GET path` (Prometheus's API, an exporter's metrics).
pub async fn get(target: &MetricsTarget, path: &str) -> anyhow::Result<String> {
    // Without a client certificate, TLS 1.2: the server's refusal then ends the handshake,
    // where under TLS 1.3 it arrives after the request was sent and races the client's report.
    let config = match target.tls.client {
        Some(_) => rustls_config(&target.tls)?,
        None => rustls_config_with(&target.tls, &[&rustls::version::TLS12])?,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve(&target.name, target.address)
        .timeout(CONNECT_TIMEOUT)
        .build()
        .context("building the HTTPS client")?;
    let url = format!("https://{}:{}{path}", target.name, target.address.port());
    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(response.status().is_success(), "GET {url} answered {}", response.status());
    response.text().await.with_context(|| format!("reading {url}"))
}

/// The value of the first sample of `series` (a metric name, optionally with labels as they
/// are written, `pg_up` or `redis_up`) in a scrape; `None` when the scrape has no such sample.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let rest = line.strip_prefix(series)?;
        // The name must end here: `pg_up` is not `pg_uptime_seconds`.
        let value = match rest.chars().next()? {
            ' ' => rest,
            '{' => &rest[rest.find('}')? + 1..],
            _ => return None,
        };
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The series of each exporter that the alert rules read (connections against
/// `max_connections`, Redis memory against maxmemory and evictions), and the one that says the
/// exporter reached its server (1).
pub fn series(exporter: Service) -> (&'static str, &'static [&'static str]) {
    match exporter {
        Service::PostgresExporter => {
            ("pg_up", &["pg_settings_max_connections", "pg_stat_activity_count", "pg_stat_archiver_failed_count"])
        }
        Service::RedisExporter => {
            ("redis_up", &["redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total"])
        }
        Service::PgbouncerExporter => (
            "pgbouncer_up",
            &["pgbouncer_pools_client_waiting_connections", "pgbouncer_pools_client_active_connections"],
        ),
        _ => ("", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_whole_name_with_or_without_labels() {
        let metrics = "# HELP pg_up up\n# TYPE pg_up gauge\npg_uptime_seconds 12\npg_up 1\nredis_memory_max_bytes{a=\"b c\"} 1.5e+09\n";
        assert_eq!(sample(metrics, "pg_up"), Some(1.0));
        assert_eq!(sample(metrics, "redis_memory_max_bytes"), Some(1.5e9));
        assert_eq!(sample(metrics, "pg_upt"), None);
        assert_eq!(sample(metrics, "redis_up"), None);
    }
}
