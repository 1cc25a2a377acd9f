//! Convergence of PostgreSQL: what a changed file takes on the running server (a reload for
//! SIGHUP-context settings, pg_hba and certificates; a restart for a postmaster setting; the init
//! SQL for roles, databases and grants), and the users the profile added or removed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::{Action, Change, Found, changed_settings};
use crate::containers::ContainerSpec;
use crate::layout::{self, Reach, StackFile};
use crate::profile::Profile;
use crate::runtime::Engine;
use crate::superuser;

/// What one changed file takes.
pub(super) async fn file_actions(change: &Change<'_>, found: &mut Found) -> anyhow::Result<()> {
    let Change { engine, profile, spec, delivery, content } = *change;
    let name = delivery.path.clone();
    match &delivery.file {
        // A standby is read-only and follows the primary's roles: the primary applies it.
        StackFile::InitSql if crate::replica::is_standby(profile, spec) => {}
        StackFile::InitSql => {
            let (add_users, disable_logins) = user_changes(engine, profile, spec).await?;
            found.actions.push(Action::ApplySql { file: delivery.container_path(spec), add_users, disable_logins })
        }
        StackFile::PostgresConf => {
            let before = engine.read_file(&spec.name, &delivery.container_path(spec)).await?.unwrap_or_default();
            let keys = changed_settings(&before, content, crate::audit::parse::postgres_conf);
            let contexts = contexts(engine, spec, &keys).await?;
            for key in keys {
                match contexts.get(&key).map(String::as_str) {
                    Some("postmaster") => found.restart.push(format!("{key} (context postmaster)")),
                    Some(_) => found.reload.push(key),
                    None => found.restart.push(format!("{key} (not a setting this server knows)")),
                }
            }
        }
        _ => match delivery.reach {
            Reach::Nothing | Reach::Live => {}
            Reach::Restart => found.restart.push(format!("{name} (read at start)")),
            Reach::Reload => found.reload.push(name),
        },
    }
    Ok(())
}

/// The profile's users whose login the server lacks, and the logins hardstack made that the
/// profile no longer has (still able to log in).
async fn user_changes(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let logins = layout::client_logins(profile);
    let quoted: Vec<String> = logins.iter().map(|l| format!("'{}'", l.replace('\'', "''"))).collect();
    let sql = format!(
        "SELECT 'exists|' || rolname FROM pg_roles WHERE rolname IN ({list}) \
         UNION ALL SELECT 'managed|' || rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid \
         AND d.classoid = 'pg_authid'::regclass WHERE d.description = 'hardstack login' AND r.rolcanlogin \
         AND rolname NOT IN ({list});",
        list = quoted.join(", ")
    );
    let output = superuser::sql(engine, spec, &sql).await.context("reading the server's roles")?;
    let (mut existing, mut disable) = (BTreeSet::new(), Vec::new());
    for line in output.lines() {
        match line.split_once('|') {
            Some(("exists", role)) => {
                existing.insert(role.trim().to_owned());
            }
            Some(("managed", role)) => disable.push(role.trim().to_owned()),
            _ => {}
        }
    }
    disable.sort();
    let add = profile.users.iter().filter(|u| !existing.contains(&u.name)).map(|u| u.name.clone()).collect();
    Ok((add, disable))
}

/// The users hardstack made whose logins the profile no longer has, disabled or not.
pub(super) async fn removed_users(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
) -> anyhow::Result<Vec<String>> {
    let sql = "SELECT rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid \
               AND d.classoid = 'pg_authid'::regclass WHERE d.description = 'hardstack login';";
    let output = superuser::sql(engine, spec, sql).await.context("reading the server's roles")?;
    let mut users: Vec<String> = output
        .lines()
        .map(|login| login.trim())
        .filter(|login| !login.is_empty())
        .map(|login| login.strip_suffix("_alt").unwrap_or(login).to_owned())
        .filter(|user| !profile.users.iter().any(|u| u.name == *user))
        .collect();
    users.sort();
    users.dedup();
    Ok(users)
}

/// Drops what removed users had: their databases (with any session on them), everything their
/// roles own or were granted, and the roles.
pub(super) async fn prune_users(engine: &Engine, spec: &ContainerSpec, users: &[String]) -> anyhow::Result<()> {
    for user in users {
        anyhow::ensure!(user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "unexpected role name {user}");
        let (owner, alternate) = (layout::owner_role(user), layout::alternate_login(user));
        let sql = format!(
            "SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database \
             WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = '{owner}')\\gexec\n\
             SELECT format('DROP OWNED BY %I', rolname) FROM pg_roles WHERE rolname IN ('{user}', '{alternate}', '{owner}')\\gexec\n\
             DROP ROLE IF EXISTS {user}, {alternate}, {owner};"
        );
        superuser::sql(engine, spec, &sql).await.with_context(|| format!("pruning user {user}"))?;
    }
    Ok(())
}

/// The context of each PostgreSQL setting named (`postmaster`, `sighup`, `user`...).
async fn contexts(engine: &Engine, spec: &ContainerSpec, keys: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let names: Vec<String> = keys
        .iter()
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|k| format!("'{k}'"))
        .collect();
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!("SELECT name || '|' || context FROM pg_settings WHERE name IN ({});", names.join(", "));
    let output = superuser::sql(engine, spec, &sql).await.context("reading the settings' contexts")?;
    Ok(output
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(name, context)| (name.to_owned(), context.trim().to_owned()))
        .collect())
}

/// `pg_reload_conf()`, then the settings file's errors and what still waits for a restart.
pub(super) async fn reload(engine: &Engine, spec: &ContainerSpec) -> anyhow::Result<()> {
    superuser::sql(engine, spec, "SELECT pg_reload_conf();").await.context("reloading PostgreSQL's configuration")?;
    let errors = superuser::sql(
        engine,
        spec,
        "SELECT sourcefile || ':' || sourceline || ': ' || coalesce(name, '') || ': ' || error FROM pg_file_settings WHERE error IS NOT NULL AND error <> 'setting could not be applied';",
    )
    .await?;
    anyhow::ensure!(errors.trim().is_empty(), "PostgreSQL did not take its configuration: {}", errors.trim());
    Ok(())
}
