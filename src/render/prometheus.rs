//! The render context of Prometheus: what it scrapes (every exporter the profile runs, Qdrant
//! with its read-only key, itself), over TLS verified against the stack CA with its own client
//! certificate, how often, and the alert rules' timing.

use serde_json::{Value, json};

use super::Material;
use crate::layout::{self, StackFile};
use crate::profile::{Profile, Service};

/// How many scrape intervals an alert's condition must hold before it fires.
pub const FOR_INTERVALS: u64 = 4;

pub(super) fn context(profile: &Profile, material: &Material) -> anyhow::Result<Value> {
    let at = |file: StackFile| layout::container_path(profile, Service::Prometheus, &file);
    let interval = profile.prometheus.scrape_interval.0.as_secs().max(1);
    let address = |service: Service| format!("{}:{}", service.name(), service.container_port());
    let exporters: Vec<Value> = Service::ALL
        .into_iter()
        .filter(|s| s.is_exporter() && profile.runs(*s))
        .map(|s| json!({ "job": s.name(), "address": address(s) }))
        .collect();
    let qdrant = match profile.runs(Service::Qdrant) {
        true => Some(json!({
            "address": address(Service::Qdrant),
            "read_only_api_key": material.value(layout::QDRANT_READ_ONLY_API_KEY)?.expose(),
        })),
        false => None,
    };
    Ok(json!({
        "interval": format!("{interval}s"),
        "for": format!("{}s", FOR_INTERVALS * interval),
        "rules": at(StackFile::PrometheusRules),
        "ca": at(StackFile::CaCert),
        "cert": at(StackFile::ClientCert(layout::SCRAPER.into())),
        "key": at(StackFile::ClientKey(layout::SCRAPER.into())),
        "itself": address(Service::Prometheus),
        "exporters": exporters,
        "postgres": profile.runs(Service::PostgresExporter),
        "wal_archive": profile.runs(Service::PostgresExporter) && profile.backup.wal_archive,
        "redis": profile.runs(Service::RedisExporter),
        "pgbouncer": profile.runs(Service::PgbouncerExporter),
        "qdrant": qdrant,
        "renew_before_seconds": profile.rotation.cert_renew_before.0.as_secs(),
        "certificates": material
            .certificates
            .iter()
            .map(|(service, expires)| json!({ "service": service.name(), "expires": expires }))
            .collect::<Vec<_>>(),
    }))
}
