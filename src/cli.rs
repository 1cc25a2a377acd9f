//! Command-line types (clap derive). Their doc comments are the help text. Parsing only:
//! values are validated and merged in `settings`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One command from a profile to a running, hardened, verified PostgreSQL + Redis + Qdrant
/// stack, and the same tool keeps its credentials fresh.
#[derive(Debug, Parser)]
#[command(
    name = "hardstack",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HARDSTACK_COMMIT"), ")"),
    about,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The stack directory.
    #[arg(long, global = true, default_value = "stack", env = "HARDSTACK_DIR")]
    pub dir: PathBuf,
    /// A shipped profile (dev, test, prod) or the path of a TOML profile. Default: the stack
    /// directory's hardstack.toml if there is one, else dev.
    #[arg(long, global = true, env = "HARDSTACK_PROFILE")]
    pub profile: Option<String>,
    /// Override one profile value, for example --set network.ports.postgres=5433. Repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The services to run, for example --services postgres,redis (sets stack.services).
    #[arg(long, global = true, value_delimiter = ',', value_name = "SERVICE,...")]
    pub services: Vec<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// How long a command that changes the stack (init, up, down, rotate, backup, restore) waits
    /// for another one on the same stack directory to finish.
    #[arg(long, global = true, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lock_wait: std::time::Duration,
}

/// Human tables, one JSON document, or (for `env`) dotenv lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines and tables for a person.
    Human,
    /// Exactly one JSON document on stdout, its `schema` naming it and its version; errors as
    /// one JSON document on stderr.
    Json,
    /// `env`'s variables as `NAME=value` lines (as `env --format dotenv`); `env` only.
    Env,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the CA and certificates, secrets, hardened configs and docker-compose.yml
    /// into the stack directory. Idempotent.
    Init(InitArgs),
    /// Print what an application needs to connect, for one application user. Prints secrets:
    /// it is meant for `eval "$(hardstack env)"` or a file of mode 0600.
    Env(EnvArgs),
    /// Open a client on a service of the stack as its application user (or --user, --admin),
    /// TLS verified against the stack CA: psql for postgres and pgbouncer, redis-cli for redis,
    /// curl for qdrant. Arguments after `--` go to the client, and standard input passes
    /// through: `echo 'select 1' | hardstack connect postgres -- -At`. No secret is put on a
    /// command line. When the client is not installed here, or the stack publishes nothing, it
    /// runs from the stack's own image on the stack network. Exits with the client's exit code.
    Connect(ConnectArgs),
    /// Run `init` if needed, then bring the stack up through the Docker Engine API, wait until
    /// every service is usable (verified TLS, login, a real query), and run `verify`. Idempotent.
    Up(UpArgs),
    /// Show what `up` would do, before anything is touched: files to write, and per service
    /// the least disruptive way to apply each change (reload, live command, in-place update,
    /// restart, recreate) and why. Changes nothing.
    Plan(PlanArgs),
    /// Stop and remove this stack's containers and network (by label); --volumes also its data.
    Down(DownArgs),
    /// Move PostgreSQL's primary role to a standby with no committed row lost: the primary is
    /// stopped cleanly, the standby is seen to have replayed its last WAL, is promoted, and the
    /// old primary follows it as a standby; then as `up` (env and connections.json name the new
    /// primary) and `verify`.
    Switchover(SwitchoverArgs),
    /// Each service's state, health, published port, certificate expiry and secret age; with
    /// --details its live numbers too (connections, pool clients, slowest statements, memory,
    /// collections).
    Status(StatusArgs),
    /// Prove the running stack is usable and closed: logins that must work, everything that
    /// must be refused, and the production checklist. Exit 1 when a check fails, 2 when the
    /// stack cannot be reached.
    Verify(VerifyArgs),
    /// Rotate passwords and certificates that are due, with no failed client request; verify
    /// after each rotation. Safe to run from cron at any frequency.
    Rotate(RotateArgs),
    /// Check a stack directory (or hand-edited config files in its layout) against the
    /// hardened baseline, without a running stack. Exit 1 when a rule fails.
    Audit(AuditArgs),
    /// Check what `up` needs before it runs: the engine, an image for each service, free ports,
    /// CPUs and memory for the limits, the clock against the certificates, the stack
    /// directory's modes. Exit 1 when a check fails, 2 when the engine cannot be reached.
    Doctor,
    /// Take a backup set of every service (PostgreSQL base backup with its WAL, Redis RDB,
    /// Qdrant snapshots) into the profile's backup directory, checked and complete only once
    /// its manifest is written; keep the profile's number of sets. With --test, restore the
    /// latest set into a throwaway stack and compare it with what was backed up.
    Backup(BackupArgs),
    /// Restore a backup set into a stack with no data (after `down --volumes`, or a new stack
    /// directory), to its end or to a point in time, then bring the stack up with its current
    /// credentials and verify it. A set that does not match its manifest is refused.
    Restore(RestoreArgs),
    /// The profile: `profile schema` prints its JSON Schema (generated from the model hardstack
    /// reads it with); `profile show [NAME] [--explain]` the effective profile (extends and
    /// --set applied), with --explain each key's meaning, allowed values and default.
    Profile(ProfileArgs),
    /// Print a completion script for a shell: `hardstack completions bash >
    /// /etc/bash_completion.d/hardstack`, or `source <(hardstack completions bash)`.
    Completions(CompletionsArgs),
}

/// Options of `profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

/// What `profile` prints.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// The JSON Schema of a resolved profile: every key, its type, meaning, allowed values and
    /// default.
    Schema,
    /// The effective profile as TOML: a shipped one (dev, test, prod), a file, or by default
    /// the stack directory's (else dev), with --set and --services applied.
    Show(ProfileShowArgs),
}

/// Options of `profile show`.
#[derive(Debug, Args)]
pub struct ProfileShowArgs {
    /// A shipped profile or the path of a TOML profile (as --profile).
    pub name: Option<String>,
    /// Comment every key with its meaning, allowed values and default.
    #[arg(long)]
    pub explain: bool,
}

/// Options of `connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The service to connect to.
    pub service: ConnectService,
    /// The application user to connect as. Default: the profile's first user.
    #[arg(long, conflicts_with = "admin")]
    pub user: Option<String>,
    /// Connect as hardstack's admin login (PostgreSQL's `postgres` database, PgBouncer's
    /// console, Redis's admin user, Qdrant's read-write key).
    #[arg(long)]
    pub admin: bool,
    /// Where the client runs: here, on the published port, or in a one-off container on the
    /// stack network. Default: here when the service is published and the client is installed.
    #[arg(long, value_enum)]
    pub from: Option<VantageArg>,
    /// Be the HTTPS client inside the stack network (what `--from network` runs for qdrant,
    /// whose image has no curl).
    #[arg(long, hide = true)]
    pub inside: bool,
    /// Arguments for the client (after `--`). For curl, an argument that starts with `/` is a
    /// path on the Qdrant server; without one, `/` is asked.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// The services `connect` opens a client on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConnectService {
    Postgres,
    Pgbouncer,
    Redis,
    Qdrant,
}

/// Options of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Do not take a backup: restore the latest set into a throwaway stack on the same engine,
    /// compare it with what was backed up (rows and a checksum per table, Redis keys and sampled
    /// values, Qdrant points), record the result and remove the throwaway stack.
    #[arg(long)]
    pub test: bool,
}

/// Options of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The set: its id (as `hardstack status` lists it), its directory, or `latest`.
    pub set: String,
    /// Recover PostgreSQL to this moment (UTC, RFC 3339: 2026-11-27T01:12:00Z) from the WAL
    /// archive; the other services are restored as the set holds them.
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// Remove the stack's containers and data volumes first when it holds data.
    #[arg(long)]
    pub force: bool,
    /// How long each service may take to become usable.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Options of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Rotate everything now, whatever its age.
    #[arg(long)]
    pub force: bool,
    /// Only these credentials (`postgres/app`, `redis/admin`, `certificate/postgres`) or
    /// services (`postgres`, `redis`, `certificate`). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Stop each rotation after this step; the next run resumes from there.
    #[arg(long, value_enum)]
    pub until: Option<UntilStep>,
    /// Keep running: a pass now, then one every --every, until SIGTERM (which lets the
    /// current step finish).
    #[arg(long)]
    pub daemon: bool,
    /// Time between passes with --daemon (default 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Do not run verify after each rotation.
    #[arg(long)]
    pub no_verify: bool,
}

/// The steps `rotate --until` can stop after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UntilStep {
    /// A pending version is in the store.
    Create,
    /// The server accepts the pending version.
    Set,
    /// A login with the pending version worked.
    Test,
}

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses the process's arguments, with `footer` (the exit codes) at the end of every help
/// screen. `--help` and `--version` come back as an error that is not one (`use_stderr` false).
pub fn parse(footer: &'static str) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = Cli::command().after_help(footer).mut_subcommands(|sub| sub.after_help(footer));
    Cli::from_arg_matches(&command.try_get_matches()?)
}

/// The completion script of hardstack's command line for `shell`.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hardstack", &mut script);
    script
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Where the checks connect from: the host (the published ports) or inside the stack's
    /// network (a short-lived container on it). Default: the host when the stack publishes its
    /// ports, its network otherwise.
    #[arg(long, value_enum)]
    pub from: Option<VantageArg>,
    /// Run the server checks here, inside the stack network, and print them (what the
    /// short-lived container of `--from network` runs).
    #[arg(long, hide = true)]
    pub inside: bool,
}

/// The vantage points of `verify --from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VantageArg {
    /// The published ports, from this machine.
    Host,
    /// Inside the stack network.
    Network,
}

/// Options of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The directory to audit. Default: --dir.
    pub path: Option<PathBuf>,
}

/// Options of `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Audit rules (by id, comma-separated) whose failure you accept in the files delivered to
    /// the servers; recorded in the stack directory and shown by plan, status and verify.
    /// `--accept none` clears what was accepted. Without it, the recorded list stays.
    #[arg(long, value_delimiter = ',', value_name = "RULE_ID,...")]
    pub accept: Option<Vec<String>>,
    /// A directory of templates that replace the embedded ones (as for init); recorded in the
    /// stack directory, which later runs render with until another --templates.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Overwrite foreign or edited files in the stack directory (as for init).
    #[arg(long)]
    pub force: bool,
    /// How long each service may take to become usable.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Stop once every service is usable, without running `verify`'s checks afterwards.
    #[arg(long)]
    pub no_verify: bool,
    /// Show what `up` would do (as `hardstack plan`), and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Drop the databases, owner roles and logins of users no longer in the profile, and their
    /// data. Without it, their logins are disabled and the rest is kept.
    #[arg(long)]
    pub prune: bool,
}

/// Options of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Audit rules (by id, comma-separated) whose failure you accept in the files delivered to
    /// the servers; recorded in the stack directory and shown by plan, status and verify.
    /// `--accept none` clears what was accepted. Without it, the recorded list stays.
    #[arg(long, value_delimiter = ',', value_name = "RULE_ID,...")]
    pub accept: Option<Vec<String>>,
    /// A directory of templates that replace the embedded ones (as for init and up).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Show what `up --prune` would drop.
    #[arg(long)]
    pub prune: bool,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also read each running service's live numbers: connections used and allowed and the
    /// slowest statements (PostgreSQL), clients active and waiting (PgBouncer), memory used
    /// against maxmemory and evictions (Redis), collections and points (Qdrant).
    #[arg(long)]
    pub details: bool,
    /// Refresh the details in place every INTERVAL (2s when none is given) until interrupted.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,
}

/// Options of `switchover`.
#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    /// The service whose primary moves: postgres.
    #[arg(value_parser = ["postgres"])]
    pub service: String,
    /// The node to promote (1 for `<stack>-postgres-1`, 0 for `<stack>-postgres`); default: the
    /// streaming standby that received the most.
    #[arg(long, value_name = "NODE")]
    pub to: Option<u8>,
    /// Stop once every service is usable again, without running `verify`'s checks afterwards.
    #[arg(long)]
    pub no_verify: bool,
}

/// Options of `down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the stack's volumes: its data is lost.
    #[arg(long)]
    pub volumes: bool,
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Audit rules (by id, comma-separated) whose failure you accept in the files delivered to
    /// the servers; recorded in the stack directory and shown by plan, status and verify.
    /// `--accept none` clears what was accepted. Without it, the recorded list stays.
    #[arg(long, value_delimiter = ',', value_name = "RULE_ID,...")]
    pub accept: Option<Vec<String>>,
    /// A directory of templates that replace the embedded ones file by file
    /// (postgres/postgresql.conf.tera, docker-compose.yml.tera, ...). Recorded in the stack
    /// directory (a copy under templates/, digests in inputs.json): rotate, restore and later
    /// runs render with them until another --templates.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Overwrite files in the stack directory that hardstack did not write or that were edited.
    #[arg(long)]
    pub force: bool,
    /// Also write systemd services and timers (systemd/) that run `hardstack rotate`,
    /// `hardstack backup` and `hardstack backup --test` on the profile's rotation.schedule,
    /// backup.schedule and backup.test_schedule.
    #[arg(long)]
    pub systemd: bool,
    /// Also render the stack for Kubernetes: a kustomize directory (kubernetes/) with the same
    /// posture, `kubectl apply -k stack/kubernetes`. The compose file is written either way.
    #[arg(long, value_enum, default_value = "compose")]
    pub target: Target,
}

/// What `init` renders the stack for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// docker-compose.yml (and `up`).
    Compose,
    /// docker-compose.yml and the kubernetes/ kustomize directory.
    Kubernetes,
}

/// Options of `env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The application user. Default: the profile's first user.
    #[arg(long)]
    pub user: Option<String>,
    /// How to print the variables.
    #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
    pub format: EnvFormat,
}

/// Formats of `env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export NAME='value'` lines for eval.
    Shell,
    /// `NAME=value` lines for a .env file.
    Dotenv,
    /// One JSON object.
    Json,
}
