//! Which objects of the engine are this stack directory's: the labels an engine acting for a
//! directory puts on what it creates and requires of what it touches (`crate::identity`), and
//! listing and removing a stack's objects by them.

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::container::ListContainersOptions;
use bollard::volume::{ListVolumesOptions, RemoveVolumeOptions};

use crate::containers::{ContainerSpec, DIR_LABEL, ID_LABEL, SERVICE_LABEL, STACK_LABEL, StackNames};

use super::{Engine, Removed};

/// The identity of the stack directory an engine acts for (see `crate::identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `stack.name`: the prefix of every object's name, and the `hardstack.stack` label.
    pub stack: String,
    /// The `hardstack.stack-id` label.
    pub id: String,
    /// The `hardstack.dir` label: the directory's absolute path.
    pub dir: String,
    /// Whether objects of this stack name with no id label are this directory's (an earlier
    /// hardstack made them).
    pub legacy: bool,
}

impl Owner {
    /// Whether an object with these labels is this directory's.
    pub fn owns(&self, labels: Option<&HashMap<String, String>>) -> bool {
        let Some(labels) = labels else { return false };
        if labels.get(STACK_LABEL) != Some(&self.stack) {
            return false;
        }
        match labels.get(ID_LABEL) {
            Some(id) => *id == self.id,
            None => self.legacy,
        }
    }
}

/// An object that has one of this stack's names but is not this stack directory's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kind} {name} is not this stack's: {whose}; this directory ({dir}) would take it over. Give this stack its own name and ports (--set stack.name=NAME {settings}, recorded in the stack directory), or remove the other stack first ({remedy})"
)]
pub struct NotOurs {
    pub kind: &'static str,
    pub name: String,
    /// Who it belongs to, in words (the other directory when it says).
    pub whose: String,
    pub dir: String,
    /// The port settings of this stack's services, to give them their own.
    pub settings: String,
    pub remedy: String,
}

impl Engine {
    /// This engine acting for one stack directory: every object it creates carries the
    /// directory's identity, and it lists, reuses and removes only objects that carry it.
    pub fn acting_for(mut self, owner: Owner) -> Engine {
        self.owner = Some(owner);
        self
    }

    /// The labels of an object this engine creates for `stack`, besides its service label.
    pub(super) fn labels(&self, stack: &str) -> HashMap<String, String> {
        let mut labels = HashMap::from([(STACK_LABEL.to_owned(), stack.to_owned())]);
        if let Some(owner) = &self.owner {
            labels.insert(ID_LABEL.to_owned(), owner.id.clone());
            labels.insert(DIR_LABEL.to_owned(), owner.dir.clone());
        }
        labels
    }

    /// Whether an object carrying `labels` (already found by the stack label) is one this engine
    /// may touch: any, when it acts for no directory (the library's own callers).
    pub(super) fn may_touch(&self, labels: Option<&HashMap<String, String>>) -> bool {
        self.owner.as_ref().is_none_or(|owner| owner.owns(labels))
    }

    /// Refuses when a container, volume or the network this stack would use exists and is not
    /// this directory's: it names the other stack's directory and what to do. Nothing is
    /// touched. Every command that acts on a stack calls it first.
    pub async fn check_claim(&self, names: &StackNames, specs: &[ContainerSpec]) -> anyhow::Result<()> {
        let Some(owner) = &self.owner else { return Ok(()) };
        let refuse = |kind: &'static str, name: &str, labels: Option<&HashMap<String, String>>| {
            let other = labels.and_then(|l| l.get(DIR_LABEL)).cloned();
            // This very directory made it, under an identity its identity.json no longer holds.
            if other.as_deref() == Some(owner.dir.as_str()) {
                let id = labels.and_then(|l| l.get(ID_LABEL)).cloned().unwrap_or_default();
                return anyhow::anyhow!(
                    "{kind} {name} was made from this directory ({}) under the identity {id}, which its identity.json no longer holds: restore identity.json (its \"id\" is {id}) and run this again",
                    owner.dir
                );
            }
            let whose = match (&other, labels.is_some_and(|l| l.contains_key(STACK_LABEL))) {
                (Some(dir), _) => format!("it belongs to the stack of directory {dir}"),
                (None, true) => "it was made by an earlier hardstack for another directory".to_owned(),
                (None, false) => "hardstack did not make it".to_owned(),
            };
            let remedy = match other {
                Some(dir) => format!("`hardstack down --dir {dir}`"),
                None => format!("`docker rm -f`, `docker volume rm` or `docker network rm` {name}"),
            };
            let ports: Vec<String> = specs.iter().map(|s| format!("--set network.ports.{}=PORT", s.service)).collect();
            anyhow::Error::new(NotOurs {
                kind,
                name: name.to_owned(),
                whose,
                dir: owner.dir.clone(),
                settings: ports.join(" "),
                remedy,
            })
        };
        if let Ok(network) = self.docker.inspect_network::<String>(&names.network, None).await
            && !owner.owns(network.labels.as_ref())
        {
            return Err(refuse("network", &names.network, network.labels.as_ref()));
        }
        for spec in specs {
            for name in [spec.name.clone(), format!("{}-deliver", spec.name)] {
                if let Some(info) = self.inspect(&name).await? {
                    let labels = info.config.and_then(|c| c.labels);
                    if !owner.owns(labels.as_ref()) {
                        return Err(refuse("container", &name, labels.as_ref()));
                    }
                }
            }
            for volume in &spec.volumes {
                if let Ok(found) = self.docker.inspect_volume(&volume.name).await
                    && !owner.owns(Some(&found.labels))
                {
                    return Err(refuse("volume", &volume.name, Some(&found.labels)));
                }
            }
        }
        Ok(())
    }

    /// Removes the one-off containers of `role` of a stack in one of `states` (any state when
    /// empty: what a killed hardstack left running, since SIGKILL cannot be caught).
    pub async fn remove_one_offs(&self, stack: &str, role: &str, states: &[&str]) -> anyhow::Result<()> {
        let mut filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{STACK_LABEL}={stack}"), format!("{SERVICE_LABEL}={role}")],
        )]);
        if !states.is_empty() {
            filters.insert("status".to_owned(), states.iter().map(|s| s.to_string()).collect());
        }
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters, ..Default::default() }))
            .await
            .context("listing containers")?;
        for container in found.into_iter().filter(|c| self.may_touch(c.labels.as_ref())) {
            if let Some(id) = container.id {
                self.force_remove(&id).await?;
            }
        }
        Ok(())
    }

    /// Removes a stack's containers (in parallel) and network, and with `volumes` its volumes:
    /// every object carrying its label. What `down` does, and a restore with `--force`.
    pub async fn remove_stack(&self, names: &StackNames, volumes: bool) -> anyhow::Result<Removed> {
        let containers = self.stack_containers(&names.stack).await?;
        for result in futures_util::future::join_all(containers.iter().map(|name| self.remove(name))).await {
            result?;
        }
        let network = self.remove_network(names).await?;
        let mut removed_volumes = Vec::new();
        if volumes {
            removed_volumes = self.stack_volumes(&names.stack).await?;
            for volume in &removed_volumes {
                self.remove_volume(volume).await?;
            }
        }
        Ok(Removed { containers, network, volumes: removed_volumes })
    }

    /// The containers of services the profile no longer runs (by their names; one-offs and
    /// helpers are not services), which this directory made.
    pub async fn undeclared_containers(&self, profile: &crate::profile::Profile) -> anyhow::Result<Vec<String>> {
        let existing = self.stack_containers(&profile.stack.name).await?;
        let declared = match profile.runs(crate::profile::Service::Postgres) {
            true => profile.postgres.replicas,
            false => 0,
        };
        // PostgreSQL's replicas beyond postgres.replicas.
        let replicas = existing
            .iter()
            .filter(|name| crate::replica::node_of(profile, name).is_some_and(|node| node > declared))
            .cloned();
        // Redis's replicas and Sentinels beyond redis.replicas and redis.sentinels.
        let redis = existing
            .iter()
            .filter(|name| match crate::sentinel::node_of(profile, name) {
                Some((service, node)) if profile.runs(crate::profile::Service::Redis) => match service {
                    crate::profile::Service::Redis => node > profile.redis.replicas,
                    _ => node >= profile.redis.sentinels,
                },
                Some(_) => true,
                None => false,
            })
            .cloned();
        // Qdrant's peers where Qdrant no longer runs (`up` refuses fewer peers of a running
        // cluster before it changes anything).
        let peers = existing
            .iter()
            .filter(|name| {
                let qdrant = profile.runs(crate::profile::Service::Qdrant);
                crate::peers::node_of(profile, name).is_some_and(|node| !qdrant || node >= profile.qdrant.nodes)
            })
            .cloned();
        Ok(crate::profile::Service::ALL
            .into_iter()
            .filter(|service| !profile.runs(*service))
            .map(|service| crate::containers::container_name(profile, service))
            .filter(|name| existing.contains(name))
            .chain(replicas)
            .chain(redis)
            .chain(peers)
            .collect())
    }

    /// Names of the containers that carry the stack's label.
    pub async fn stack_containers(&self, stack: &str) -> anyhow::Result<Vec<String>> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{STACK_LABEL}={stack}")])]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters, ..Default::default() }))
            .await
            .context("listing containers")?;
        Ok(containers
            .into_iter()
            .filter(|c| self.may_touch(c.labels.as_ref()))
            .filter_map(|c| c.names?.first().map(|n| n.trim_start_matches('/').to_owned()))
            .collect())
    }

    /// Names of the volumes that carry the stack's label.
    pub async fn stack_volumes(&self, stack: &str) -> anyhow::Result<Vec<String>> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{STACK_LABEL}={stack}")])]);
        let volumes =
            self.docker.list_volumes(Some(ListVolumesOptions { filters })).await.context("listing volumes")?;
        Ok(volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| self.may_touch(Some(&v.labels)))
            .map(|v| v.name)
            .collect())
    }

    /// Whether a volume of that name exists (whoever made it).
    pub async fn volume_exists(&self, name: &str) -> anyhow::Result<bool> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(err) => Err(err).with_context(|| format!("inspecting volume {name}")),
        }
    }

    /// Removes a volume.
    pub async fn remove_volume(&self, name: &str) -> anyhow::Result<()> {
        self.docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
            .with_context(|| format!("removing volume {name}"))
    }

    /// Removes the stack's network if it exists and carries the stack's label.
    pub async fn remove_network(&self, names: &StackNames) -> anyhow::Result<bool> {
        let Ok(network) = self.docker.inspect_network::<String>(&names.network, None).await else {
            return Ok(false);
        };
        let ours = network.labels.as_ref().and_then(|l| l.get(STACK_LABEL)) == Some(&names.stack)
            && self.may_touch(network.labels.as_ref());
        if !ours {
            return Ok(false);
        }
        self.docker
            .remove_network(&names.network)
            .await
            .with_context(|| format!("removing network {}", names.network))?;
        Ok(true)
    }
}
