//! Convergence of Redis: what a changed file takes on the running server (`CONFIG SET` for a
//! mutable directive and for re-reading its TLS files, `ACL LOAD` for the ACL file, a restart
//! for the rest), and carrying those live commands out as admin. Live commands go over the
//! network, so only where the stack publishes Redis.

use std::collections::BTreeSet;

use anyhow::Context as _;

use super::{Action, Change, Found, changed_settings, settings};
use crate::layout::{self, Reach, StackFile};
use crate::profile::{Profile, Service};
use crate::secrets::Secret;
use crate::stackdir::StackDir;

/// Redis directives that `CONFIG SET` refuses at runtime (Redis's immutable configs).
const REDIS_IMMUTABLE: &[&str] = &[
    "aclfile",
    "always-show-logo",
    "daemonize",
    "databases",
    "disable-thp",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
    "io-threads",
    "logfile",
    "pidfile",
    "set-proc-title",
    "supervised",
    "syslog-enabled",
    "syslog-facility",
    "syslog-ident",
    "unixsocket",
    "unixsocketperm",
];

/// What one changed file takes.
pub(super) async fn file_actions(change: &Change<'_>, found: &mut Found) -> anyhow::Result<()> {
    let Change { engine, profile, spec, delivery, content } = *change;
    // Redis's live commands go over the network as admin: only where hardstack reaches it.
    let reachable = crate::endpoint::host_address(profile, Service::Redis).is_some();
    let name = delivery.path.clone();
    match &delivery.file {
        StackFile::RedisConf => {
            let before = engine.read_file(&spec.name, &delivery.container_path(spec)).await?.unwrap_or_default();
            let after = settings(content, crate::audit::parse::redis_conf);
            for key in changed_settings(&before, content, crate::audit::parse::redis_conf) {
                match after.get(&key) {
                    _ if REDIS_IMMUTABLE.contains(&key.as_str()) => {
                        found.restart.push(format!("{key} (immutable at runtime)"))
                    }
                    _ if !reachable => {
                        found.restart.push(format!("{key} (the stack publishes no port for CONFIG SET)"))
                    }
                    Some(value) => found.actions.push(Action::ConfigSet { key, value: value.clone() }),
                    // A directive removed from the file goes back to its default at a start
                    // only: CONFIG SET needs a value.
                    None => found.restart.push(format!("{key} (removed)")),
                }
            }
        }
        StackFile::UsersAcl if reachable => {
            let before = engine.read_file(&spec.name, &delivery.container_path(spec)).await?.unwrap_or_default();
            let users = |text: &[u8]| -> BTreeSet<String> {
                String::from_utf8_lossy(text)
                    .lines()
                    .filter_map(|line| line.strip_prefix("user ")?.split_whitespace().next().map(str::to_owned))
                    .collect()
            };
            let (before, after) = (users(&before), users(content));
            found.actions.push(Action::AclLoad {
                add_users: after.difference(&before).cloned().collect(),
                remove_users: before.difference(&after).cloned().collect(),
            });
        }
        StackFile::UsersAcl => found.restart.push(format!("{name} (the stack publishes no port for ACL LOAD)")),
        file => match delivery.reach {
            Reach::Nothing | Reach::Live => {}
            Reach::Restart => found.restart.push(format!("{name} (read at start)")),
            Reach::Reload if reachable => {
                // Setting a TLS file's path makes Redis read every TLS file again.
                let key = match file {
                    StackFile::CaCert => "tls-ca-cert-file",
                    StackFile::ServerKey(_) => "tls-key-file",
                    _ => "tls-cert-file",
                };
                let action = Action::ConfigSet { key: key.into(), value: delivery.container_path(spec) };
                if !found.actions.contains(&action) {
                    found.actions.push(action);
                }
            }
            Reach::Reload => found.restart.push(format!("{name} (the stack publishes no port for CONFIG SET)")),
        },
    }
    Ok(())
}

/// Runs one live command (`CONFIG SET key value`, or `ACL LOAD`) as admin.
pub(super) async fn live(
    engine: &crate::runtime::Engine,
    (profile, dir): (&Profile, &StackDir),
    spec: &crate::containers::ContainerSpec,
    admin: Option<&Secret>,
    action: &Action,
) -> anyhow::Result<()> {
    let password = admin.context("the Redis admin password is needed for a live change")?.clone();
    // The node the spec is, at its address on the stack network.
    let node = (Service::Redis, crate::sentinel::node(spec).unwrap_or(0));
    let target = super::sentinel::target(engine, profile, dir, node, layout::ADMIN, password).await?;
    let mut connection = crate::probe::redis_connection(&target).await.context("logging in to Redis as admin")?;
    let mut command = ::redis::cmd(match action {
        Action::ConfigSet { .. } => "CONFIG",
        _ => "ACL",
    });
    match action {
        Action::ConfigSet { key, value } => command.arg("SET").arg(key).arg(value),
        _ => command.arg("LOAD"),
    };
    Ok(command.query_async::<()>(&mut connection).await?)
}
