//! Monitoring checks: each exporter scraped over TLS with a client certificate of the stack,
//! its scrape holding the series hardstack's alert rules read; a scrape without a client
//! certificate refused; and the monitor logins refused anything but reading.

use anyhow::Context as _;
use rustls::AlertDescription;

use super::postgres::{Login, connect};
use super::{CheckFuture, Context, Refusal, accepted, bounded, bounded_within, prepare, refused};
use crate::layout;
use crate::probe::scrape::{self, MetricsTarget};
use crate::profile::Service;
use crate::report::Check;

/// Where the checks scrape an exporter, presenting `login`'s client certificate (or none).
fn target(context: &Context, exporter: Service, login: Option<&str>) -> anyhow::Result<MetricsTarget> {
    let tls = context.tls_for(login.unwrap_or(layout::ADMIN), login.is_some())?;
    Ok(MetricsTarget { address: context.addr(exporter), name: context.server_name(exporter), tls })
}

/// A scrape of `exporter` as a holder of a stack client certificate: its up series is 1 and
/// every series the alert rules read is there. What was found, or why not.
pub(super) async fn scraped(context: &Context, exporter: Service) -> anyhow::Result<String> {
    let metrics = scrape::scrape(&prepare(target(context, exporter, Some(layout::ADMIN)))?).await?;
    let (up, needed) = scrape::series(exporter);
    match scrape::sample(&metrics, up) {
        Some(1.0) => {}
        Some(value) => anyhow::bail!("{up} is {value}: the exporter does not reach its server"),
        None => anyhow::bail!("the scrape has no {up}"),
    }
    let missing: Vec<&str> = needed.iter().copied().filter(|s| scrape::sample(&metrics, s).is_none()).collect();
    anyhow::ensure!(missing.is_empty(), "the scrape lacks {}", missing.join(", "));
    Ok(format!("{up} 1, and {}", needed.join(", ")))
}

/// Prometheus's scrape targets, read from its API with a stack client certificate: each
/// target's job and health, and the error of one that is down.
pub(super) async fn targets(context: &Context) -> anyhow::Result<Vec<(String, String, String)>> {
    let target = prepare(target(context, Service::Prometheus, Some(layout::ADMIN)))?;
    let body = scrape::get(&target, "/api/v1/targets?state=active").await?;
    let document: serde_json::Value = serde_json::from_str(&body).context("Prometheus's targets are not JSON")?;
    let active = document["data"]["activeTargets"].as_array().context("Prometheus answered no activeTargets")?;
    Ok(active
        .iter()
        .map(|t| {
            let text = |key: &str| t[key].as_str().unwrap_or_default().to_owned();
            (t["labels"]["job"].as_str().unwrap_or_default().to_owned(), text("health"), text("lastError"))
        })
        .collect())
}

/// Every target the profile's services make is scraped, and up. A Prometheus just started
/// lists its targets after its first discovery (about 5 s) and scrapes each within an
/// interval, and a target that was restarted (an exporter given a new password) is down until
/// its next scrape: a target not up is waited for, briefly, then named.
pub(super) async fn targets_up(context: &Context) -> anyhow::Result<String> {
    let mut expected: Vec<&str> = Service::ALL
        .into_iter()
        .filter(|s| context.profile.runs(*s) && (s.is_monitoring() || *s == Service::Qdrant))
        .map(|s| s.name())
        .collect();
    expected.sort();
    let judge = |targets: Vec<(String, String, String)>| -> anyhow::Result<String> {
        let mut jobs: Vec<&str> = targets.iter().map(|(job, _, _)| job.as_str()).collect();
        jobs.sort();
        anyhow::ensure!(jobs == expected, "Prometheus scrapes {jobs:?}, the stack runs {expected:?}");
        let down: Vec<String> = targets
            .iter()
            .filter(|(_, health, _)| health != "up")
            .map(|(job, health, error)| format!("{job} {health}: {error}"))
            .collect();
        anyhow::ensure!(down.is_empty(), "targets not up: {}", down.join("; "));
        Ok(format!("{} targets up: {}", jobs.len(), jobs.join(", ")))
    };
    crate::retry::Backoff::every(std::time::Duration::from_millis(250), first_scrapes(context))
        .run(|| async {
            match targets(context).await.map(judge) {
                Ok(Ok(found)) => crate::retry::Attempt::Done(found),
                Ok(Err(not_yet)) => crate::retry::Attempt::Retry(not_yet),
                Err(err) => crate::retry::Attempt::Fail(err),
            }
        })
        .await
}

/// How long a Prometheus just started may take to scrape every target once: its first
/// discovery (about 5 s) and a scrape interval, twice over.
pub(super) fn first_scrapes(context: &Context) -> std::time::Duration {
    context.profile.prometheus.scrape_interval.0 * 2 + std::time::Duration::from_secs(6)
}

/// Every monitoring check of the exporters and Prometheus the profile runs.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.runs(Service::Prometheus) {
        let within = first_scrapes(context) + super::CHECK_TIMEOUT;
        checks.push(bounded_within("prometheus.targets_up".into(), within, async move {
            let what = "Prometheus's API over TLS with a stack client certificate, every target up";
            accepted("prometheus.targets_up", what, targets_up(context)).await
        }));
    }
    for exporter in Service::ALL.into_iter().filter(|s| s.is_monitoring()) {
        if !context.profile.runs(exporter) {
            continue;
        }
        let id = format!("{exporter}.no_client_cert_refused");
        checks.push(bounded(id.clone(), async move {
            // Asked over TLS 1.2 (probe::scrape), Go's TLS server ends the handshake with
            // bad_certificate.
            let refusal = Refusal::TlsAlert(&[AlertDescription::BadCertificate]);
            let attempt = async { scrape::scrape(&prepare(target(context, exporter, None))?).await };
            refused(&id, &format!("a request to {exporter} without a client certificate"), refusal, attempt).await
        }));
        if !exporter.is_exporter() {
            continue;
        }
        let id = format!("{exporter}.tls_scrape");
        checks.push(bounded(id.clone(), async move {
            let what = format!("a scrape of {exporter} over TLS with a stack client certificate");
            accepted(&id, &what, scraped(context, exporter)).await
        }));
    }
    if context.profile.runs(Service::Postgres)
        && layout::service_logins(&context.profile, Service::Postgres).contains(&layout::MONITOR)
    {
        checks.push(bounded("postgres.monitor_cannot_write".into(), async move {
            let attempt = async {
                let password = context.secret(&layout::login_secret(Service::Postgres, layout::MONITOR))?;
                let login = Login {
                    via: Service::Postgres,
                    user: layout::MONITOR,
                    password: Some(password),
                    database: "postgres",
                    tls: Some(prepare(context.tls_for(layout::MONITOR, true))?),
                    server_name: context.server_name(Service::Postgres),
                };
                let session = prepare(connect(context, login).await)?;
                let made = session.batch_execute("CREATE TABLE public.monitor_may_not_write (id int)").await;
                session.close().await;
                made.map_err(anyhow::Error::from)
            };
            let what = "a table made by the monitor login";
            refused("postgres.monitor_cannot_write", what, Refusal::Sqlstate(&["42501"]), attempt).await
        }));
    }
    if context.profile.runs(Service::RedisExporter) && context.profile.runs(Service::Redis) {
        checks.push(bounded("redis.monitor_cannot_write".into(), async move {
            let attempt = async {
                let mut connection = prepare(super::redis::app_connection(context, layout::MONITOR, true).await)?;
                redis::cmd("SET").arg("monitor-may-not-write").arg("1").query_async::<()>(&mut connection).await?;
                anyhow::Ok(())
            };
            let what = "a key written by the monitor user";
            refused("redis.monitor_cannot_write", what, Refusal::Redis(&["NOPERM"]), attempt).await
        }));
    }
    checks
}

/// `checklist.monitoring`, from the checks that ran: every exporter answered with the series
/// the alert rules read (`<exporter>.tls_scrape`) and, where Prometheus runs, it saw every
/// target up (`prometheus.targets_up`). No scrape of its own: those checks made them.
pub(super) fn checklist(context: &Context, results: &[Check]) -> Check {
    let id = "checklist.monitoring";
    let runs = |s: &Service| context.profile.runs(*s);
    let exporters: Vec<Service> = Service::ALL.into_iter().filter(|s| s.is_exporter() && runs(s)).collect();
    if exporters.is_empty() {
        return Check::not_applicable(
            id,
            "the stack runs no exporter: add postgres-exporter and redis-exporter to stack.services",
        );
    }
    let mut members: Vec<String> = exporters.iter().map(|e| format!("{e}.tls_scrape")).collect();
    if runs(&Service::Prometheus) {
        members.insert(0, "prometheus.targets_up".into());
    }
    let mut evidence = Vec::new();
    for member in &members {
        match results.iter().find(|c| c.id == *member) {
            Some(check) if check.verdict == crate::report::Verdict::Pass => {
                evidence.push(format!("{member}: {}", check.evidence))
            }
            Some(check) => {
                return Check::fail(id, format!("failing: {member}: {}", check.reason), check.evidence.clone());
            }
            None => return Check::fail(id, format!("{member} did not run"), "the checklist has nothing to summarise"),
        }
    }
    let what = match runs(&Service::Prometheus) {
        true => {
            "every exporter answers over TLS with the series the alert rules read, and Prometheus scrapes every target"
        }
        false => "every exporter answers over TLS with the series the alert rules read",
    };
    Check::pass(id, what, evidence.join("; "))
}
