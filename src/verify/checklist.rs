//! The production checklist (the deployment checklist of storage backends hardstack automates):
//! TLS, authentication, network isolation, secret storage, pooling, resource limits,
//! monitoring, health checks, backups. Each item is PASS, FAIL or N/A with a one-line reason
//! and its evidence, derived from the probes and from the engine's view of the containers.

use super::{CheckFuture, Context, bounded};
use crate::containers;
use crate::profile::Service;
use crate::report::{Check, Verdict};

fn from(id: &str, result: anyhow::Result<(bool, String, String)>) -> Check {
    match result {
        Ok((true, reason, evidence)) => Check::pass(id, reason, evidence),
        Ok((false, reason, evidence)) => Check::fail(id, reason, evidence),
        Err(err) => Check::fail(id, "the check could not look", format!("{err:#}")),
    }
}

/// Checks that read the engine's view of the containers; they run on the host, whatever the
/// vantage point of the others.
pub fn engine_checks<'a>(context: &'a Context, engine: &'a crate::runtime::Engine) -> Vec<CheckFuture<'a>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    checks.push(bounded("network.loopback_only".into(), async move {
        let id = "network.loopback_only";
        if !(context.profile.name == "dev" || context.profile.network.bind_address.is_loopback()) {
            return Check::not_applicable(id, "the profile publishes beyond loopback on purpose");
        }
        from(
            id,
            async {
                let mut open = Vec::new();
                let mut seen = Vec::new();
                for (service, info) in &context.containers {
                    let bindings = info.host_config.as_ref().and_then(|h| h.port_bindings.clone()).unwrap_or_default();
                    for binding in bindings.values().flatten().flatten() {
                        let ip = binding.host_ip.clone().unwrap_or_default();
                        let port = binding.host_port.clone().unwrap_or_default();
                        seen.push(format!("{service} {ip}:{port}"));
                        let loopback = ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
                        if !loopback {
                            open.push(format!(
                                "{service} publishes on {}:{port}",
                                if ip.is_empty() { "0.0.0.0" } else { &ip }
                            ));
                        }
                    }
                }
                Ok(if seen.is_empty() {
                    (true, "no port is published".into(), "the engine shows no port binding".into())
                } else if open.is_empty() {
                    (true, "every published port is bound to loopback".into(), seen.join(", "))
                } else {
                    (false, "a published port is bound to a non-loopback address".into(), open.join(", "))
                })
            }
            .await,
        )
    }));
    checks.push(bounded("checklist.network_isolation".into(), async move {
        from(
            "checklist.network_isolation",
            async {
                let network = containers::stack_names(&context.profile).network;
                let mut problems = Vec::new();
                for (service, info) in &context.containers {
                    let networks: Vec<String> = info
                        .network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref())
                        .map(|n| n.keys().cloned().collect())
                        .unwrap_or_default();
                    if networks != [network.clone()] {
                        problems.push(format!("{service} is on {networks:?}"));
                    }
                }
                Ok(if problems.is_empty() {
                    (true, "every server is on the stack's private network only".into(), format!("network {network}"))
                } else {
                    (false, "a server is on another network".into(), problems.join("; "))
                })
            }
            .await,
        )
    }));
    checks.push(bounded("checklist.secret_storage".into(), async move {
        from(
            "checklist.secret_storage",
            async {
                let versions = context
                    .secrets
                    .current
                    .values()
                    .chain(&context.secrets.qdrant_pending)
                    .chain(&context.secrets.qdrant_previous);
                let values: Vec<crate::secrets::Secret> = versions.map(|v| v.value.clone()).collect();
                let mut problems = Vec::new();
                for (service, info) in &context.containers {
                    let env = info.config.as_ref().and_then(|c| c.env.clone()).unwrap_or_default();
                    if env.iter().any(|e| values.iter().any(|v| e.contains(v.expose()))) {
                        problems.push(format!("{service}: a secret is in an environment variable"));
                    }
                }
                if context.file_store {
                    for name in context.secrets.current.keys() {
                        let path = context.dir.file(&crate::layout::StackFile::Secret(name.clone()));
                        if crate::fsio::mode_of(&path).is_some_and(|m| m & 0o077 != 0) {
                            problems.push(format!("{} is readable by others", path.display()));
                        }
                    }
                }
                Ok(if problems.is_empty() {
                    (
                        true,
                        format!(
                            "secrets in the {:?} store, 0600; none in a container environment",
                            context.profile.secrets.store
                        )
                        .to_lowercase(),
                        format!("{} secret versions checked", values.len()),
                    )
                } else {
                    (false, "a secret is exposed".into(), problems.join("; "))
                })
            }
            .await,
        )
    }));
    checks.push(bounded("checklist.resource_limits".into(), async move {
        from(
            "checklist.resource_limits",
            async {
                let mut problems = Vec::new();
                let mut evidence = Vec::new();
                for (service, info) in &context.containers {
                    let host = info.host_config.clone().unwrap_or_default();
                    let (memory, cpus, pids) =
                        (host.memory.unwrap_or(0), host.nano_cpus.unwrap_or(0), host.pids_limit.unwrap_or(0));
                    evidence.push(format!(
                        "{service}: {}MiB, {:.1} CPU, {pids} pids",
                        memory / 1_048_576,
                        cpus as f64 / 1e9
                    ));
                    if memory <= 0 || cpus <= 0 || pids <= 0 {
                        problems.push(format!("{service} lacks a limit"));
                    }
                }
                Ok((
                    problems.is_empty(),
                    if problems.is_empty() {
                        "memory, CPU and pids limits on every container".into()
                    } else {
                        problems.join("; ")
                    },
                    evidence.join("; "),
                ))
            }
            .await,
        )
    }));
    checks.push(bounded("checklist.health_checks".into(), async move {
        from(
            "checklist.health_checks",
            async {
                // Right after `up`, the engine may not have run a healthcheck yet (its first run
                // comes one interval after the start): run that one now, as the engine would.
                let verdicts = context.containers.iter().map(|(_, info)| async move {
                    let status = info.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status);
                    match status {
                        Some(crate::runtime::HealthStatus::STARTING) => {
                            let name = info.name.as_deref().unwrap_or_default().trim_start_matches('/');
                            match engine.run_configured_healthcheck(name, info).await {
                                Ok(()) => "healthy (its first run was pending: ran it now)".to_owned(),
                                Err(err) => format!("failing when run now ({err:#})"),
                            }
                        }
                        Some(status) => status.to_string(),
                        None => "none".to_owned(),
                    }
                });
                let verdicts = futures_util::future::join_all(verdicts).await;
                let mut problems = Vec::new();
                let mut evidence = Vec::new();
                for ((service, info), status) in context.containers.iter().zip(verdicts) {
                    let has = info
                        .config
                        .as_ref()
                        .and_then(|c| c.healthcheck.as_ref()?.test.as_ref())
                        .is_some_and(|t| !t.is_empty());
                    evidence.push(format!("{service}: {status}"));
                    if !has || !status.starts_with("healthy") {
                        problems.push(format!("{service}: healthcheck {status}"));
                    }
                }
                Ok((
                    problems.is_empty(),
                    if problems.is_empty() {
                        "every container has a healthcheck, and it passes".into()
                    } else {
                        problems.join("; ")
                    },
                    evidence.join(", "),
                ))
            }
            .await,
        )
    }));
    checks
}

/// Checklist items that ask the servers (PostgreSQL's settings): they run where the service
/// checks run, on the host or inside the stack network.
pub fn server_checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.runs(Service::Postgres) {
        checks.push(bounded("checklist.pooling".into(), async move {
            if !context.profile.runs(Service::Pgbouncer) {
                return Check::not_applicable(
                    "checklist.pooling",
                    "the stack runs no pooler: add pgbouncer to stack.services, and applications connect through it",
                );
            }
            // A pool that is deployed is not enough: a login through it must reach PostgreSQL.
            match super::pgbouncer::login_through(context).await {
                Ok(evidence) => Check::pass(
                    "checklist.pooling",
                    format!(
                        "PgBouncer pools the application logins ({} mode, {} server connections per login)",
                        context.profile.pgbouncer.pool_mode.as_str(),
                        context.profile.pgbouncer.pool_size
                    ),
                    evidence,
                ),
                Err(err) => Check::fail(
                    "checklist.pooling",
                    "an application login through PgBouncer failed",
                    format!("{err:#}"),
                ),
            }
        }));
        checks.push(bounded("checklist.logging".into(), async move {
            from(
                "checklist.logging",
                async {
                    let values = super::postgres::show(
                        context,
                        &["log_connections", "log_disconnections", "log_min_duration_statement"],
                    )
                    .await?;
                    let ok = values.iter().all(|(k, v)| match k.as_str() {
                        "log_connections" | "log_disconnections" => v == "on",
                        "log_min_duration_statement" => v != "-1",
                        _ => true,
                    });
                    let evidence = values
                        .iter()
                        .filter(|(k, _)| k != "rolconnlimit")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    Ok((
                        ok,
                        if ok {
                            "connections, disconnections and slow statements are logged (docker logs)".into()
                        } else {
                            "PostgreSQL logging is incomplete".into()
                        },
                        evidence,
                    ))
                }
                .await,
            )
        }));
    }
    checks
}

/// Checklist items that summarise other checks.
pub fn derived(context: &Context, results: &[Check]) -> Vec<Check> {
    let mut checks = groups(results);
    checks.push(super::monitoring::checklist(context, results));
    checks.push(backups(context));
    checks
}

/// The groups that summarise the live checks: a group fails when a member failed, and when it
/// has no member that passed (an empty group proves nothing).
fn groups(results: &[Check]) -> Vec<Check> {
    let group = |id: &str, reason: &str, members: &dyn Fn(&str) -> bool| -> Check {
        let related: Vec<&Check> = results.iter().filter(|c| members(&c.id)).collect();
        let failed: Vec<&str> = related.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.id.as_str()).collect();
        let passed = related.iter().filter(|c| c.verdict == Verdict::Pass).count();
        if passed == 0 && failed.is_empty() {
            // A group that nothing passed proves nothing: the checklist itself is broken.
            Check::fail(
                id,
                "the checklist found no check of its group to summarise",
                format!("{} related checks, none passed", related.len()),
            )
        } else if failed.is_empty() {
            Check::pass(id, reason, format!("{passed} checks passed"))
        } else {
            Check::fail(
                id,
                format!("failing: {}", failed.join(", ")),
                format!("{} of {} checks failed", failed.len(), related.len()),
            )
        }
    };
    vec![
        group(
            "checklist.tls",
            "TLS with verification on every service; plaintext and unverified names refused",
            &|id| {
                id.contains(".login")
                    || id.ends_with("plaintext_refused")
                    || id.ends_with("wrong_host_name_refused")
                    || id.ends_with("client_cert_refused")
            },
        ),
        group(
            "checklist.authentication",
            "no default credentials; wrong, missing and superuser logins refused; admin commands refused to applications",
            &|id| {
                [
                    "wrong_password_refused",
                    "no_password_refused",
                    "default_user_refused",
                    "superuser_network_refused",
                    "no_key_refused",
                    "wrong_key_refused",
                    "read_only_write_refused",
                    "admin_commands_refused",
                    "create_role_refused",
                    "alter_system_refused",
                    "other_database_refused",
                ]
                .iter()
                .any(|suffix| id.contains(suffix))
            },
        ),
    ]
}

/// The backups item: PASS only when a restore test of a set younger than `backup.max_age`
/// passed; otherwise FAIL where the profile requires backups (prod), N/A with the reason
/// elsewhere (and where the data lives in memory).
fn backups(context: &Context) -> Check {
    let id = "checklist.backups";
    if crate::containers::data_volumes(&context.profile).is_empty() {
        return Check::not_applicable(id, "the data lives in tmpfs by design (test profile); nothing to back up");
    }
    let backups = crate::backup::Backups::of(&context.profile, &context.dir);
    let max_age = context.profile.backup.max_age.0;
    let record = match backups.restore_test() {
        Ok(record) => record,
        Err(err) => return Check::fail(id, "the restore-test record could not be read", format!("{err:#}")),
    };
    let age =
        |d: std::time::Duration| humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string();
    let (proven, reason) = match record.as_ref().and_then(|r| Some((r.last_pass.clone()?, r.proven_set_age()?))) {
        Some((pass, set_age)) if set_age < max_age => {
            return Check::pass(
                id,
                format!("a restore test of set {} ({} old) passed", pass.set, age(set_age)),
                format!("tested {}; backup.max_age {}", pass.tested, age(max_age)),
            );
        }
        Some((pass, set_age)) => (
            format!("set {} passed a restore test on {}", pass.set, pass.tested),
            format!(
                "the newest set a restore test proved is {} old, more than backup.max_age ({})",
                age(set_age),
                age(max_age)
            ),
        ),
        None => (
            format!(
                "{} sets in {}",
                backups.sets().map(|s| s.iter().filter(|s| s.complete).count()).unwrap_or(0),
                backups.root.display()
            ),
            "no restore test has passed: run `hardstack backup`, then `hardstack backup --test`".to_owned(),
        ),
    };
    if context.profile.backup.required {
        Check::fail(id, reason, proven)
    } else {
        Check::not_applicable(id, format!("{reason} (backup.required = false: this stack need not be backed up)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_without_members_fails_the_checklist() {
        let checks = groups(&[]);
        assert!(checks.iter().all(|c| c.verdict == Verdict::Fail), "{checks:?}");
        let only_not_applicable = [Check::not_applicable("pg.no_client_cert_refused", "off")];
        assert!(groups(&only_not_applicable).iter().all(|c| c.verdict == Verdict::Fail));
    }

    #[test]
    fn a_group_passes_on_its_passed_members_and_fails_on_a_failed_one() {
        let passed = [Check::pass("pg.login.app", "ok", "e"), Check::pass("redis.wrong_password_refused", "ok", "e")];
        let checks = groups(&passed);
        assert!(checks.iter().all(|c| c.verdict == Verdict::Pass), "{checks:?}");
        let failed = [Check::pass("pg.login.app", "ok", "e"), Check::fail("pg.plaintext_refused", "no", "e")];
        let tls = groups(&failed).into_iter().find(|c| c.id == "checklist.tls").unwrap();
        assert_eq!(tls.verdict, Verdict::Fail);
    }
}
