//! PostgreSQL's delivery helper, made while `init` writes the stack directory. On a new stack
//! the files then go into the container's volumes as soon as init has written them: the
//! engine's work for the helper (its volumes, its creation) overlaps init's instead of
//! following it. It is made only where nothing of the container exists yet (no container, none
//! of the volumes the files go to), so it never touches what an earlier run made, and what it
//! made is removed again when the run ends without using it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use crate::containers::{self, ContainerSpec};
use crate::converge;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;

/// The helper being made (or `None`: not made, or its making failed and was undone; the
/// ordinary delivery then runs, and says why where it fails too).
#[derive(Clone)]
pub struct EarlyHelper {
    made: Shared<BoxFuture<'static, Option<Made>>>,
    /// Set once `take` has had it: from then on the ordinary path owns the helper and volumes.
    taken: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Made {
    /// The container it was made for, and the keys of the volumes it mounts.
    container: String,
    keys: BTreeSet<String>,
    helper: String,
    /// The volumes this run created for it.
    volumes: Vec<String>,
}

impl EarlyHelper {
    /// Starts making the helper of the profile's PostgreSQL container where it runs
    /// PostgreSQL and that container is new.
    pub fn start(engine: &Engine, profile: &Profile) -> EarlyHelper {
        let spec = containers::running_specs(profile).into_iter().find(|spec| spec.service == Service::Postgres);
        let (engine, stack) = (engine.clone(), profile.stack.name.clone());
        // Spawned now, so the engine works on it while init runs.
        let task = spec.map(|spec| tokio::spawn(async move { make(&engine, &stack, &spec).await }));
        let making = async move { task?.await.ok().flatten() };
        EarlyHelper { made: making.boxed().shared(), taken: Arc::new(AtomicBool::new(false)) }
    }

    /// The helper for `spec`'s first delivery, once: when it was made for that container and
    /// those volumes. One made for anything else is removed, with the volumes it made that
    /// `spec` does not mount (the ordinary delivery makes the ones it does).
    pub async fn take(&self, engine: &Engine, spec: &ContainerSpec) -> Option<String> {
        let made = self.made.clone().await?;
        if self.taken.swap(true, Ordering::SeqCst) {
            return None;
        }
        if made.container == spec.name && made.keys == converge::delivery_volume_keys(spec) {
            return Some(made.helper);
        }
        let unused: Vec<String> =
            made.volumes.into_iter().filter(|name| !spec.volumes.iter().any(|v| v.name == *name)).collect();
        undo(engine, Some(&made.helper), &unused).await;
        None
    }

    /// For a run that ends without taking it: removes the helper and the volumes it made.
    pub async fn undo(&self, engine: &Engine) {
        let Some(made) = self.made.clone().await else { return };
        if self.taken.swap(true, Ordering::SeqCst) {
            return;
        }
        undo(engine, Some(&made.helper), &made.volumes).await;
    }
}

/// Makes the helper where the container and every volume it would mount are absent; undoes
/// what it made when a step fails.
async fn make(engine: &Engine, stack: &str, spec: &ContainerSpec) -> Option<Made> {
    if engine.inspect(&spec.name).await.ok()?.is_some() {
        return None;
    }
    let keys = converge::delivery_volume_keys(spec);
    let only_these = ContainerSpec {
        volumes: spec.volumes.iter().filter(|v| keys.contains(&v.key)).cloned().collect(),
        ..spec.clone()
    };
    let volumes: Vec<String> = only_these.volumes.iter().map(|v| v.name.clone()).collect();
    for volume in &volumes {
        if engine.volume_exists(volume).await.unwrap_or(true) {
            return None;
        }
    }
    if engine.ensure_volumes(stack, &only_these).await.is_err() {
        undo(engine, None, &volumes).await;
        return None;
    }
    match engine.create_deliverer(stack, spec, &keys).await {
        Ok(helper) => Some(Made { container: spec.name.clone(), keys, helper, volumes }),
        Err(_) => {
            undo(engine, None, &volumes).await;
            None
        }
    }
}

async fn undo(engine: &Engine, helper: Option<&str>, volumes: &[String]) {
    if let Some(helper) = helper {
        let _ = engine.force_remove(helper).await;
    }
    for volume in volumes {
        let _ = engine.remove_volume(volume).await;
    }
}
