//! Which objects of the engine are this stack directory's: the labels an engine acting for a
//! directory puts on what it creates and requires of what it touches (`crate::identity`).

use std::collections::HashMap;

use crate::containers::{ContainerSpec, DIR_LABEL, ID_LABEL, STACK_LABEL, StackNames};

use super::Engine;

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
}
