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

async fn connect(
    context: &Context<'_>,
    login: &str,
    password: Secret,
) -> anyhow::Result<::redis::aio::MultiplexedConnection> {
    let target = probe::login_target(context.profile, context.dir, Service::Redis, login, password, "")?
        .context("Redis is not published, so rotation cannot reach it from here; set network.publish=true")?;
    probe::redis_connection(&target).await.with_context(|| format!("logging in to Redis as {login}"))
}

/// An admin connection: with the current password, or the pending one of the admin's own
/// rotation (both are valid once it is set).
async fn admin(context: &Context<'_>) -> anyhow::Result<::redis::aio::MultiplexedConnection> {
    use crate::secrets::store::{SecretStore as _, Stage};
    let current = context.store.current(&layout::login_secret(Service::Redis, layout::ADMIN)).await?;
    match connect(context, layout::ADMIN, current.value).await {
        Ok(connection) => Ok(connection),
        Err(err) => {
            match context.store.get(&layout::login_secret(Service::Redis, layout::ADMIN), Stage::Pending).await? {
                Some(pending) => connect(context, layout::ADMIN, pending.value).await,
                None => Err(err),
            }
        }
    }
}

/// Applies one ACL rule to a user and saves the ACL file, as admin.
async fn setuser(context: &Context<'_>, user: &str, rule: String) -> anyhow::Result<()> {
    let mut connection = admin(context).await?;
    ::redis::cmd("ACL").arg("SETUSER").arg(user).arg(rule).query_async::<()>(&mut connection).await?;
    ::redis::cmd("ACL").arg("SAVE").query_async::<()>(&mut connection).await?;
    Ok(())
}

/// Adds the pending password (as its SHA-256) next to the current one, and saves the ACL file.
pub async fn set(
    context: &Context<'_>,
    user: &str,
    _current: &SecretVersion,
    pending: &SecretVersion,
) -> anyhow::Result<()> {
    let hash = crate::secrets::redis_acl_hash(&pending.value);
    setuser(context, user, format!("#{hash}")).await.with_context(|| format!("adding the new password of {user}"))
}

/// Logs in as the user with the pending password and pings.
pub async fn test(context: &Context<'_>, user: &str, pending: &SecretVersion) -> anyhow::Result<()> {
    let mut connection = connect(context, user, pending.value.clone()).await?;
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
    // An earlier run may have removed it already: ask the server rather than read its error.
    if !password_hashes(context, user).await?.contains(&hash) {
        return Ok(false);
    }
    setuser(context, user, format!("!{hash}"))
        .await
        .with_context(|| format!("removing the previous password of {user}"))?;
    Ok(true)
}

/// The SHA-256 hashes of the passwords a user has on the server (`ACL GETUSER`'s `passwords`).
async fn password_hashes(context: &Context<'_>, user: &str) -> anyhow::Result<Vec<String>> {
    let mut connection = admin(context).await?;
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
    context.deliver_content(Service::Redis, &StackFile::RedisHealthPassword, content.as_bytes()).await
}
