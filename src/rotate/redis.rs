//! Redis: dual passwords. The pending password is added next to the current one and saved to
//! the ACL file; the old one is removed after the grace period. Authenticated connections are
//! not affected by either change.

use anyhow::Context as _;

use super::Context;
use crate::layout::{self, StackFile};
use crate::probe;
use crate::profile::Service;
use crate::secrets::Secret;
use crate::secrets::store::SecretVersion;

/// A node or Sentinel that holds a Redis login: (Redis, N) or (RedisSentinel, N).
type Holder = (Service, u8);

/// Where a Redis login lives: every Redis node that runs (users.acl; not the discovery login,
/// which is the Sentinels' only), and every Sentinel that runs for the logins they have too
/// (health, sentinel, discovery).
async fn holders(context: &Context<'_>, user: &str) -> anyhow::Result<Vec<Holder>> {
    let profile = context.profile;
    let mut holders = Vec::new();
    let nodes = profile.redis.nodes().filter(|_| user != layout::DISCOVERY).map(|node| (Service::Redis, node));
    let on_sentinels = [layout::HEALTH, layout::SENTINEL, layout::DISCOVERY].contains(&user);
    let sentinels = profile.redis.sentinel_nodes().filter(|_| on_sentinels).map(|node| (Service::RedisSentinel, node));
    for (service, node) in nodes.chain(sentinels) {
        if context.engine.running(&crate::sentinel::container_name(profile, service, node)).await? {
            holders.push((service, node));
        }
    }
    Ok(holders)
}

/// A login at a holder: Redis's primary at its published port where the stack publishes it,
/// any other node or Sentinel at its address on the stack network.
async fn connect(
    context: &Context<'_>,
    (service, node): Holder,
    login: &str,
    password: Secret,
) -> anyhow::Result<::redis::aio::MultiplexedConnection> {
    let published = match (service, node == context.profile.redis.primary_node()) {
        (Service::Redis, true) => {
            probe::login_target(context.profile, context.dir, service, login, password.clone(), "")?
        }
        _ => None,
    };
    let target = match published {
        Some(target) => target,
        None => {
            crate::converge::sentinel::target(
                context.engine,
                context.profile,
                context.dir,
                (service, node),
                login,
                password,
            )
            .await?
        }
    };
    probe::redis_connection(&target).await.with_context(|| format!("logging in to {} as {login}", target.host))
}

/// An administrator's connection to a holder: Redis's admin, a Sentinel's sentinel login; with
/// the current password, or the pending one of the login's own rotation (both are valid once
/// it is set).
async fn admin(context: &Context<'_>, holder: Holder) -> anyhow::Result<::redis::aio::MultiplexedConnection> {
    use crate::secrets::store::{SecretStore as _, Stage};
    let login = if holder.0 == Service::Redis { layout::ADMIN } else { layout::SENTINEL };
    let name = layout::login_secret(Service::Redis, login);
    let current = context.store.current(&name).await?;
    match connect(context, holder, login, current.value).await {
        Ok(connection) => Ok(connection),
        Err(err) => match context.store.get(&name, Stage::Pending).await? {
            Some(pending) => connect(context, holder, login, pending.value).await,
            None => Err(err),
        },
    }
}

/// Applies one ACL rule to a user on a holder and saves it there (Redis's ACL file; a
/// Sentinel's own file).
async fn setuser_at(context: &Context<'_>, holder: Holder, user: &str, rule: &str) -> anyhow::Result<()> {
    let mut connection = admin(context, holder).await?;
    ::redis::cmd("ACL").arg("SETUSER").arg(user).arg(rule).query_async::<()>(&mut connection).await?;
    match holder.0 {
        Service::Redis => ::redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut connection).await?,
        _ => ::redis::cmd("SENTINEL").arg("FLUSHCONFIG").query_async::<()>(&mut connection).await?,
    }
    Ok(())
}

/// Adds the pending password (as its SHA-256) next to the current one on every holder, and
/// saves it; the replication and Sentinel logins are then switched to it where they are used.
pub async fn set(
    context: &Context<'_>,
    user: &str,
    _current: &SecretVersion,
    pending: &SecretVersion,
) -> anyhow::Result<()> {
    let hash = crate::secrets::redis_acl_hash(&pending.value);
    // Every holder accepts it before any login switches to it.
    let holders = holders(context, user).await?;
    let rule = format!("#{hash}");
    for holder in &holders {
        let added = setuser_at(context, *holder, user, &rule);
        added.await.with_context(|| format!("adding the new password of {user}"))?;
    }
    let password = pending.value.expose();
    if user == layout::REDIS_REPLICA {
        // Each node logs in to its primary with it from its next connection on.
        for holder in holders.iter().copied() {
            let mut connection = admin(context, holder).await?;
            let mut command = ::redis::cmd("CONFIG");
            command.arg("SET").arg("masterauth").arg(password);
            command.query_async::<()>(&mut connection).await.context("CONFIG SET masterauth")?;
        }
    }
    if user == layout::SENTINEL {
        // Each Sentinel logs in to the nodes and to the other Sentinels with it.
        let master = crate::sentinel::master_name(context.profile);
        for holder in holders.iter().copied().filter(|h| h.0 == Service::RedisSentinel) {
            let mut connection = admin(context, holder).await?;
            let mut auth = ::redis::cmd("SENTINEL");
            auth.arg("SET").arg(&master).arg("auth-pass").arg(password);
            auth.query_async::<()>(&mut connection).await.context("SENTINEL SET auth-pass")?;
            let mut peers = ::redis::cmd("SENTINEL");
            peers.arg("CONFIG").arg("SET").arg("sentinel-pass").arg(password);
            peers.query_async::<()>(&mut connection).await.context("SENTINEL CONFIG SET sentinel-pass")?;
        }
    }
    Ok(())
}

/// Logs in as the user with the pending password and pings.
pub async fn test(context: &Context<'_>, user: &str, pending: &SecretVersion) -> anyhow::Result<()> {
    let holders = holders(context, user).await?;
    let primary = (Service::Redis, context.profile.redis.primary_node());
    let at =
        if holders.contains(&primary) { primary } else { *holders.first().context("no container holds the login")? };
    let mut connection = connect(context, at, user, pending.value.clone()).await?;
    let ping = ::redis::cmd("PING").query_async::<String>(&mut connection).await;
    if user == layout::BACKUP {
        // The backup user may run the RDB transfer only: logged in, its PING is refused.
        return match ping {
            Err(err) if err.code() == Some("NOPERM") => Ok(()),
            Err(err) => Err(err).context("the backup user's PING was refused, but not for lack of permission"),
            Ok(answer) => {
                anyhow::bail!("the backup user may run PING ({answer}): its ACL is wider than an RDB transfer")
            }
        };
    }
    let pong = ping?;
    anyhow::ensure!(pong == "PONG", "PING answered {pong}");
    Ok(())
}

/// Removes the previous password of a user; `false` when it was already gone.
pub async fn remove_password(
    context: &Context<'_>,
    user: &str,
    previous: &SecretVersion,
    current: &SecretVersion,
) -> anyhow::Result<bool> {
    if previous.value == current.value {
        return Ok(false);
    }
    let hash = crate::secrets::redis_acl_hash(&previous.value);
    // An earlier run may have removed it already: ask each holder rather than read its error.
    let mut removed = false;
    for holder in holders(context, user).await? {
        if password_hashes(context, holder, user).await?.contains(&hash) {
            setuser_at(context, holder, user, &format!("!{hash}"))
                .await
                .with_context(|| format!("removing the previous password of {user}"))?;
            removed = true;
        }
    }
    Ok(removed)
}

/// The SHA-256 hashes of the passwords a user has on a holder (`ACL GETUSER`'s `passwords`).
async fn password_hashes(context: &Context<'_>, holder: Holder, user: &str) -> anyhow::Result<Vec<String>> {
    let mut connection = admin(context, holder).await?;
    // ACL GETUSER answers field, value, field, value...
    let fields: Vec<::redis::Value> = ::redis::cmd("ACL")
        .arg("GETUSER")
        .arg(user)
        .query_async(&mut connection)
        .await
        .with_context(|| format!("reading the ACL of {user}"))?;
    let position = fields.iter().position(|v| ::redis::from_redis_value::<String>(v).is_ok_and(|f| f == "passwords"));
    let passwords =
        position.and_then(|i| fields.get(i + 1)).with_context(|| format!("ACL GETUSER {user} has no passwords"))?;
    Ok(::redis::from_redis_value(passwords)?)
}

/// Hands the container's healthcheck the pending health password (both passwords are valid
/// on the server by now).
pub async fn deliver_health_password(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    let content = crate::render::password_file(&pending.value);
    context.deliver_content(Service::Redis, &StackFile::RedisHealthPassword, content.as_bytes()).await?;
    if context.profile.runs(Service::RedisSentinel) {
        context.deliver_content(Service::RedisSentinel, &StackFile::SentinelHealthPassword, content.as_bytes()).await?;
    }
    Ok(())
}
