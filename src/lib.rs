//! hardstack: a profile in, a hardened PostgreSQL + Redis + Qdrant stack out.
//!
//! Modules in reading order: the command line and settings, the profile model, the pure
//! generators (pki, secrets, containers, render, bundle), the stack directory and file
//! writing, then the commands that tie them together. See ARCHITECTURE.md.

pub mod cli;
pub mod settings;

pub mod endpoint;
pub mod error;
pub mod layout;
pub mod profile;

pub mod bundle;
pub mod containers;
pub mod kubernetes;
pub mod node;
pub mod peers;
pub mod pki;
pub mod render;
pub mod replica;
pub mod secrets;
pub mod sentinel;

pub mod fsio;
pub mod identity;
pub mod inputs;
pub mod lock;
pub mod stackdir;
pub mod superuser;
pub mod topology;

pub mod preflight;
pub mod probe;
pub mod runtime;

pub mod audit;
pub mod report;
pub mod retry;
pub mod verify;

pub mod live;

pub mod backup;
pub mod converge;
pub mod rotate;

pub mod commands;
pub mod output;

use std::process::ExitCode;

use anyhow::Context as _;

use cli::{Cli, Command};

/// Runs one invocation on the process's one async runtime. Errors are printed by `main` with
/// their whole context chain.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    probe::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let global = &cli.global;
    commands::check_usage(global, &cli.command)?;
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Init(args) => commands::init::run(global, args).await,
            Command::Env(args) => commands::env::run(global, args).await,
            Command::Up(args) => commands::up::run(global, args).await,
            Command::Plan(args) => commands::plan::run(global, args).await,
            Command::Down(args) => commands::down::run(global, args).await,
            Command::Switchover(args) => commands::switchover::run(global, args).await,
            Command::Status(args) => commands::status::run(global, args).await,
            Command::Doctor => commands::doctor::run(global).await,
            Command::Backup(args) => commands::backup::run(global, args).await,
            Command::Restore(args) => commands::restore::run(global, args).await,
            Command::Audit(args) => commands::audit::run(global, args),
            Command::Verify(args) => commands::verify::run(global, args).await,
            Command::Rotate(args) => commands::rotate::run(global, args).await,
            Command::Completions(args) => commands::completions(global, args),
            Command::Connect(args) => commands::connect::run(global, args).await,
            Command::Profile(args) => commands::profile::run(global, args).await,
        }
    });
    // A read of standard input still blocked (a client that ended before its input did) is
    // not waited for.
    runtime.shutdown_background();
    result
}
