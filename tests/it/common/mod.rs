//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use assert_cmd::Command;

/// The built binary with a clean environment, run in `cwd`.
pub fn hardstack(cwd: &Path) -> Command {
    let mut cmd = Command::cargo_bin("hardstack").expect("the binary is built by cargo test");
    cmd.current_dir(cwd).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("NO_COLOR", "1");
    cmd
}

/// A temporary directory and the stack directory inside it (not yet created).
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { tmp: tempfile::tempdir().expect("a temporary directory") }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn stack(&self) -> PathBuf {
        self.tmp.path().join("stack")
    }

    pub fn cmd(&self) -> Command {
        hardstack(self.root())
    }

    /// Runs `init` with extra arguments and asserts success.
    pub fn init(&self, args: &[&str]) -> String {
        let out = self.cmd().arg("init").args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.stack().join(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Says, loudly and on both streams, that a test (or a part of it) does not run here and why.
/// The one place that prints `SKIPPED` (the tidy test holds it).
pub fn skipped(why: &str) {
    println!("SKIPPED: {why}");
    eprintln!("SKIPPED: {why}");
}

/// The Qdrant image the engine has: the upstream tag, or the local one
/// `images/build.sh --qdrant-binary` makes (which `up` falls back to). Without one, the Qdrant
/// part of `test` is skipped, loudly; with `HARDSTACK_REQUIRE_QDRANT=1` it fails instead (a
/// machine that has the image can demand the tests).
pub fn qdrant_image(test: &str) -> Option<&'static str> {
    let local = hardstack::containers::local_image(hardstack::profile::Service::Qdrant);
    if let Some(image) = [QDRANT_IMAGE, local].into_iter().find(|image| has_image(image)) {
        return Some(image);
    }
    assert!(
        std::env::var("HARDSTACK_REQUIRE_QDRANT").as_deref() != Ok("1"),
        "{test}: no qdrant image ({QDRANT_IMAGE} or {local}), and HARDSTACK_REQUIRE_QDRANT=1 demands it"
    );
    skipped(&format!("no qdrant image ({QDRANT_IMAGE} or {local}) for {test}"));
    None
}

/// The built example NAME (examples/NAME.rs), which the tests run as an application would.
/// `cargo test` builds the examples; a run limited to some targets (`cargo test --test it`)
/// does not, and then this says so instead of a bare "No such file or directory".
pub fn example_binary(name: &str) -> PathBuf {
    let target = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let example = target.join("examples").join(name);
    assert!(
        example.is_file(),
        "{} is missing: `cargo test` builds the examples, a run limited to some targets (`cargo test --test it`) does not; run `cargo build --examples` first",
        example.display()
    );
    example
}

/// Whether a Docker engine answers. Without one, Docker tests fail in CI (`CI` set) and are a
/// loud skip elsewhere.
pub fn docker_available(test: &str) -> bool {
    let ok = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{test}: no Docker engine answers, and CI needs one");
        skipped(&format!("{test}: no Docker engine answers"));
    }
    ok
}

/// Whether the engine has an image.
pub fn has_image(image: &str) -> bool {
    std::process::Command::new("docker").args(["image", "inspect", image]).output().is_ok_and(|o| o.status.success())
}

/// The PostgreSQL and Redis images the Docker tests use: the local builds (images/build.sh).
pub const POSTGRES_IMAGE: &str = "hardstack-local/postgres:17";
pub const REDIS_IMAGE: &str = "hardstack-local/redis:8";
/// The exporters' and Prometheus's local image (images/build.sh).
pub const MONITORING_IMAGE: &str = "hardstack-local/monitoring:trixie";
/// The Qdrant image of the shipped profiles; its tests run only where it is present.
pub const QDRANT_IMAGE: &str = "qdrant/qdrant:v1.18.3-unprivileged";

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    // The kernel may hand the same free port out twice in a row once the probe socket is
    // closed: remember what this process handed out, and never give a port twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A stack for one Docker test: its own name and ports, removed (containers, network,
/// volumes, by label) when dropped, even when the test fails.
pub struct DockerStack {
    pub sandbox: Sandbox,
    pub name: String,
    pub args: Vec<String>,
    /// The services it runs.
    pub services: Vec<String>,
}

impl DockerStack {
    /// A stack of the `test` profile with the local images, volumes for data, and qdrant only
    /// when its image is present (otherwise the test says so).
    pub fn new(test: &str) -> DockerStack {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!("hs-it-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let qdrant = qdrant_image(&format!("{test} (PostgreSQL and Redis run)"));
        let services: Vec<String> = match qdrant {
            Some(_) => vec!["postgres".into(), "redis".into(), "qdrant".into()],
            None => vec!["postgres".into(), "redis".into()],
        };
        let args = [
            "--profile".to_owned(),
            "test".to_owned(),
            "--set".to_owned(),
            format!("stack.name={name}"),
            "--set".to_owned(),
            format!("stack.services={}", service_list(&services)),
            "--set".to_owned(),
            format!("images.postgres={POSTGRES_IMAGE}"),
            "--set".to_owned(),
            format!("images.redis={REDIS_IMAGE}"),
            "--set".to_owned(),
            format!("images.qdrant={}", qdrant.unwrap_or(QDRANT_IMAGE)),
            "--set".to_owned(),
            "postgres.data=volume".to_owned(),
            "--set".to_owned(),
            "redis.data=volume".to_owned(),
            "--set".to_owned(),
            format!("network.ports.postgres={}", free_port()),
            "--set".to_owned(),
            format!("network.ports.redis={}", free_port()),
            "--set".to_owned(),
            format!("network.ports.qdrant={}", free_port()),
            "--set".to_owned(),
            format!("network.ports.qdrant_grpc={}", free_port()),
            "--set".to_owned(),
            format!("network.ports.pgbouncer={}", free_port()),
            "--set".to_owned(),
            format!("network.ports.prometheus={}", free_port()),
            "--set".to_owned(),
            format!("images.postgres_exporter={MONITORING_IMAGE}"),
            "--set".to_owned(),
            format!("images.redis_exporter={MONITORING_IMAGE}"),
            "--set".to_owned(),
            format!("images.pgbouncer_exporter={MONITORING_IMAGE}"),
            "--set".to_owned(),
            format!("images.prometheus={MONITORING_IMAGE}"),
        ]
        .to_vec();
        DockerStack { sandbox: Sandbox::new(), name, args, services }
    }

    /// Runs only these services.
    pub fn services(mut self, services: &[&str]) -> DockerStack {
        self.services = services.iter().map(|s| s.to_string()).collect();
        self.args.extend(["--set".to_owned(), format!("stack.services={}", service_list(&self.services))]);
        self
    }

    /// Runs this service too.
    pub fn with(self, service: &str) -> DockerStack {
        let mut services: Vec<String> = self.services.clone();
        services.push(service.to_owned());
        self.services(&services.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Replaces one template by the embedded one edited with `edit` (for weakening tests).
    pub fn template(mut self, name: &str, edit: impl Fn(&str) -> String) -> DockerStack {
        let original =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates").join(name)).unwrap();
        let edited = edit(&original);
        assert_ne!(original, edited, "the edit of {name} changed nothing");
        self.sandbox.write(&format!("tpl/{name}"), &edited);
        if !self.args.iter().any(|a| a == "--templates") {
            self.args.extend(["--templates".to_owned(), "tpl".to_owned()]);
        }
        self
    }

    /// Accepts failing audit rules by id (`--accept`): what a weakening test needs for `up` to
    /// deliver its weakened file.
    pub fn accept(mut self, rules: &[&str]) -> DockerStack {
        self.args.extend(["--accept".to_owned(), rules.join(",")]);
        self
    }

    /// Uses another shipped profile than `test`.
    pub fn profile(mut self, profile: &str) -> DockerStack {
        let at = self.args.iter().position(|a| a == "--profile").expect("the stack names a profile");
        self.args[at + 1] = profile.to_owned();
        self
    }

    /// Adds `--set key=value` to the profile arguments.
    pub fn set(mut self, assignment: &str) -> DockerStack {
        self.args.extend(["--set".to_owned(), assignment.to_owned()]);
        self
    }

    /// The stack's resolved profile and directory, for tests that use the library directly.
    pub fn library(&self) -> (hardstack::profile::Profile, hardstack::stackdir::StackDir) {
        hardstack::probe::install_crypto_provider();
        let source = hardstack::profile::ProfileSource::File(self.sandbox.stack().join("hardstack.toml"));
        let profile = hardstack::profile::load(&source, &[]).unwrap().profile;
        (profile, hardstack::stackdir::StackDir::new(self.sandbox.stack()))
    }

    /// `verify -o json`: the exit code and the verdict of every check by id.
    pub fn verify(&self) -> (i32, std::collections::BTreeMap<String, String>) {
        let out = self.cmd("verify", &["-o", "json"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify JSON: {e}; stderr: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(report["schema"], "hardstack.checks/v1");
        let verdicts = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["verdict"].as_str().unwrap().to_owned()))
            .collect();
        (out.status.code().unwrap_or(-1), verdicts)
    }

    /// `hardstack <command> <profile args> <extra>` in the sandbox.
    pub fn cmd(&self, command: &str, extra: &[&str]) -> Command {
        let mut cmd = self.sandbox.cmd();
        cmd.arg(command);
        if command == "up" || command == "init" || command == "plan" {
            cmd.args(&self.args);
        }
        cmd.args(extra);
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            cmd.env("DOCKER_HOST", host);
        }
        cmd
    }

    /// Names of the engine's objects that carry this stack's label.
    pub fn objects(&self) -> Vec<String> {
        let filter = format!("label=hardstack.stack={}", self.name);
        let mut found = Vec::new();
        for args in [
            vec!["ps", "-aq", "--filter", &filter],
            vec!["network", "ls", "-q", "--filter", &filter],
            vec!["volume", "ls", "-q", "--filter", &filter],
        ] {
            let out = std::process::Command::new("docker").args(&args).output().unwrap();
            found.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("{}: {l}", args[0])));
        }
        found
    }

    /// A variable of `hardstack env --format json`.
    pub fn env(&self, name: &str) -> String {
        let out = self.cmd("env", &["--format", "json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json[name].as_str().unwrap_or_else(|| panic!("{name} in env")).to_owned()
    }
}

impl Drop for DockerStack {
    fn drop(&mut self) {
        let filter = format!("label=hardstack.stack={}", self.name);
        let sh = format!(
            "docker ps -aq --filter {filter} | xargs -r docker rm -f -v >/dev/null; \
             docker network ls -q --filter {filter} | xargs -r docker network rm >/dev/null; \
             docker volume ls -q --filter {filter} | xargs -r docker volume rm -f >/dev/null"
        );
        let _ = std::process::Command::new("sh").args(["-c", &sh]).status();
    }
}

/// `stack.services` as a TOML array.
fn service_list(services: &[String]) -> String {
    format!("[{}]", services.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(","))
}

/// Everything a command printed, stdout then stderr.
pub fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A query as the stack's application user through psql (verify-full); its answer.
pub fn psql(stack: &DockerStack, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([&stack.env("DATABASE_URL"), "-w", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed");
    assert!(out.status.success(), "{sql}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The file store's record of secret `name` (every version with its stages).
pub fn record(stack: &DockerStack, name: &str) -> serde_json::Value {
    serde_json::from_slice(&stack.sandbox.read(&format!("secrets/{name}.json"))).unwrap()
}

/// The version of a record that has `stage` (`current`, `pending`, `previous`).
pub fn version_with(record: &serde_json::Value, stage: &str) -> Option<serde_json::Value> {
    record["versions"].as_array()?.iter().find(|v| v["stages"].as_array().unwrap().iter().any(|s| s == stage)).cloned()
}

/// A command to Redis as `user` with the password of `secret` in the file store; its answer.
pub fn redis(stack: &DockerStack, user: &str, secret: &str, command: &[&str]) -> String {
    let current = version_with(&record(stack, secret), "current").unwrap();
    let url = stack.env("REDIS_URL");
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/0").to_owned();
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "--tls", "--cacert", &stack.env("REDIS_CA_CERT")])
        .args(["--user", user, "--pass", current["value"].as_str().unwrap(), "--no-auth-warning"])
        .args(command)
        .output()
        .unwrap();
    text(&out).trim().to_owned()
}

/// Clients that read their credentials from the store before every operation, as a
/// well-behaved application does, on PostgreSQL and Redis until stopped.
pub struct Load {
    runtime: tokio::runtime::Runtime,
    running: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` clients, alternating PostgreSQL and Redis, each pausing `pause` between
    /// operations.
    pub fn start(stack: &DockerStack, workers: usize, pause: Duration) -> Load {
        use hardstack::profile::Service;
        Load::start_on(stack, &[Service::Postgres, Service::Redis], workers, pause)
    }

    /// `workers` clients, taking `services` in turn (PgBouncer: a new login through the pooler
    /// each time), each pausing `pause` between operations.
    pub fn start_on(
        stack: &DockerStack,
        services: &[hardstack::profile::Service],
        workers: usize,
        pause: Duration,
    ) -> Load {
        Load::start_reading(stack, services, &[], workers, pause)
    }

    /// As [`Load::start_on`], with PostgreSQL's replicas `replicas` (their node numbers) taken
    /// in turn after the services: an application login and a query on the replica each time.
    pub fn start_reading(
        stack: &DockerStack,
        services: &[hardstack::profile::Service],
        replicas: &[u8],
        workers: usize,
        pause: Duration,
    ) -> Load {
        let nodes: Vec<(hardstack::profile::Service, Option<u8>)> = services
            .iter()
            .map(|s| (*s, None))
            .chain(replicas.iter().map(|n| (hardstack::profile::Service::Postgres, Some(*n))))
            .collect();
        let (profile, dir) = stack.library();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let ops = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut clients = Vec::new();
        for worker in 0..workers {
            let (service, replica) = nodes[worker % nodes.len()];
            let (profile, dir, running, ops, errors) =
                (profile.clone(), dir.clone(), running.clone(), ops.clone(), errors.clone());
            clients.push(runtime.spawn(async move {
                while running.load(Ordering::SeqCst) {
                    let result: anyhow::Result<()> = async {
                        let store = hardstack::secrets::store::Store::open(&profile, &dir).await?;
                        let target = match replica {
                            Some(node) => hardstack::probe::replica_target(&profile, &dir, &store, node).await?,
                            None => hardstack::probe::app_target(&profile, &dir, &store, service).await?,
                        };
                        let target = target.unwrap();
                        hardstack::probe::probe(service, &target).await
                    }
                    .await;
                    ops.fetch_add(1, Ordering::SeqCst);
                    if let Err(err) = result {
                        let name = replica.map(|n| format!("{service}-{n}")).unwrap_or(service.to_string());
                        errors.lock().unwrap().push(format!("{name}: {err:#}"));
                    }
                    tokio::time::sleep(pause).await;
                }
            }));
        }
        Load { runtime, running, ops, errors, clients }
    }

    /// Forces `rounds` rotations of every credential a second apart while the clients run, then
    /// stops them: the operations done, and the failures.
    pub fn across_rotations(self, stack: &DockerStack, rounds: usize) -> (u64, Vec<String>) {
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_secs(1));
            let out = stack.cmd("rotate", &["--force", "--no-verify"]).output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
        std::thread::sleep(Duration::from_secs(1));
        self.stop()
    }

    /// Stops the clients: the operations done, and the failures.
    pub fn stop(self) -> (u64, Vec<String>) {
        self.running.store(false, Ordering::SeqCst);
        for client in self.clients {
            self.runtime.block_on(client).unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        (self.ops.load(Ordering::SeqCst), errors)
    }
}
