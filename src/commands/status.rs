//! `hardstack status`: per service, the container's state and health, its published port, the
//! server certificate's expiry and the age of the service's application secret; with
//! `--details` the live numbers of each running service (`live`), and with `--watch` the
//! same again every interval until interrupted.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::cli::{GlobalArgs, StatusArgs};
use crate::containers;
use crate::layout::{self, StackFile};
use crate::pki;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::{SecretStore as _, Stage, Store};
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `status`.
pub async fn run(global: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let store = Store::open(&profile, &dir).await?;
    let engine = super::engine_for(&dir, &profile, false).await?;
    let details = args.details || args.watch.is_some();
    let Some(every) = args.watch else {
        let (document, text) = report(&profile, &dir, &store, &engine, details).await?;
        output.json(&document);
        let inputs = crate::inputs::Inputs::read(&dir)?;
        super::warn_accepted(&output, &inputs);
        output.table(&text);
        return Ok(ExitCode::SUCCESS);
    };
    // A schedule, not a wait for a condition: one report per tick until Ctrl-C. The stream is
    // made once, so a Ctrl-C that comes while a report is being read is kept, not lost.
    let mut ticks = tokio::time::interval(every);
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|err| anyhow::anyhow!("listening for Ctrl-C: {err}"))?;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        }
        let (document, text) = tokio::select! {
            reported = report(&profile, &dir, &store, &engine, details) => reported?,
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        };
        output.json(&document);
        output.redraw(&format!("{text}(every {}s; Ctrl-C stops)\n", every.as_secs_f64()));
    }
}

/// The status document and its text for a person.
async fn report(
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    engine: &Engine,
    details: bool,
) -> anyhow::Result<(Value, String)> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let mut rows = Vec::new();
    // Redis's nodes' roles, as each node says (a failover moves the primary without hardstack).
    let redis_roles = match profile.redis.replicas > 0 && profile.runs(Service::Redis) {
        true => crate::converge::sentinel::roles(engine, profile, dir, store).await,
        false => Default::default(),
    };
    // The key that asks Qdrant's peers for their roles, read once.
    let qdrant_key = match crate::peers::is_cluster(profile) {
        true => Some(store.current(layout::QDRANT_API_KEY).await?.value),
        false => None,
    };
    let specs = containers::running_specs(profile).into_iter().chain(crate::replica::specs(profile));
    for spec in specs.chain(crate::sentinel::specs(profile)).chain(crate::peers::specs(profile)) {
        let replica = crate::replica::is_standby(profile, &spec);
        let info = engine.inspect(&spec.name).await?;
        let state = info.as_ref().and_then(|i| i.state.as_ref());
        let status = state.and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_else(|| "absent".into());
        let health = state.and_then(|s| s.health.as_ref()?.status).map(|h| h.to_string()).unwrap_or_else(|| "-".into());
        let image = info.as_ref().and_then(|i| i.config.as_ref()?.image.clone());
        let cert = std::fs::read_to_string(dir.file(&StackFile::ServerCert(spec.service))).ok();
        let expires_in_days = cert.and_then(|pem| pki::not_after(&pem).ok()).map(|t| (t - now) / 86_400);
        let user = profile.users.first().map(|u| u.name.clone()).unwrap_or_default();
        let secret = match spec.service {
            Service::Qdrant => layout::QDRANT_API_KEY.to_owned(),
            // Clients log in through the pooler with their PostgreSQL password.
            Service::Pgbouncer => layout::login_secret(Service::Postgres, &user),
            // Applications ask the Sentinels as the discovery login.
            Service::RedisSentinel => layout::login_secret(Service::RedisSentinel, layout::DISCOVERY),
            service => layout::login_secret(service, &user),
        };
        let age_days = store
            .get(&secret, Stage::Current)
            .await?
            .and_then(|v| SystemTime::now().duration_since(v.created).ok())
            .map(|d| d.as_secs() / 86_400);
        let mut row = json!({
            "service": spec.alias,
            "container": spec.name,
            "image": image,
            "state": status,
            "health": health,
            "published": spec.publish.as_ref().map(|(a, p)| format!("{a}:{p}")),
            "certificate_expires_in_days": expires_in_days,
            "secret": secret,
            "secret_age_days": age_days,
        });
        if replica {
            row["replica_of"] = json!(Service::Postgres);
        }
        // Which node is the primary, once the stack runs replicas (a switchover moves it).
        if crate::replica::node(&spec).is_some() && profile.postgres.replicas > 0 {
            row["role"] = json!(if replica { "standby" } else { "primary" });
        }
        if spec.service == Service::Redis
            && let Some(role) = crate::sentinel::node(&spec).and_then(|node| redis_roles.get(&node))
        {
            use crate::converge::sentinel::Role;
            row["role"] = match role {
                Role::Primary => json!("primary"),
                Role::Replica(of) => {
                    row["replica_of"] = json!(of);
                    json!("replica")
                }
                Role::Down(_) => json!("down"),
            };
        }
        // A Qdrant peer's role in the consensus, as it says.
        if let (Service::Qdrant, Some(key)) = (spec.service, &qdrant_key) {
            row["role"] = json!(peer_role(engine, profile, dir, key, &spec).await);
        }
        // A monitoring service's numbers are its servers'; a replica's are its primary's.
        if details && !spec.service.is_monitoring() && !replica {
            row["details"] = match status.as_str() {
                "running" => crate::live::numbers(engine, profile, dir, store, spec.service).await,
                _ => json!({ "error": format!("the container is {status}") }),
            };
        }
        rows.push(row);
    }
    let backups = crate::backup::Backups::of(profile, dir);
    let sets = backups.sets()?;
    let latest =
        sets.iter().rev().find(|s| s.complete).map(|set| crate::backup::read_manifest(&set.path)).transpose()?;
    let test = backups.restore_test()?;
    let backup = json!({
        "dir": backups.root,
        "sets": sets.iter().filter(|s| s.complete).map(|s| &s.id).collect::<Vec<_>>(),
        "incomplete": sets.iter().filter(|s| !s.complete).map(|s| &s.id).collect::<Vec<_>>(),
        "last_backup": latest.as_ref().map(|m| json!({"set": m.id, "finished": m.finished})),
        "last_restore_test": test.as_ref().map(|t| json!({"set": t.set, "tested": t.tested, "passed": t.passed})),
        "last_successful_restore_test": test.as_ref().and_then(|t| t.last_pass.as_ref()).map(|p| json!({"set": p.set, "tested": p.tested})),
    });
    let inputs = crate::inputs::Inputs::read(dir)?;
    let identity = crate::identity::Identity::read(dir)?;
    let document = json!({
        "schema": "hardstack.status/v1", "stack": profile.stack.name, "services": rows, "backup": backup,
        "identity": identity.as_ref().map(|i| &i.id), "templates": inputs.templates, "accepted_audit_rules": inputs.accepted,
    });

    // The widest name sets the first column (`postgres-exporter`, a replica's `postgres-1`).
    let w = rows.iter().filter_map(|r| r["service"].as_str()).map(str::len).max().unwrap_or(0).max(9);
    let mut text = format!(
        "{:<w$} {:<9} {:<10} {:<16} {:>9} {:>11}  IMAGE\n",
        "SERVICE", "STATE", "HEALTH", "PUBLISHED", "CERT DAYS", "SECRET AGE"
    );
    for row in &rows {
        let _ = writeln!(
            text,
            "{:<w$} {:<9} {:<10} {:<16} {:>9} {:>10}d  {}",
            row["service"].as_str().unwrap_or(""),
            row["state"].as_str().unwrap_or(""),
            row["health"].as_str().unwrap_or(""),
            row["published"].as_str().unwrap_or("-"),
            row["certificate_expires_in_days"].as_i64().map(|d| d.to_string()).unwrap_or("-".into()),
            row["secret_age_days"].as_u64().map(|d| d.to_string()).unwrap_or("-".into()),
            row["image"].as_str().unwrap_or("-"),
        );
    }
    let with = |role: &str, of: &str| -> Vec<&str> {
        let of = |r: &&Value| r["service"].as_str().is_some_and(|s| s == of || s.starts_with(&format!("{of}-")));
        rows.iter().filter(|r| r["role"] == role).filter(of).filter_map(|r| r["service"].as_str()).collect()
    };
    if !redis_roles.is_empty() {
        let (primary, replicas, down) = (with("primary", "redis"), with("replica", "redis"), with("down", "redis"));
        let primary = if primary.is_empty() { "none".to_owned() } else { primary.join(", ") };
        let mut line = format!("redis: the primary is {primary}; replicas {}", replicas.join(", "));
        if !down.is_empty() {
            line.push_str(&format!("; down {} (the next `hardstack up` brings it back as a replica)", down.join(", ")));
        }
        let _ = writeln!(text, "{line}");
    }
    if profile.postgres.replicas > 0 && profile.runs(Service::Postgres) {
        let with = |role: &str| with(role, "postgres");
        let _ = writeln!(
            text,
            "postgres: the primary is {}; standbys {}",
            with("primary").join(", "),
            with("standby").join(", ")
        );
    }
    if details {
        text.push('\n');
        for row in &rows {
            let service = row["service"].as_str().unwrap_or("");
            let _ = writeln!(text, "{service:<9} {}", describe(&row["details"]));
            for statement in row["details"]["slowest_statements"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    text,
                    "{:<9}   {:>9.2} ms x{:<6} {}",
                    "",
                    statement["mean_ms"].as_f64().unwrap_or(0.0),
                    statement["calls"].as_i64().unwrap_or(0),
                    statement["query"].as_str().unwrap_or("")
                );
            }
        }
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "{}",
        match &latest {
            Some(manifest) => format!(
                "last backup: set {} (finished {}), {} complete set(s) in {}",
                manifest.id,
                manifest.finished,
                sets.iter().filter(|s| s.complete).count(),
                backups.root.display()
            ),
            None => format!("last backup: none in {} (`hardstack backup`)", backups.root.display()),
        }
    );
    let _ = writeln!(
        text,
        "{}",
        match test.as_ref().and_then(|t| t.last_pass.as_ref()) {
            Some(pass) => format!("last successful restore test: set {} (tested {})", pass.set, pass.tested),
            None => "last successful restore test: none (`hardstack backup --test`)".to_owned(),
        }
    );
    if let Some(test) = test.as_ref().filter(|t| !t.passed) {
        let _ = writeln!(text, "last restore test FAILED: set {} (tested {})", test.set, test.tested);
    }
    Ok((document, text))
}

/// One line of a service's live numbers.
fn describe(details: &Value) -> String {
    if let Some(error) = details["error"].as_str() {
        return format!("numbers unavailable: {error}");
    }
    let number = |key: &str| details[key].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let mib = |key: &str| details[key].as_u64().map(|n| format!("{:.1} MiB", n as f64 / 1048576.0));
    if details.get("max_connections").is_some() {
        let statements = match details["slowest_statements"]["error"].as_str() {
            Some(error) => format!("; {error}"),
            None => "; slowest statements by mean time:".to_owned(),
        };
        return format!("connections {} of {}{statements}", number("connections"), number("max_connections"));
    }
    if details.get("waiting").is_some() {
        return format!(
            "clients {} active, {} waiting; {} server connections ({} pools of {})",
            number("active"),
            number("waiting"),
            number("server_connections"),
            details["pool_mode"].as_str().unwrap_or("-"),
            number("pool_size")
        );
    }
    if details.get("used_memory").is_some() {
        return format!(
            "memory {} of {} (maxmemory), {} evicted keys",
            mib("used_memory").unwrap_or_else(|| "-".into()),
            mib("maxmemory").unwrap_or_else(|| "-".into()),
            number("evicted_keys")
        );
    }
    format!("{} collections, {} points", number("collections"), number("points"))
}

/// A Qdrant peer's role as it says (`leader`, `follower`), or `down` where it does not answer.
async fn peer_role(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    key: &crate::secrets::Secret,
    spec: &crate::containers::ContainerSpec,
) -> &'static str {
    let node = crate::peers::node(spec).unwrap_or(0);
    let view = async {
        let target = crate::converge::peers::target(engine, profile, dir, node, key.clone()).await?;
        crate::probe::cluster::peer(&target).await
    };
    match view.await {
        Ok(view) if view.leader == Some(view.id) => "leader",
        Ok(_) => "follower",
        Err(_) => "down",
    }
}
