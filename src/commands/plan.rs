//! `hardstack plan` (and `up --dry-run`): what `up` would do, per file and per service, with
//! the least disruptive way it would apply each change, and why. Reads the stack directory,
//! the store and the engine; writes and changes nothing anywhere.

use std::process::ExitCode;

use serde_json::json;

use crate::bundle;
use crate::cli::{GlobalArgs, PlanArgs};
use crate::containers;
use crate::converge::{self, Action, ContainerStep, ServicePlan};
use crate::output::Output;
use crate::profile::Profile;
use crate::settings;
use crate::stackdir::{Change, StackDir};

/// Runs `plan`.
pub async fn run(global: &GlobalArgs, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::resolve_profile(global)?.profile;
    let given = bundle::Given { templates: args.templates.as_deref(), accept: args.accept.as_deref() };
    show(&output, &profile, &StackDir::new(&global.dir), given, args.prune).await?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the plan of `up` for the profile (the human form, or the `hardstack.plan/v1` JSON).
pub async fn show(
    output: &Output,
    profile: &Profile,
    dir: &StackDir,
    given: bundle::Given<'_>,
    prune: bool,
) -> anyhow::Result<()> {
    let preview = bundle::preview(profile, dir, given).await?;
    let engine = super::engine_for(dir, profile, false).await?;
    let contents = |file: &crate::layout::StackFile| preview.content(dir, &file.path());
    let mut services = Vec::new();
    let specs = containers::running_specs(profile).into_iter().chain(crate::replica::specs(profile));
    for mut spec in specs.chain(crate::sentinel::specs(profile)).chain(crate::peers::specs(profile)) {
        // The image `up` would run: the local one where the profile's is absent (nothing pulled).
        let local = containers::local_image(spec.service);
        if !engine.has_image(&spec.image).await && engine.has_image(local).await {
            spec.image = local.to_owned();
        }
        services.push(converge::plan(&engine, profile, &spec, &contents, prune).await?);
    }
    // Fewer Qdrant peers: `up` refuses them before it changes anything, and so does the plan.
    super::nodes::refuse_fewer_peers(&engine, profile).await?;
    let removed = engine.undeclared_containers(profile).await?;
    let primary = converge::switchover::foreseen(&engine, profile, dir).await?;
    let files: Vec<_> = preview.diff.changes.iter().filter(|(_, c)| *c != Change::Unchanged).collect();
    let conflicts: Vec<_> =
        preview.diff.conflicts.iter().map(|c| json!({"path": c.path, "reason": conflict_reason(c.edited)})).collect();
    output.json(&json!({
        "schema": "hardstack.plan/v1",
        "stack": profile.stack.name,
        "profile": profile.name,
        "files": files.iter().map(|(path, change)| json!({"path": path, "change": change})).collect::<Vec<_>>(),
        "conflicts": conflicts,
        "secrets": preview.plan.new_secrets.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "services": services.iter().map(ServicePlan::report).collect::<Vec<_>>(),
        "removed_containers": removed,
        "postgres_primary": primary,
        "templates": preview.inputs.templates,
        "audit_refused": preview.refused().map(|c| json!({"id": c.id, "evidence": c.evidence})).collect::<Vec<_>>(),
        "audit_accepted": preview.accepted().map(|c| json!({"id": c.id, "evidence": c.evidence})).collect::<Vec<_>>(),
    }));
    output.line(format!("stack {} (profile {}): what `up` would do", profile.stack.name, profile.name));
    if files.is_empty() && preview.diff.conflicts.is_empty() {
        output.line("files: none to write");
    }
    for (path, change) in &files {
        output.line(format!("  {:<9} {path}", format!("{change:?}").to_lowercase()));
    }
    for conflict in &preview.diff.conflicts {
        output.line(format!(
            "  conflict  {} ({}): up refuses it without --force",
            conflict.path,
            conflict_reason(conflict.edited)
        ));
    }
    for (name, _) in &preview.plan.new_secrets {
        output.line(format!("  secret    {name}: created in the {:?} store", profile.secrets.store).to_lowercase());
    }
    for (name, hash) in &preview.inputs.templates {
        output.detail(format!("  template  {name} (sha256 {})", &hash[..12]));
    }
    for check in preview.refused() {
        output.line(format!(
            "  refused   audit rule {}: {}; up refuses to deliver it without --accept {}",
            check.id, check.evidence, check.id
        ));
    }
    for check in preview.accepted() {
        output.line(format!("  warning   audit rule {} fails and is accepted: {}", check.id, check.evidence));
    }
    for line in &primary {
        output.line(line);
    }
    for plan in &services {
        output.line(describe(plan));
    }
    for name in &removed {
        let why = match (crate::replica::node_of(profile, name), crate::sentinel::node_of(profile, name)) {
            (Some(_), _) => "a replica beyond postgres.replicas",
            (None, Some((crate::profile::Service::Redis, _))) => "a replica beyond redis.replicas",
            (None, Some(_)) => "a Sentinel beyond redis.sentinels",
            (None, None) if crate::peers::node_of(profile, name).is_some() => {
                "a Qdrant peer, and qdrant no longer runs"
            }
            (None, None) => "its service is no longer in stack.services",
        };
        output.line(format!("{name}: remove the container, {why} (volumes kept)"));
    }
    Ok(())
}

fn conflict_reason(edited: bool) -> &'static str {
    if edited { "edited since hardstack wrote it" } else { "not written by hardstack" }
}

/// A service's plan in a few lines.
fn describe(plan: &ServicePlan) -> String {
    let mut lines = vec![format!("{}: {}", plan.name, plan.change())];
    match &plan.container {
        ContainerStep::Create
            if plan.name != plan.service.name() && plan.service == crate::profile::Service::Postgres =>
        {
            lines.push("  create the replica: a base backup of the primary over its slot, then the container".into())
        }
        ContainerStep::Create if plan.service == crate::profile::Service::Redis => lines.push(
            "  create the container, then point it at the primary (REPLICAOF): it copies the primary's data".into(),
        ),
        ContainerStep::Create if plan.service == crate::profile::Service::Qdrant && plan.name != "qdrant" => {
            lines.push("  create the peer: it joins the cluster through qdrant (existing collections keep their shards where they are)".into())
        }
        ContainerStep::Create => lines.push("  create the container".into()),
        ContainerStep::Recreate { reason } => lines.push(format!("  recreate the container: {reason}")),
        ContainerStep::Start => lines.push("  start the stopped container".into()),
        ContainerStep::Keep => {}
    }
    for action in &plan.actions {
        lines.push(match action {
            Action::Deliver { files } => format!("  deliver {}", files.join(", ")),
            Action::UpdateLimits { changes } => format!("  update the container in place: {}", changes.join(", ")),
            Action::Reload { what } => format!("  reload: {}", what.join(", ")),
            Action::ConfigSet { key, value } => format!("  CONFIG SET {key} {value}"),
            Action::AclLoad { add_users, remove_users } => {
                let mut what = vec!["  ACL LOAD".to_owned()];
                if !add_users.is_empty() {
                    what.push(format!("    add users {}", add_users.join(", ")));
                }
                if !remove_users.is_empty() {
                    what.push(format!("    remove users {} (their keys stay)", remove_users.join(", ")));
                }
                what.join("\n")
            }
            Action::Prune { users } => {
                format!(
                    "  prune: drop the databases, owner roles and logins of {} (their data is lost)",
                    users.join(", ")
                )
            }
            Action::ApplySql { file, add_users, disable_logins } => {
                let mut what = vec![format!("  apply the init SQL ({file}): roles, databases, grants, passwords")];
                if !add_users.is_empty() {
                    what.push(format!("    add users {}", add_users.join(", ")));
                }
                if !disable_logins.is_empty() {
                    what.push(format!(
                        "    disable the logins {} (their owner roles, databases and data are kept)",
                        disable_logins.join(", ")
                    ));
                }
                what.join("\n")
            }
            Action::Restart { why } => format!("  restart: {}", why.join(", ")),
        });
    }
    lines.join("\n")
}
