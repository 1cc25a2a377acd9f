//! The new containers' delivery helpers, made while `init` writes the stack directory. On a
//! new stack the files then go into each container's volumes while init writes them to the
//! directory: the engine's work for the helpers (volumes, creation, upload) overlaps init's and
//! the network's instead of following them, and none of it is left for the time PostgreSQL's
//! first start (initdb) shares the machine with the other containers' starts. A helper is made
//! only where nothing of its container exists yet (no container, none of the volumes the files
//! go to), so it never touches what an earlier run made, and what it made is removed again when
//! the run ends without using it. What it uploaded is used only where it is, byte for byte,
//! what the directory's files give once written (`take`); otherwise the volumes it filled are
//! removed and the files delivered anew.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use crate::containers::{self, ContainerSpec, Delivery};
use crate::converge;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::stackdir::PlannedFile;

/// The helper being made (or `None`: not made, or its making failed and was undone; the
/// ordinary delivery then runs, and says why where it fails too).
#[derive(Clone)]
pub struct EarlyHelper {
    /// The container it is made for, as the profile given to `up` declares it.
    spec: Arc<ContainerSpec>,
    made: Making,
    /// The upload of the files init is about to write (`deliver`), where it started.
    upload: Arc<OnceLock<EarlyUpload>>,
    /// Set once `take` has had it: from then on the ordinary path owns the helper and volumes.
    taken: Arc<AtomicBool>,
}

/// A helper's making: what was made, once the engine answers (`None`: nothing).
type Making = Shared<BoxFuture<'static, Option<Made>>>;

#[derive(Clone)]
struct Made {
    /// The keys of the volumes it mounts.
    keys: BTreeSet<String>,
    helper: String,
    /// The volumes this run created for it.
    volumes: Vec<String>,
}

/// The early upload: what it puts into the volumes, and its outcome once the engine answers.
struct EarlyUpload {
    archives: Vec<(String, Vec<u8>)>,
    outcome: Upload,
}

/// An upload's outcome: `Err` says why it failed (`None` where there was no helper to take it).
pub type Upload = Shared<BoxFuture<'static, Option<Result<(), String>>>>;

/// The helper `take` hands over, with the upload of the files already under way (`upload`),
/// or for them to be uploaded through it (`None`).
pub struct Taken {
    pub helper: String,
    pub upload: Option<Upload>,
}

/// The early helpers of the profile's containers (node 0 of each service), one each.
#[derive(Clone, Default)]
pub struct EarlyHelpers(Vec<EarlyHelper>);

impl EarlyHelpers {
    /// Starts making a helper for each of the profile's containers that is new: PostgreSQL's
    /// at once, the others once it is made (their files are needed only once PostgreSQL's
    /// container has started, and the engine's work for them would delay that start).
    pub fn start(engine: &Engine, profile: &Profile) -> EarlyHelpers {
        let (first, others): (Vec<ContainerSpec>, Vec<ContainerSpec>) =
            containers::running_specs(profile).into_iter().partition(|spec| spec.service == Service::Postgres);
        let first: Vec<EarlyHelper> =
            first.into_iter().map(|spec| EarlyHelper::start(engine, &profile.stack.name, spec, None)).collect();
        let after = first.first().map(|helper| helper.made.clone());
        let others =
            others.into_iter().map(|spec| EarlyHelper::start(engine, &profile.stack.name, spec, after.clone()));
        EarlyHelpers(first.into_iter().chain(others).collect())
    }

    /// Starts uploading each container's files as init planned them (`EarlyHelper::deliver`).
    pub fn deliver(&self, engine: &Engine, planned: &[PlannedFile]) {
        self.0.iter().for_each(|helper| helper.deliver(engine, planned));
    }

    /// The helper made for `spec`'s container, for its first delivery of `files`
    /// (`EarlyHelper::take`); `None` where none was made for a container of that name.
    pub async fn take(&self, engine: &Engine, spec: &ContainerSpec, files: &[(Delivery, Vec<u8>)]) -> Option<Taken> {
        self.0.iter().find(|helper| helper.spec.name == spec.name)?.take(engine, spec, files).await
    }

    /// For a run that ends without taking them: removes each helper not taken and the volumes
    /// it made (`EarlyHelper::undo`).
    pub async fn undo(&self, engine: &Engine) {
        futures_util::future::join_all(self.0.iter().map(|helper| helper.undo(engine))).await;
    }
}

impl EarlyHelper {
    /// Starts making the helper of `spec`'s container where that container is new, once
    /// `after` (another helper's making) has ended.
    fn start(engine: &Engine, stack: &str, spec: ContainerSpec, after: Option<Making>) -> EarlyHelper {
        let (engine, stack, for_task) = (engine.clone(), stack.to_owned(), spec.clone());
        // Spawned now, so the engine works on it while init runs.
        let task = tokio::spawn(async move {
            if let Some(after) = after {
                after.await;
            }
            make(&engine, &stack, &for_task).await
        });
        let making = async move { task.await.ok().flatten() };
        EarlyHelper {
            spec: Arc::new(spec),
            made: making.boxed().shared(),
            upload: Arc::new(OnceLock::new()),
            taken: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts uploading the container's files as init planned them (`bundle::write_telling`
    /// tells, once the audit and the conflicts are checked and the secrets stored, before it
    /// writes the directory), through the helper once it is made. Nothing starts where a file
    /// the container receives is not among them.
    pub fn deliver(&self, engine: &Engine, planned: &[PlannedFile]) {
        let spec = &self.spec;
        let files: Option<Vec<(Delivery, Vec<u8>)>> = spec
            .deliveries
            .iter()
            .map(|d| {
                let path = d.file.path();
                planned.iter().find(|f| f.path == path).map(|f| (d.clone(), f.content.clone()))
            })
            .collect();
        let Some(Ok(archives)) = files.map(|files| converge::first_archives(spec, files)) else { return };
        let (engine, made, sent) = (engine.clone(), self.made.clone(), archives.clone());
        let task = tokio::spawn(async move {
            let helper = made.await?.helper;
            Some(engine.upload(&helper, &sent).await.map_err(|err| format!("{err:#}")))
        });
        let outcome = async move { task.await.ok().flatten() }.boxed().shared();
        let _ = self.upload.set(EarlyUpload { archives, outcome });
    }

    /// The helper for `spec`'s first delivery of `files`, once (`EarlyHelpers::take` asks the
    /// one made for that container's name): when it was made for those volumes. One made for
    /// other volumes is removed, with the volumes
    /// it made that `spec` does not mount (the ordinary delivery makes the ones it does), or
    /// with all of them where an early upload filled them; so is one whose early upload puts
    /// anything but `files` (with all its volumes). An upload under way ends first.
    pub async fn take(&self, engine: &Engine, spec: &ContainerSpec, files: &[(Delivery, Vec<u8>)]) -> Option<Taken> {
        let made = self.made.clone().await?;
        if self.taken.swap(true, Ordering::SeqCst) {
            return None;
        }
        if made.keys != converge::delivery_volume_keys(spec) {
            self.uploaded().await;
            let filled = self.upload.get().is_some();
            let unused: Vec<String> = made
                .volumes
                .into_iter()
                .filter(|name| filled || !spec.volumes.iter().any(|v| v.name == *name))
                .collect();
            undo(engine, Some(&made.helper), &unused).await;
            return None;
        }
        let Some(early) = self.upload.get() else { return Some(Taken { helper: made.helper, upload: None }) };
        if converge::first_archives(spec, files.to_vec()).is_ok_and(|expected| expected == early.archives) {
            return Some(Taken { helper: made.helper, upload: Some(early.outcome.clone()) });
        }
        self.uploaded().await;
        undo(engine, Some(&made.helper), &made.volumes).await;
        None
    }

    /// For a run that ends without taking it: removes the helper and the volumes it made
    /// (after the early upload, where one runs).
    pub async fn undo(&self, engine: &Engine) {
        let Some(made) = self.made.clone().await else { return };
        if self.taken.swap(true, Ordering::SeqCst) {
            return;
        }
        self.uploaded().await;
        undo(engine, Some(&made.helper), &made.volumes).await;
    }

    /// Once the early upload, where one started, has ended.
    async fn uploaded(&self) {
        if let Some(early) = self.upload.get() {
            early.outcome.clone().await;
        }
    }
}

/// Makes the helper where the container and every volume it would mount are absent; undoes
/// what it made when a step fails.
async fn make(engine: &Engine, stack: &str, spec: &ContainerSpec) -> Option<Made> {
    let keys = converge::delivery_volume_keys(spec);
    let only_these = ContainerSpec {
        volumes: spec.volumes.iter().filter(|v| keys.contains(&v.key)).cloned().collect(),
        ..spec.clone()
    };
    let volumes: Vec<String> = only_these.volumes.iter().map(|v| v.name.clone()).collect();
    // The container and each volume asked about at once (an error counts as present).
    let container = async { engine.inspect(&spec.name).await.map_or(true, |info| info.is_some()) };
    let each_volume = volumes.iter().map(|volume| async { engine.volume_exists(volume).await.unwrap_or(true) });
    let (container_exists, volumes_exist) = tokio::join!(container, futures_util::future::join_all(each_volume));
    if container_exists || volumes_exist.into_iter().any(|exists| exists) {
        return None;
    }
    if engine.ensure_volumes(stack, &only_these).await.is_err() {
        undo(engine, None, &volumes).await;
        return None;
    }
    match engine.create_deliverer(stack, spec, &keys).await {
        Ok(helper) => Some(Made { keys, helper, volumes }),
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
