//! Qdrant's read-write key with `alt_api_key` (Qdrant 1.17+: the procedure of
//! https://github.com/qdrant/qdrant/pull/7835, restart with the new key as the alternate, then as
//! the key; `service.alt_api_key` in config/config.yaml at v1.18.3). Qdrant reads its
//! keys once at start, so each change is a re-render of config.yaml, a delivery into the config
//! volume and a restart: a short window in which Qdrant does not answer.

use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use crate::layout::StackFile;
use crate::probe;
use crate::profile::Service;
use crate::retry::{Attempt, Backoff};
use crate::secrets::Secret;

/// Re-renders config.yaml from the store (api_key = current, alt_api_key = pending or
/// previous), delivers it, restarts Qdrant and waits until `key` opens it.
pub async fn reconfigure(context: &Context<'_>, key: &Secret) -> anyhow::Result<()> {
    crate::bundle::write(context.profile, context.dir, crate::bundle::Given::default(), false, true).await?;
    let config = std::fs::read(context.dir.file(&StackFile::QdrantConfig)).context("reading the Qdrant config")?;
    context.deliver_content(Service::Qdrant, &StackFile::QdrantConfig, &config).await?;
    restart(context, key).await
}

/// Restarts Qdrant and waits until `key` opens it. A cluster restarts one peer at a time, each
/// back in the cluster before the next goes: every peer accepts both keys throughout, and the
/// others serve meanwhile.
pub async fn restart(context: &Context<'_>, key: &Secret) -> anyhow::Result<()> {
    for spec in super::receivers(context.engine, context.profile, Service::Qdrant).await? {
        context.engine.restart(&spec.name).await?;
        wait(context, key).await.with_context(|| format!("{} did not come back after the restart", spec.alias))?;
    }
    Ok(())
}

/// Polls until a request with `key` succeeds (one minute at most); in a cluster, until every
/// peer answers it and the peers agree again.
async fn wait(context: &Context<'_>, key: &Secret) -> anyhow::Result<()> {
    let within = Duration::from_secs(60);
    if crate::peers::is_cluster(context.profile) {
        let (engine, profile, dir) = (context.engine, context.profile, context.dir);
        return crate::converge::peers::agree_within(engine, profile, dir, key, within).await;
    }
    Backoff::every(Duration::from_millis(100), within)
        .run(|| async {
            match test(context, key).await {
                Ok(()) => Attempt::Done(()),
                Err(err) => Attempt::Retry(err),
            }
        })
        .await
}

/// A real request with `key`: list the collections.
pub async fn test(context: &Context<'_>, key: &Secret) -> anyhow::Result<()> {
    let login = login(context)?;
    let target =
        probe::reach(context.engine, context.profile, context.dir, Service::Qdrant, &login, key.clone(), "").await?;
    probe::qdrant(&target).await
}

/// The login whose client certificate hardstack presents to Qdrant (which has no logins of its
/// own): the profile's first application user.
pub fn login(context: &Context<'_>) -> anyhow::Result<String> {
    Ok(context.profile.users.first().context("the profile has no application user")?.name.clone())
}
