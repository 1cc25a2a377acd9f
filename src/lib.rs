//! hardstack: a profile in, a hardened PostgreSQL + Redis + Qdrant stack out.
//!
//! Modules in reading order: the command line and settings, the profile model, the pure
//! generators (pki, secrets, containers, render, bundle), the stack directory and file
//! writing, then the commands that tie them together. See ARCHITECTURE.md.

pub mod cli;
pub mod settings;

pub mod profile;

pub mod bundle;
pub mod containers;
pub mod pki;
pub mod render;
pub mod secrets;

pub mod fsio;
pub mod stackdir;

pub mod probe;
pub mod runtime;

pub mod audit;
pub mod report;
pub mod verify;

pub mod rotate;

pub mod commands;
pub mod output;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs one invocation. Errors are printed by `main` with their whole context chain.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    probe::install_crypto_provider();
    match &cli.command {
        Command::Init(args) => commands::init::run(&cli.global, args),
        Command::Env(args) => commands::env::run(&cli.global, args),
        Command::Up(args) => commands::up::run(&cli.global, args),
        Command::Down(args) => commands::down::run(&cli.global, args),
        Command::Status => commands::status::run(&cli.global),
        Command::Audit(args) => commands::audit::run(&cli.global, args),
        Command::Verify => commands::verify::run(&cli.global),
        Command::Rotate(args) => commands::rotate::run(&cli.global, args),
    }
}
