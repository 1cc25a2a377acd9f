//! The only user of bollard: the engine connection, images, the stack's network and volumes,
//! containers made from `ContainerSpec`s, file delivery into volumes, and logs. Commands decide
//! what to do; this module does one engine operation at a time and says what failed.

pub mod deliver;
pub mod endpoint;
mod oneoff;
mod owner;

pub use oneoff::{Attached, OneOff, Streams};
pub use owner::{NotOurs, Owner};

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::Docker;
use bollard::container::{
    Config, CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions, NetworkingConfig,
    RemoveContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::image::CreateImageOptions;
use bollard::models::{
    ContainerInspectResponse, EndpointSettings, HealthConfig, HostConfig, Mount, MountTypeEnum, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::network::CreateNetworkOptions;
use bollard::volume::CreateVolumeOptions;
use futures_util::StreamExt as _;

use crate::containers::{ContainerSpec, SERVICE_LABEL, StackNames};
use crate::error::EnvironmentError;

/// What the engine says about a container (other modules see bollard's types through here).
pub use bollard::models::ContainerInspectResponse as ContainerInfo;
/// A container's healthcheck verdict.
pub use bollard::models::HealthStatusEnum as HealthStatus;

/// Label carrying the hash of everything a container was made from; a different hash means
/// the container is out of date and is recreated.
pub const CONFIG_HASH_LABEL: &str = "hardstack.config-hash";

/// The oldest engine API hardstack works with (Docker Engine 20.10).
pub const MIN_API_VERSION: (u32, u32) = (1, 41);

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    /// The negotiated API version, `1.41`.
    pub api_version: String,
    /// The engine's own version.
    pub server_version: String,
    /// Where it was reached, and why there.
    pub endpoint: endpoint::Endpoint,
    /// The stack directory this engine acts for (`Engine::acting_for`): what it creates carries
    /// its labels, and what it lists, removes or reuses must carry them.
    owner: Option<Owner>,
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Connects to the engine (`DOCKER_HOST` or the local socket), negotiates the API version and
/// checks it is at least 1.41.
pub async fn connect() -> anyhow::Result<Engine> {
    let endpoint = endpoint::find().map_err(|e| EnvironmentError(format!("{e:#}")))?;
    let where_ = endpoint.to_string();
    let unreachable = |err: &bollard::errors::Error| {
        let denied = std::iter::successors(Some(err as &dyn std::error::Error), |e| e.source()).any(|e| {
            e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
                || e.to_string().contains("Permission denied")
        });
        anyhow::Error::new(EnvironmentError(match denied {
            true => format!(
                "permission denied on the Docker socket {where_}: add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again), or run hardstack with sudo"
            ),
            false => format!(
                "the Docker engine at {where_} does not answer ({err}); start it (dockerd, or .ci/setup), or set DOCKER_HOST or DOCKER_CONTEXT"
            ),
        }))
    };
    let client = |version: &bollard::ClientVersion| -> anyhow::Result<Docker> {
        match endpoint.host.strip_prefix("unix://") {
            Some(path) => Docker::connect_with_unix(path, 120, version),
            None if endpoint.host.starts_with("tcp://") || endpoint.host.starts_with("http://") => {
                Docker::connect_with_http(&endpoint.host, 120, version)
            }
            None => {
                return Err(EnvironmentError(format!(
                    "the Docker engine at {where_}: hardstack reaches engines over unix:// and tcp:// only"
                ))
                .into());
            }
        }
        .map_err(|e| unreachable(&e))
    };
    // One request for what `negotiate_version` and `version` would each ask (the engine answers
    // /version slowly: it asks containerd and runc for theirs): the client then speaks the
    // engine's API version where the engine is older than bollard.
    let docker = client(bollard::API_DEFAULT_VERSION)?;
    let version = docker.version().await.map_err(|e| unreachable(&e))?;
    let api_version = version.api_version.unwrap_or_default();
    let (major, minor) = parse_version(&api_version);
    if (major, minor) < MIN_API_VERSION {
        return Err(EnvironmentError(format!(
            "the Docker engine at {where_} speaks API {api_version}; hardstack needs 1.41 (Engine 20.10) or newer"
        ))
        .into());
    }
    let engine_api = bollard::ClientVersion { major_version: major as usize, minor_version: minor as usize };
    let docker = if engine_api < *bollard::API_DEFAULT_VERSION { client(&engine_api)? } else { docker };
    Ok(Engine { docker, api_version, server_version: version.version.unwrap_or_default(), endpoint, owner: None })
}

/// What a command run in a container did.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i64,
    /// Its stdout and stderr.
    pub output: String,
}

/// What [`Engine::remove_stack`] removed.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub containers: Vec<String>,
    /// Whether the network existed.
    pub network: bool,
    pub volumes: Vec<String>,
}

/// How an image was made available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    Present,
    Pulled,
}

impl Engine {
    /// Whether a registry has the image, asked without pulling it.
    pub async fn registry_has(&self, image: &str) -> anyhow::Result<()> {
        self.docker
            .inspect_registry_image(image, None)
            .await
            .map(|_| ())
            .with_context(|| format!("asking the registry for {image}"))
    }

    /// The engine's memory in bytes (0 when it does not say).
    pub async fn memory(&self) -> anyhow::Result<u64> {
        let info = self.docker.info().await.context("asking the engine for its resources")?;
        Ok(info.mem_total.unwrap_or(0).max(0) as u64)
    }

    /// How many CPUs the engine has (0 when it does not say).
    pub async fn cpus(&self) -> anyhow::Result<u64> {
        let info = self.docker.info().await.context("asking the engine for its resources")?;
        Ok(info.ncpu.unwrap_or(0).max(0) as u64)
    }

    /// A label of an image in the engine; `None` when the image or the label is absent.
    pub async fn image_label(&self, image: &str, label: &str) -> Option<String> {
        let inspected = self.docker.inspect_image(image).await.ok()?;
        inspected.config?.labels?.get(label).cloned()
    }

    /// The image a one-off container of a service runs (its tools, a delivery, checks from
    /// inside): the one the service's container runs, so versions match; without a container,
    /// the spec's when the engine has it, else the local one images/build.sh makes. The one
    /// place that chooses it.
    pub async fn image_of(&self, spec: &ContainerSpec) -> anyhow::Result<String> {
        if let Some(image) = self.inspect(&spec.name).await?.and_then(|info| info.config?.image) {
            return Ok(image);
        }
        let local = crate::containers::local_image(spec.service);
        Ok(if !self.has_image(&spec.image).await && self.has_image(local).await {
            local.to_owned()
        } else {
            spec.image.clone()
        })
    }

    /// Whether the image is in the engine.
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// Makes the image present: nothing if it is, else a pull.
    pub async fn ensure_image(&self, image: &str) -> anyhow::Result<ImageSource> {
        if self.has_image(image).await {
            return Ok(ImageSource::Present);
        }
        let options = CreateImageOptions { from_image: image, ..Default::default() };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            if let Err(err) = item {
                return Err(EnvironmentError(format!("the pull failed: {err}")).into());
            }
        }
        Ok(ImageSource::Pulled)
    }

    /// Creates the stack's network unless it exists.
    pub async fn ensure_network(&self, names: &StackNames) -> anyhow::Result<()> {
        self.make_network(names).await.map(|_| ())
    }

    /// [`Engine::ensure_network`], saying whether it made the network (it did not exist).
    pub async fn make_network(&self, names: &StackNames) -> anyhow::Result<bool> {
        if self.docker.inspect_network::<String>(&names.network, None).await.is_ok() {
            return Ok(false);
        }
        let labels = self.labels(&names.stack);
        let labels = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.docker
            .create_network(CreateNetworkOptions {
                name: names.network.as_str(),
                driver: "bridge",
                internal: names.internal,
                labels,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating network {}", names.network))?;
        Ok(true)
    }

    /// Creates every named volume of a spec that does not exist, labelled for the stack (the
    /// engine's volume create returns an existing volume as it is).
    pub async fn ensure_volumes(&self, stack: &str, spec: &ContainerSpec) -> anyhow::Result<()> {
        let mut labels = self.labels(stack);
        labels.insert(SERVICE_LABEL.to_owned(), spec.service.name().to_owned());
        let labels: HashMap<&str, &str> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let creates = spec.volumes.iter().map(|volume| {
            let options =
                CreateVolumeOptions { name: volume.name.as_str(), labels: labels.clone(), ..Default::default() };
            async move {
                self.docker.create_volume(options).await.with_context(|| format!("creating volume {}", volume.name))
            }
        });
        futures_util::future::try_join_all(creates).await?;
        Ok(())
    }

    /// The container of that name, if any.
    pub async fn inspect(&self, name: &str) -> anyhow::Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(name, None::<InspectContainerOptions>).await {
            Ok(info) => Ok(Some(info)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("inspecting container {name}")),
        }
    }

    /// Copies files into the spec's volumes with their owner and mode, through a helper
    /// container that is created for the upload and never started (works against a remote
    /// engine, and into volumes that the service mounts read-only). The files are in the
    /// volumes when it returns the helper container's name, for the caller to `force_remove`.
    pub async fn deliver_keeping_helper(
        &self,
        stack: &str,
        spec: &ContainerSpec,
        archives: &[(String, Vec<u8>)],
    ) -> anyhow::Result<String> {
        let keys = archives.iter().map(|(key, _)| key.clone()).collect();
        let helper = self.create_deliverer(stack, spec, &keys).await?;
        match self.upload(&helper, archives).await {
            Ok(()) => Ok(helper),
            Err(err) => {
                let _ = self.force_remove(&helper).await;
                Err(err)
            }
        }
    }

    /// Creates the never-started helper container of `deliver`, with the spec's volumes of
    /// these keys (the ones its archives go to) mounted under /dst; they must exist. A helper
    /// left by an interrupted run is replaced. Returns its name.
    pub async fn create_deliverer(
        &self,
        stack: &str,
        spec: &ContainerSpec,
        keys: &std::collections::BTreeSet<String>,
    ) -> anyhow::Result<String> {
        let name = format!("{}-deliver", spec.name);
        let mounts = spec
            .volumes
            .iter()
            .filter(|v| keys.contains(&v.key))
            .map(|v| Mount {
                target: Some(format!("/dst/{}", v.key)),
                source: Some(v.name.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                read_only: Some(false),
                ..Default::default()
            })
            .collect();
        let mut labels = self.labels(stack);
        labels.insert(SERVICE_LABEL.to_owned(), "deliver".to_owned());
        let labels = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // The image the service runs: the profile's may be absent when `up` fell back to the
        // local one.
        let image = self.image_of(spec).await?;
        let config = Config {
            image: Some(image.as_str()),
            // Never started, but the engine wants a command: the service's, where the image
            // has none of its own (the monitoring image serves three entrypoints).
            entrypoint: spec.entrypoint.as_ref().map(|e| e.iter().map(String::as_str).collect()),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = || Some(CreateContainerOptions { name: name.as_str(), platform: None });
        match self.docker.create_container(options(), config.clone()).await {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                self.force_remove(&name).await?;
                self.docker.create_container(options(), config).await
            }
            created => created,
        }
        .with_context(|| format!("creating {name}"))?;
        Ok(name)
    }

    /// Unpacks the archives into their volumes through the helper container, as one archive:
    /// the engine mounts the helper's volumes for each upload, so one upload costs one mount.
    pub async fn upload(&self, helper: &str, archives: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        let tar = deliver::under_volume_keys(archives)?;
        let options = UploadToContainerOptions { path: "/dst".to_owned(), ..Default::default() };
        let keys: Vec<&str> = archives.iter().map(|(key, _)| key.as_str()).collect();
        self.docker
            .upload_to_container(helper, Some(options), tar.into())
            .await
            .with_context(|| format!("copying files into volumes {}", keys.join(", ")))
    }

    /// Removes a container without stopping it first (a helper of `deliver`, which never runs),
    /// and its anonymous volumes: an image's `VOLUME` that no named volume covers gets one (the
    /// helper does not mount the data volume), and nothing else would ever remove it. Named
    /// volumes stay.
    pub async fn force_remove(&self, name: &str) -> anyhow::Result<()> {
        match self
            .docker
            .remove_container(name, Some(RemoveContainerOptions { force: true, v: true, link: false }))
            .await
        {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(err) => Err(err).with_context(|| format!("removing container {name}")),
        }
    }

    /// Creates the service's container from its spec (not started).
    pub async fn create(
        &self,
        stack: &str,
        spec: &ContainerSpec,
        config_hash: &str,
        stack_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        // The first port, then any others (the front's gRPC port), each bound where published.
        let ports: Vec<(String, Option<&(String, u16)>)> =
            std::iter::once((format!("{}/tcp", spec.container_port), spec.publish.as_ref()))
                .chain(spec.extra_ports.iter().map(|p| (format!("{}/tcp", p.container_port), p.publish.as_ref())))
                .collect();
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = ports
            .iter()
            .filter_map(|(key, publish)| {
                let (address, port) = (*publish)?;
                let binding = PortBinding { host_ip: Some(address.clone()), host_port: Some(port.to_string()) };
                Some((key.clone(), Some(vec![binding])))
            })
            .collect();
        let port_bindings = (!bindings.is_empty()).then_some(bindings);
        let volumes = spec.volumes.iter().map(|v| Mount {
            target: Some(v.target.clone()),
            source: Some(v.name.clone()),
            typ: Some(MountTypeEnum::VOLUME),
            read_only: Some(v.read_only),
            ..Default::default()
        });
        let binds = spec.binds.iter().map(|b| Mount {
            target: Some(b.target.clone()),
            source: Some(b.host_path(stack_dir).to_string_lossy().into_owned()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(false),
            ..Default::default()
        });
        let mounts = volumes.chain(binds).collect();
        let tmpfs = spec.tmpfs.iter().map(|t| (t.target.clone(), t.options.clone())).collect();
        let posture = &spec.posture;
        // The engine applies its default seccomp profile unless told otherwise.
        let crate::containers::Seccomp::RuntimeDefault = posture.seccomp;
        let restart = match posture.restart.as_str() {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            "no" => RestartPolicyNameEnum::NO,
            _ => RestartPolicyNameEnum::UNLESS_STOPPED,
        };
        let host_config = HostConfig {
            mounts: Some(mounts),
            tmpfs: Some(tmpfs),
            cap_drop: Some(posture.cap_drop.clone()),
            cap_add: Some(spec.cap_add.clone()),
            security_opt: Some(
                posture.no_new_privileges.then(|| "no-new-privileges:true".to_owned()).into_iter().collect(),
            ),
            readonly_rootfs: Some(posture.read_only_root),
            memory: Some(spec.memory_bytes as i64),
            nano_cpus: Some(spec.nano_cpus as i64),
            pids_limit: Some(i64::from(spec.pids)),
            restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: None }),
            port_bindings,
            network_mode: Some(spec.network.clone()),
            dns_options: (!spec.dns_options.is_empty()).then(|| spec.dns_options.clone()),
            ..Default::default()
        };
        let mut labels = self.labels(stack);
        labels.insert(SERVICE_LABEL.to_owned(), spec.service.name().to_owned());
        labels.insert(CONFIG_HASH_LABEL.to_owned(), config_hash.to_owned());
        let endpoints = HashMap::from([(
            spec.network.clone(),
            EndpointSettings { aliases: Some(vec![spec.alias.clone()]), ..Default::default() },
        )]);
        let second = 1_000_000_000;
        let config = Config {
            image: Some(spec.image.clone()),
            user: Some(spec.user.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: Some(spec.command.clone()),
            env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(ports.into_iter().map(|(key, _)| (key, HashMap::new())).collect()),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), spec.healthcheck.clone()]),
                interval: Some(i64::from(posture.health.interval) * second),
                timeout: Some(i64::from(posture.health.timeout) * second),
                retries: Some(i64::from(posture.health.retries)),
                start_period: Some(i64::from(posture.health.start_period) * second),
                ..Default::default()
            }),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig { endpoints_config: endpoints }),
            ..Default::default()
        };
        self.docker
            .create_container(Some(CreateContainerOptions { name: spec.name.clone(), platform: None }), config)
            .await
            .with_context(|| format!("creating container {}", spec.name))?;
        Ok(())
    }

    /// Starts a container.
    pub async fn start(&self, name: &str) -> anyhow::Result<()> {
        self.docker.start_container::<String>(name, None).await.with_context(|| format!("starting container {name}"))
    }

    /// Runs a container's healthcheck command now, as the container's user; `Ok` when it exits 0.
    pub async fn run_healthcheck(&self, spec: &ContainerSpec) -> anyhow::Result<()> {
        let command = vec!["/bin/sh".to_owned(), "-c".to_owned(), spec.healthcheck.clone()];
        self.run_check(&spec.name, &spec.user, command).await
    }

    /// Runs the healthcheck a container was created with (its `CMD` or `CMD-SHELL` test), now.
    pub async fn run_configured_healthcheck(&self, name: &str, info: &ContainerInfo) -> anyhow::Result<()> {
        let config = info.config.as_ref();
        let test = config.and_then(|c| c.healthcheck.as_ref()?.test.clone()).unwrap_or_default();
        let command = match test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" => vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")],
            Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
            _ => anyhow::bail!("container {name} has no healthcheck to run"),
        };
        let user = config.and_then(|c| c.user.clone()).unwrap_or_default();
        self.run_check(name, &user, command).await
    }

    /// Runs a command in a running container as `user`; `Ok` when it exits 0, else its output.
    async fn run_check(&self, name: &str, user: &str, command: Vec<String>) -> anyhow::Result<()> {
        let ran = self.exec(name, user, command).await.with_context(|| format!("running the healthcheck of {name}"))?;
        anyhow::ensure!(ran.code == 0, "the healthcheck of {name} exited {}: {}", ran.code, ran.output.trim());
        Ok(())
    }

    /// Runs a command in a running container as `user` and returns its exit code and output
    /// (stdout and stderr, interleaved). Nothing of it persists in the container.
    pub async fn exec(&self, name: &str, user: &str, command: Vec<String>) -> anyhow::Result<Ran> {
        let exec = self
            .docker
            .create_exec(
                name,
                bollard::exec::CreateExecOptions {
                    cmd: Some(command),
                    user: Some(user.to_owned()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("running a command in {name}"))?;
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while let Some(Ok(chunk)) = stream.next().await {
                output.push_str(&chunk.to_string());
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1);
        Ok(Ran { code, output })
    }

    /// One file of a container's filesystem (a volume mounted in it counts), through the
    /// archive endpoint; `None` when there is no such file. The container need not run.
    pub async fn read_file(&self, name: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let options = bollard::container::DownloadFromContainerOptions { path: path.to_owned() };
        let mut stream = self.docker.download_from_container(name, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
                Err(err) => return Err(err).with_context(|| format!("reading {path} in container {name}")),
            }
        }
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().context("reading the archive of a container's file")? {
            let mut entry = entry?;
            if entry.header().entry_type().is_file() {
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content)?;
                return Ok(Some(content));
            }
        }
        Ok(None)
    }

    /// Sets a container's memory, CPU and pids limits in place, running or not. Swap stays
    /// what the engine gives at creation (as much again as the memory).
    pub async fn update_limits(&self, name: &str, memory: u64, nano_cpus: u64, pids: u32) -> anyhow::Result<()> {
        let options = bollard::container::UpdateContainerOptions::<String> {
            memory: Some(memory as i64),
            memory_swap: Some(2 * memory as i64),
            nano_cpus: Some(nano_cpus as i64),
            pids_limit: Some(i64::from(pids)),
            ..Default::default()
        };
        self.docker.update_container(name, options).await.with_context(|| format!("updating the limits of {name}"))
    }

    /// Sends a signal to a container's main process (`HUP`: PgBouncer reads its configuration
    /// and certificates again).
    pub async fn signal(&self, name: &str, signal: &str) -> anyhow::Result<()> {
        self.docker
            .kill_container(name, Some(bollard::container::KillContainerOptions { signal }))
            .await
            .with_context(|| format!("sending SIG{signal} to container {name}"))
    }

    /// A container's address on a network (a local engine's host routes to it).
    pub async fn address_on(&self, name: &str, network: &str) -> anyhow::Result<std::net::IpAddr> {
        let info = self.inspect(name).await?.with_context(|| format!("container {name} does not exist"))?;
        address_in(&info, network).with_context(|| format!("container {name} has no address on {network}"))
    }

    /// Restarts a running container (a new process with the files now in its volumes).
    pub async fn restart(&self, name: &str) -> anyhow::Result<()> {
        self.docker
            .restart_container(name, Some(bollard::container::RestartContainerOptions { t: 10 }))
            .await
            .with_context(|| format!("restarting container {name}"))
    }

    /// Whether a container exists and runs.
    pub async fn running(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.inspect(name).await?.and_then(|info| info.state?.running).unwrap_or(false))
    }

    /// Stops a container with its own stop signal (PostgreSQL's image: SIGINT, a fast shutdown
    /// that ends with a checkpoint its standbys receive), killing it after `grace` seconds.
    pub async fn stop(&self, name: &str, grace: i64) -> anyhow::Result<()> {
        self.docker
            .stop_container(name, Some(StopContainerOptions { t: grace }))
            .await
            .with_context(|| format!("stopping container {name}"))
    }

    /// Stops and removes a container if it exists.
    pub async fn remove(&self, name: &str) -> anyhow::Result<()> {
        let _ = self.docker.stop_container(name, Some(StopContainerOptions { t: 10 })).await;
        self.force_remove(name).await
    }

    /// The last `lines` lines of a container's log.
    pub async fn log_tail(&self, name: &str, lines: usize) -> String {
        let options = LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
        let mut stream = self.docker.logs(name, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        text
    }

    /// The name of a running container that publishes `port` on the host, if any.
    pub async fn container_publishing(&self, port: u16) -> Option<String> {
        let containers = self.docker.list_containers(None::<ListContainersOptions<String>>).await.ok()?;
        containers.into_iter().find_map(|c| {
            let publishes = c.ports.unwrap_or_default().iter().any(|p| p.public_port == Some(port));
            publishes.then(|| {
                c.names.and_then(|n| n.first().cloned()).unwrap_or_default().trim_start_matches('/').to_owned()
            })
        })
    }
}

/// The address an inspected container has on a network.
pub fn address_in(info: &ContainerInfo, network: &str) -> Option<std::net::IpAddr> {
    info.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref()?.get(network)?.ip_address.clone())
        .and_then(|ip| ip.parse().ok())
}
