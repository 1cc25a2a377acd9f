//! `hardstack status`: per service, the container's state and health, its published port, the
//! server certificate's expiry and the age of the service's application secret.

use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::json;

use crate::cli::GlobalArgs;
use crate::containers;
use crate::layout::{self, StackFile};
use crate::pki;
use crate::profile::Service;
use crate::secrets::store::{SecretStore as _, Stage, Store};
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `status`.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let store = Store::open(&profile, &dir).await?;
    let engine = super::engine_for(&dir, &profile, false).await?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let mut rows = Vec::new();
    for spec in containers::container_specs(&profile) {
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
            service => layout::login_secret(service, &user),
        };
        let age_days = store
            .get(&secret, Stage::Current)
            .await?
            .and_then(|v| SystemTime::now().duration_since(v.created).ok())
            .map(|d| d.as_secs() / 86_400);
        rows.push(json!({
            "service": spec.service,
            "container": spec.name,
            "image": image,
            "state": status,
            "health": health,
            "published": spec.publish.as_ref().map(|(a, p)| format!("{a}:{p}")),
            "certificate_expires_in_days": expires_in_days,
            "secret": secret,
            "secret_age_days": age_days,
        }));
    }
    let backups = crate::backup::Backups::of(&profile, &dir);
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
    let inputs = crate::inputs::Inputs::read(&dir)?;
    let identity = crate::identity::Identity::read(&dir)?;
    output.json(&json!({
        "schema": "hardstack.status/v1", "stack": profile.stack.name, "services": rows, "backup": backup,
        "identity": identity.as_ref().map(|i| &i.id), "templates": inputs.templates, "accepted_audit_rules": inputs.accepted,
    }));
    super::warn_accepted(&output, &inputs);
    output.line(format!(
        "{:<9} {:<9} {:<10} {:<16} {:>9} {:>11}  IMAGE",
        "SERVICE", "STATE", "HEALTH", "PUBLISHED", "CERT DAYS", "SECRET AGE"
    ));
    for row in &rows {
        output.line(format!(
            "{:<9} {:<9} {:<10} {:<16} {:>9} {:>10}d  {}",
            row["service"].as_str().unwrap_or(""),
            row["state"].as_str().unwrap_or(""),
            row["health"].as_str().unwrap_or(""),
            row["published"].as_str().unwrap_or("-"),
            row["certificate_expires_in_days"].as_i64().map(|d| d.to_string()).unwrap_or("-".into()),
            row["secret_age_days"].as_u64().map(|d| d.to_string()).unwrap_or("-".into()),
            row["image"].as_str().unwrap_or("-"),
        ));
    }
    output.line(match &latest {
        Some(manifest) => format!(
            "last backup: set {} (finished {}), {} complete set(s) in {}",
            manifest.id,
            manifest.finished,
            sets.iter().filter(|s| s.complete).count(),
            backups.root.display()
        ),
        None => format!("last backup: none in {} (`hardstack backup`)", backups.root.display()),
    });
    output.line(match test.as_ref().and_then(|t| t.last_pass.as_ref()) {
        Some(pass) => format!("last successful restore test: set {} (tested {})", pass.set, pass.tested),
        None => "last successful restore test: none (`hardstack backup --test`)".to_owned(),
    });
    if let Some(test) = test.as_ref().filter(|t| !t.passed) {
        output.line(format!("last restore test FAILED: set {} (tested {})", test.set, test.tested));
    }
    Ok(ExitCode::SUCCESS)
}
