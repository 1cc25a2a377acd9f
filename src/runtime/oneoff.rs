//! One-off containers on the stack's network, from one of its images, removed however they end:
//! `run_once` (a tool whose output is read back: backups, the checks from inside) and
//! `run_attached` (a client a person or a pipe talks to: `connect`).

use anyhow::Context as _;
use bollard::container::{
    AttachContainerOptions, Config, CreateContainerOptions, LogOutput, ResizeContainerTtyOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use bollard::models::HostConfig;
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{Engine, Ran};
use crate::containers::SERVICE_LABEL;

/// A one-off container to run (see [`Engine::run_once`]).
pub struct OneOff {
    pub image: String,
    /// `uid:gid`.
    pub user: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// A tar of the files it needs, unpacked at `/`.
    pub archive: Vec<u8>,
    /// Mounts in the engine's `source:target[:ro]` form: a named volume or a directory on the
    /// engine's host.
    pub mounts: Vec<String>,
    /// Capabilities kept after dropping ALL.
    pub cap_add: Vec<String>,
}

/// A one-off a client's streams are attached to: what runs (no mounts, no capability), the
/// variables it gets, and whether it gets a terminal.
pub struct Attached {
    pub run: OneOff,
    /// Variables that hold no secret (a secret goes in the archive, as a file).
    pub env: Vec<String>,
    /// The terminal's size (columns, rows) when a person's terminal is attached: the container
    /// gets a terminal of its own; otherwise plain streams.
    pub tty: Option<(u16, u16)>,
}

/// Where the container's streams go.
pub struct Streams<I, O, E> {
    pub stdin: I,
    pub stdout: O,
    pub stderr: E,
}

impl Engine {
    /// Runs a one-off container on the stack network and returns its exit code and what it
    /// printed on stdout. `archive` (a tar) is unpacked at the root of its filesystem before it
    /// starts, and `mounts` are mounted. It is removed once it exited, and when the caller is
    /// interrupted (SIGINT, SIGTERM); one a killed caller left is removed by the next run of the
    /// same role. It carries the stack's label, with `role` as its service label, for `down` and
    /// the tests' cleanup. (Not the engine's auto-remove: a wait for the exit of a container that
    /// had already exited and was being removed could wait forever.)
    pub async fn run_once(&self, stack: &str, network: &str, role: &str, run: OneOff) -> anyhow::Result<Ran> {
        use bollard::container::{AttachContainerOptions, WaitContainerOptions};
        let name = format!("{stack}-{role}-{}", std::process::id());
        // SIGINT and SIGTERM are caught from before the container exists until it is removed, so
        // an interruption at any moment removes it (see below).
        use tokio::signal::unix::{SignalKind, signal};
        let mut signals = (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok());
        // A one-off a killed caller left (never started, or exited) is gone with the next run.
        self.remove_one_offs(stack, role, &["created", "exited"]).await?;
        // Made before the race below: an interruption while the engine makes it would leave a
        // container made after its removal was asked for. A signal that arrives meanwhile waits
        // in `signals` and is seen at once.
        if let Err(err) = self.create_one_off(stack, network, role, &name, run, Config::default()).await {
            let _ = self.force_remove(&name).await;
            return Err(err);
        }
        let work = async {
            let attach = AttachContainerOptions::<String> {
                stdout: Some(true),
                stderr: Some(true),
                stream: Some(true),
                logs: Some(true),
                ..Default::default()
            };
            let mut attached = self.docker.attach_container(&name, Some(attach)).await?;
            let mut wait = self.docker.wait_container(&name, Some(WaitContainerOptions { condition: "not-running" }));
            self.start(&name).await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = attached.output.next().await {
                match chunk? {
                    bollard::container::LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
            let code = match wait.next().await {
                Some(Ok(response)) => response.status_code,
                // A non-zero exit arrives as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(err)) => return Err(err).context("waiting for the container"),
                None => -1,
            };
            let output = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
            anyhow::ensure!(code == 0, "{name} exited {code}: {}", output.trim());
            anyhow::Ok(Ran { code, output: String::from_utf8_lossy(&stdout).into_owned() })
        };
        // SIGINT or SIGTERM while it runs: remove the container, then give up.
        let interrupted = async {
            match &mut signals {
                (Some(int), Some(term)) => tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                },
                _ => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = work => result,
            () = interrupted => Err(anyhow::anyhow!("interrupted; container {name} removed")),
        };
        // Auto-remove covers a container that ran; one that failed or was interrupted before it
        // ran needs this.
        let _ = self.force_remove(&name).await;
        result
    }

    /// Creates the one-off `name` of `run` on the stack's network, labelled as the stack's with
    /// `role` as its service, with the posture of every one-off (no capability but those asked
    /// for, no privilege escalation, limits), and `streaming`'s stdin, terminal and variables;
    /// then copies its files in.
    async fn create_one_off(
        &self,
        stack: &str,
        network: &str,
        role: &str,
        name: &str,
        run: OneOff,
        streaming: Config<String>,
    ) -> anyhow::Result<()> {
        let mut labels = self.labels(stack);
        labels.insert(SERVICE_LABEL.to_owned(), role.to_owned());
        let config = Config {
            image: Some(run.image.clone()),
            user: Some(run.user.clone()),
            entrypoint: Some(run.command.clone()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_owned()),
                binds: Some(run.mounts.clone()),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(run.cap_add.clone()),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                memory: Some(256 * 1024 * 1024),
                pids_limit: Some(256),
                ..Default::default()
            }),
            ..streaming
        };
        let options = Some(CreateContainerOptions { name: name.to_owned(), platform: None });
        self.docker.create_container(options, config).await.with_context(|| format!("creating container {name}"))?;
        let upload = UploadToContainerOptions { path: "/".to_owned(), ..Default::default() };
        self.docker
            .upload_to_container(name, Some(upload), run.archive.into())
            .await
            .with_context(|| format!("copying files into {name}"))
    }

    /// Runs `run` on the stack's network with `streams` attached; its exit code.
    pub async fn run_attached<I, O, E>(
        &self,
        stack: &str,
        network: &str,
        role: &str,
        run: Attached,
        streams: Streams<I, O, E>,
    ) -> anyhow::Result<i64>
    where
        I: AsyncRead + Unpin + Send + 'static,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let name = format!("{stack}-{role}-{}", std::process::id());
        self.remove_one_offs(stack, role, &["created", "exited"]).await?;
        let streaming = Config {
            env: Some(run.env.clone()),
            tty: Some(run.tty.is_some()),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            ..Default::default()
        };
        let result = match self.create_one_off(stack, network, role, &name, run.run, streaming).await {
            Ok(()) => self.talk(&name, run.tty, streams).await,
            Err(err) => Err(err),
        };
        let _ = self.force_remove(&name).await;
        result
    }

    async fn talk<I, O, E>(&self, name: &str, tty: Option<(u16, u16)>, streams: Streams<I, O, E>) -> anyhow::Result<i64>
    where
        I: AsyncRead + Unpin + Send + 'static,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let Streams { mut stdin, mut stdout, mut stderr } = streams;
        let attach = AttachContainerOptions::<String> {
            stdin: Some(true),
            stdout: Some(true),
            stderr: Some(true),
            stream: Some(true),
            ..Default::default()
        };
        let attached = self.docker.attach_container(name, Some(attach)).await?;
        let (mut output, mut input) = (attached.output, attached.input);
        let mut wait = self.docker.wait_container(name, Some(WaitContainerOptions { condition: "not-running" }));
        self.start(name).await?;
        if let Some((width, height)) = tty {
            let size = ResizeContainerTtyOptions { width, height };
            // A terminal of the wrong size still works.
            let _ = self.docker.resize_container_tty(name, size).await;
        }
        // Standard input until it ends; then the container's stdin is closed (a pipe's end).
        let feeding = tokio::spawn(async move {
            let mut buffer = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.write_all(&buffer[..n]).await.is_err() || input.flush().await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = input.shutdown().await;
        });
        while let Some(chunk) = output.next().await {
            match chunk.context("reading the container's output")? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.write_all(&message).await?;
                    stdout.flush().await?;
                }
                LogOutput::StdErr { message } => {
                    stderr.write_all(&message).await?;
                    stderr.flush().await?;
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        feeding.abort();
        let code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            // A non-zero exit arrives as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(err)) => return Err(err).context("waiting for the container"),
            None => -1,
        };
        Ok(code)
    }
}
