//! PostgreSQL's superuser over its container's socket: SQL for what only it may do (the init
//! SQL, reloads, roles, a backup's contents). Its password is a file inside the container and
//! never leaves it; the SQL goes through psql's standard input. Convergence and backup both use
//! it.

use anyhow::Context as _;

use crate::containers::ContainerSpec;
use crate::layout::{self, StackFile};
use crate::runtime::Engine;

/// Runs a SQL file of the container (the delivered init SQL: its verifiers stay out of any
/// command line) as PostgreSQL's superuser over the container's socket.
pub async fn run_file(engine: &Engine, spec: &ContainerSpec, path: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!path.contains('\''), "unexpected path {path}");
    psql(engine, spec, &format!("-f '{path}'")).await
}

/// Runs SQL as PostgreSQL's superuser over the container's socket (its password is a file in
/// the container; it never leaves it) and returns psql's unaligned output.
pub async fn sql(engine: &Engine, spec: &ContainerSpec, sql: &str) -> anyhow::Result<String> {
    psql(engine, spec, &format!("-f - <<'HARDSTACK_SQL'\n{sql}\nHARDSTACK_SQL")).await
}

/// psql as the superuser in the container with `arguments` (its password read from the
/// delivered file inside the container, never on a command line).
async fn psql(engine: &Engine, spec: &ContainerSpec, arguments: &str) -> anyhow::Result<String> {
    let password = spec
        .deliveries
        .iter()
        .find(|d| d.file == StackFile::SuperuserPassword)
        .context("PostgreSQL receives its superuser's password")?
        .container_path(spec);
    let script = format!(
        "PGPASSWORD=\"$(cat {password})\" psql -X -q -v ON_ERROR_STOP=1 -tA -h /var/run/postgresql -U {} -d postgres {arguments}",
        layout::POSTGRES_SUPERUSER
    );
    let command = vec!["/bin/sh".into(), "-c".into(), script];
    let ran = engine.exec(&spec.name, &spec.user, command).await?;
    anyhow::ensure!(ran.code == 0, "psql in {} exited {}: {}", spec.name, ran.code, ran.output.trim());
    Ok(ran.output)
}
