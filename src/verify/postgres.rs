//! PostgreSQL checks: logins over verify-full TLS, and everything pg_hba.conf and role rights
//! must refuse.

use tokio_postgres::config::SslMode;

use rustls::AlertDescription;

use super::{CheckFuture, Context, Refusal, UNCOVERED_NAME, accepted, bounded, prepare, refused};
use crate::layout::{self, StackFile};
use crate::probe::{self, ClientTls, PgSession};
use crate::profile::Service;
use crate::report::Check;
use crate::secrets::Secret;

/// A connection attempt.
pub(super) struct Login<'a> {
    /// PostgreSQL itself, or PgBouncer in front of it.
    pub via: Service,
    pub user: &'a str,
    pub password: Option<Secret>,
    pub database: &'a str,
    /// `None`: plaintext (sslmode=disable).
    pub tls: Option<ClientTls>,
    pub server_name: String,
}

pub(super) async fn connect(context: &Context, login: Login<'_>) -> anyhow::Result<PgSession> {
    connect_at(context.addr(login.via), login).await
}

/// [`connect`] to `address` (a replica's).
pub(super) async fn connect_at(address: std::net::SocketAddr, login: Login<'_>) -> anyhow::Result<PgSession> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&login.server_name)
        .hostaddr(address.ip())
        .port(address.port())
        .user(login.user)
        .dbname(login.database)
        .application_name("hardstack verify")
        .connect_timeout(probe::CONNECT_TIMEOUT);
    if let Some(password) = &login.password {
        config.password(password.expose());
    }
    Ok(match login.tls {
        Some(tls) => {
            config.ssl_mode(SslMode::Require);
            let rustls = prepare(probe::rustls_config(&tls))?;
            let (client, connection) = config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(rustls)).await?;
            PgSession::spawn(client, connection)
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            PgSession::spawn(client, connection)
        }
    })
}

/// The current login of an application user and its password. The login alternates with
/// rotation, and a negative check must pair them right: a mismatched pair is refused for the
/// wrong reason and would hide an open door.
pub(super) fn current_login(context: &Context, user: &str) -> anyhow::Result<(String, Secret)> {
    let version = context.current(&layout::login_secret(Service::Postgres, user))?;
    Ok((version.username.clone().unwrap_or_else(|| user.to_owned()), version.value))
}

/// A login as an application user, over verify-full TLS.
async fn app_login(context: &Context, user: &str, database: &str, client_cert: bool) -> anyhow::Result<PgSession> {
    let (name, password) = prepare(current_login(context, user))?;
    let login = Login {
        via: Service::Postgres,
        user: &name,
        password: Some(password),
        database,
        tls: Some(prepare(context.tls_for(&name, client_cert))?),
        server_name: context.server_name(Service::Postgres),
    };
    connect(context, login).await
}

/// Runs `statement` in the session's default role (the owner role), then again after
/// `RESET ROLE` (the login itself, which anyone with the password can do). `Ok` when either
/// succeeds (and `undo` cleans up); the last refusal otherwise. Each statement is sent alone:
/// in one query string, ALTER SYSTEM would be refused for running in a transaction block,
/// which says nothing about the role's rights.
async fn as_owner_then_login(client: &tokio_postgres::Client, statement: &str, undo: &str) -> anyhow::Result<()> {
    let result = match client.batch_execute(statement).await {
        Ok(()) => Ok(()),
        Err(_) => {
            client.batch_execute("RESET ROLE").await?;
            client.batch_execute(statement).await
        }
    };
    match result {
        Ok(()) => {
            let _ = client.batch_execute(undo).await;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// No pg_hba.conf line lets the connection in, or a line rejects it.
pub(super) const HBA_REJECTS: Refusal = Refusal::Sqlstate(&["28000"]);
/// The role lacks the privilege.
const NO_PRIVILEGE: Refusal = Refusal::Sqlstate(&["42501"]);

/// Every PostgreSQL check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mutual = context.mutual();
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    for user in context.users() {
        let (name, database) = (user.name.clone(), user.database.clone());
        let id = format!("pg.login.{name}");
        checks.push(bounded(id.clone(), async move {
            accepted(&id, "TLS verify-full, login and SELECT 1", async {
                let client = app_login(context, &name, &database, mutual).await?;
                let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
                anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
                Ok(format!(
                    "{name}@{database} over TLS, verified as {}; SELECT 1 = 1",
                    context.server_name(Service::Postgres)
                ))
            })
            .await
        }));
        let (name, database) = (user.name.clone(), user.database.clone());
        let id = format!("pg.client_cert_login.{name}");
        checks.push(bounded(id.clone(), async move {
            accepted(&id, "login with the user's client certificate (CN = role)", async {
                let client = app_login(context, &name, &database, true).await?;
                client.query_one("SELECT 1", &[]).await?;
                Ok(format!("{name} presented {}", StackFile::ClientCert(name.clone()).path()))
            })
            .await
        }));
        let (name, database) = (user.name.clone(), user.database.clone());
        let id = format!("pg.create_role_refused.{name}");
        checks.push(bounded(id.clone(), async move {
            refused(
                &id,
                "CREATE ROLE by an application user (as its owner role and as its login)",
                NO_PRIVILEGE,
                async {
                    let client = app_login(context, &name, &database, mutual).await?;
                    as_owner_then_login(
                        &client,
                        "CREATE ROLE hardstack_verify_intruder",
                        "DROP ROLE hardstack_verify_intruder",
                    )
                    .await
                },
            )
            .await
        }));
        let (name, database) = (user.name.clone(), user.database.clone());
        let id = format!("pg.alter_system_refused.{name}");
        checks.push(bounded(id.clone(), async move {
            refused(
                &id,
                "ALTER SYSTEM by an application user (as its owner role and as its login)",
                NO_PRIVILEGE,
                async {
                    let client = app_login(context, &name, &database, mutual).await?;
                    as_owner_then_login(&client, "ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM RESET work_mem")
                        .await
                },
            )
            .await
        }));
        let name = user.name.clone();
        let other = context
            .users()
            .iter()
            .find(|u| u.name != user.name)
            .map(|u| u.database.clone())
            .unwrap_or_else(|| "postgres".into());
        let id = format!("pg.other_database_refused.{name}");
        checks.push(bounded(id.clone(), async move {
            // pg_hba.conf names each user's database; were a line to let the user in, its
            // missing CONNECT privilege would refuse it.
            let refusal = Refusal::Sqlstate(&["28000", "42501"]);
            refused(&id, &format!("connecting to database {other}"), refusal, async {
                app_login(context, &name, &other, mutual).await
            })
            .await
        }));
    }

    let first = context.users().first().map(|u| (u.name.clone(), u.database.clone())).unwrap_or_default();
    let (user, database) = first.clone();
    checks.push(bounded("pg.plaintext_refused".into(), async move {
        refused("pg.plaintext_refused", "a plaintext connection (sslmode=disable)", HBA_REJECTS, async {
            let (name, password) = prepare(current_login(context, &user))?;
            let login = Login {
                via: Service::Postgres,
                user: &name,
                password: Some(password),
                database: &database,
                tls: None,
                server_name: context.server_name(Service::Postgres),
            };
            connect(context, login).await
        })
        .await
    }));
    checks.push(context.started_early("pg.wrong_password_refused", wrong_password_refused(context)));
    let (user, database) = first.clone();
    checks.push(bounded("pg.no_password_refused".into(), async move {
        refused("pg.no_password_refused", "a login without a password", Refusal::PasswordDemanded, async {
            let tls = prepare(context.tls_for(&user, mutual))?;
            connect(
                context,
                Login {
                    via: Service::Postgres,
                    user: &user,
                    password: None,
                    database: &database,
                    tls: Some(tls),
                    server_name: context.server_name(Service::Postgres),
                },
            )
            .await
        })
        .await
    }));
    let (user, database) = first.clone();
    checks.push(bounded("pg.foreign_client_cert_refused".into(), async move {
        let refusal = Refusal::TlsAlert(&[AlertDescription::UnknownCA, AlertDescription::BadCertificate]);
        refused("pg.foreign_client_cert_refused", "a client certificate from another CA", refusal, async {
            let (name, password) = prepare(current_login(context, &user))?;
            let login = Login {
                via: Service::Postgres,
                user: &name,
                password: Some(password),
                database: &database,
                tls: Some(context.foreign_tls()),
                server_name: context.server_name(Service::Postgres),
            };
            let client = connect(context, login).await?;
            client.query_one("SELECT 1", &[]).await.map_err(anyhow::Error::from)
        })
        .await
    }));
    let (user, database) = first.clone();
    checks.push(bounded("pg.wrong_host_name_refused".into(), async move {
        refused(
            "pg.wrong_host_name_refused",
            &format!("a server name the certificate does not cover ({UNCOVERED_NAME})"),
            Refusal::NameNotCovered,
            async {
                let (name, password) = prepare(current_login(context, &user))?;
                let login = Login {
                    via: Service::Postgres,
                    user: &name,
                    password: Some(password),
                    database: &database,
                    tls: Some(prepare(context.tls_for(&name, mutual))?),
                    server_name: UNCOVERED_NAME.into(),
                };
                connect(context, login).await
            },
        )
        .await
    }));
    let (user, database) = first.clone();
    checks.push(bounded("pg.no_client_cert_refused".into(), async move {
        if !mutual {
            return crate::report::Check::not_applicable(
                "pg.no_client_cert_refused",
                "the profile does not require client certificates",
            );
        }
        // PostgreSQL asks for a certificate without requiring one in the handshake; the
        // clientcert=verify-full option of the pg_hba.conf line refuses the login.
        refused("pg.no_client_cert_refused", "a login without a client certificate", HBA_REJECTS, async {
            let client = app_login(context, &user, &database, false).await?;
            client.query_one("SELECT 1", &[]).await.map_err(anyhow::Error::from)
        })
        .await
    }));
    checks.push(bounded("pg.superuser_network_refused".into(), async move {
        let what = "the superuser over the network, with its real password";
        refused("pg.superuser_network_refused", what, HBA_REJECTS, async {
            let login = Login {
                via: Service::Postgres,
                user: layout::POSTGRES_SUPERUSER,
                password: Some(prepare(context.secret(layout::POSTGRES_SUPERUSER_SECRET))?),
                database: "postgres",
                tls: Some(prepare(context.tls_for(layout::ADMIN, true))?),
                server_name: context.server_name(Service::Postgres),
            };
            connect(context, login).await
        })
        .await
    }));
    checks
}

/// Server settings an application user may read (`SHOW`), for the checklist.
pub async fn show(context: &Context, settings: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    let user = context.users().first().ok_or_else(|| anyhow::anyhow!("no application user"))?;
    let client = app_login(context, &user.name, &user.database, context.mutual()).await?;
    let mut values = Vec::new();
    for setting in settings {
        let value: String = client.query_one(&format!("SHOW {setting}"), &[]).await?.get(0);
        values.push((setting.to_string(), value));
    }
    let limit: i32 =
        client.query_one("SELECT rolconnlimit FROM pg_roles WHERE rolname = session_user", &[]).await?.get(0);
    values.push(("rolconnlimit".into(), limit.to_string()));
    Ok(values)
}

/// The checks a refused password makes wait out the server's `auth_delay` (see
/// `Context::started_early`).
pub(super) fn waiting_out_auth_delay(context: &Context) -> Vec<CheckFuture<'_>> {
    vec![wrong_password_refused(context)]
}

fn wrong_password_refused(context: &Context) -> CheckFuture<'_> {
    let (user, database) = context.users().first().map(|u| (u.name.clone(), u.database.clone())).unwrap_or_default();
    bounded("pg.wrong_password_refused".into(), async move {
        refused("pg.wrong_password_refused", "a wrong password", Refusal::Sqlstate(&["28P01"]), async {
            let tls = prepare(context.tls_for(&user, context.mutual()))?;
            let login = Login {
                via: Service::Postgres,
                user: &user,
                password: Some(Secret::new("wrong-password-0000000000")),
                database: &database,
                tls: Some(tls),
                server_name: context.server_name(Service::Postgres),
            };
            connect(context, login).await
        })
        .await
    })
}

/// An admin session in the `postgres` database, for what only it may read: with the current
/// password, or the pending one when a rotation in progress already set it (the server then
/// accepts only that one).
pub(super) async fn admin_login(context: &Context) -> anyhow::Result<PgSession> {
    let name = layout::login_secret(Service::Postgres, layout::ADMIN);
    let login = |password| -> anyhow::Result<Login> {
        Ok(Login {
            via: Service::Postgres,
            user: layout::ADMIN,
            password: Some(password),
            database: "postgres",
            tls: Some(prepare(context.tls_for(layout::ADMIN, context.mutual()))?),
            server_name: context.server_name(Service::Postgres),
        })
    };
    let current = connect(context, login(prepare(context.secret(&name))?)?).await;
    match (current, context.secrets.postgres_pending.get(&name)) {
        (Err(_), Some(pending)) => connect(context, login(prepare(Ok(pending.value.clone()))?)?).await,
        (current, _) => current,
    }
}

/// A CIS PostgreSQL 17 item as the running server shows it: `query` (one text value, read as
/// admin in `postgres`) must satisfy `holds`.
fn cis<'a>(
    context: &'a Context,
    id: &'static str,
    what: &'static str,
    query: &'static str,
    holds: fn(&str) -> bool,
) -> CheckFuture<'a> {
    bounded(id.into(), async move {
        let value: anyhow::Result<String> = async {
            let value: String = context.admin().await?.query_one(query, &[]).await?.get(0);
            Ok(value)
        }
        .await;
        match value {
            Ok(value) if holds(&value) => Check::pass(id, what, format!("{query} -> {value}")),
            Ok(value) => Check::fail(id, format!("not so: {what}"), format!("{query} -> {value}")),
            Err(err) => Check::fail(id, "the server could not be asked", format!("{err:#}")),
        }
    })
}

/// The CIS PostgreSQL 17 items a running server shows (the rest are audit rules, or do not
/// apply to a container: docs/security.md).
pub fn cis_checks(context: &Context) -> Vec<CheckFuture<'_>> {
    use crate::audit::cis;
    let pgaudit = if context.profile.postgres.pgaudit {
        cis(
            context,
            "pg.cis.pgaudit",
            "pgAudit logs DDL and writes, and not the ROLE class, whose statements carry verifiers (3.2)",
            "SELECT current_setting('shared_preload_libraries') || ';' || current_setting('pgaudit.log')",
            |v| {
                let (libraries, classes) = v.split_once(';').unwrap_or((v, ""));
                let classes: Vec<String> = classes.split(',').map(|c| c.trim().to_lowercase()).collect();
                libraries.split(',').any(|m| m.trim() == "pgaudit")
                    && ["ddl", "write"].iter().all(|w| classes.iter().any(|c| c == w))
                    && !classes.iter().any(|c| c == "role" || c == "all")
            },
        )
    } else {
        let id = "pg.cis.pgaudit";
        Box::pin(async move {
            Check::not_applicable(id, "the profile does not enable pgAudit (postgres.pgaudit; the image must carry it)")
        })
    };
    let archive = if context.profile.backup.wal_archive {
        cis(
            context,
            "pg.wal_archive",
            "WAL is archived: archive_mode on, no failure since the last success, at most two finished segments waiting",
            "SELECT current_setting('archive_mode') || ';' || coalesce(failed_count = 0 OR last_failed_time < last_archived_time, false)::text || ';' || (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') FROM pg_stat_archiver",
            |v| {
                let fields: Vec<&str> = v.split(';').collect();
                matches!(fields[..], ["on", "true", waiting] if waiting.parse::<u32>().is_ok_and(|w| w <= 2))
            },
        )
    } else {
        let id = "pg.wal_archive";
        Box::pin(async move {
            Check::not_applicable(
                id,
                "the profile does not archive WAL (backup.wal_archive = false): no point-in-time recovery",
            )
        })
    };
    vec![
        pgaudit,
        archive,
        cis(
            context,
            "pg.cis.listen_addresses",
            "it listens on its own addresses, not every interface (5.2)",
            "SELECT current_setting('listen_addresses')",
            |v| !cis::listens_everywhere(v),
        ),
        cis(
            context,
            "pg.cis.ssl_ciphers",
            "TLS 1.2 suites are forward-secret AEAD ones, named one by one (6.10)",
            "SELECT current_setting('ssl_ciphers')",
            cis::forward_secret,
        ),
        cis(
            context,
            "pg.cis.verbose_logging",
            "errors are logged verbosely, and replication commands logged (3.1.22, 7.2)",
            "SELECT current_setting('log_error_verbosity') || ',' || current_setting('log_replication_commands')",
            |v| v.eq_ignore_ascii_case("verbose,on"),
        ),
        cis(
            context,
            "pg.cis.password_complexity",
            "a password-complexity module is loaded (5.6)",
            "SELECT current_setting('shared_preload_libraries')",
            |v| v.split(',').map(str::trim).any(|m| m == "passwordcheck" || m == "credcheck"),
        ),
        cis(
            context,
            "pg.cis.connection_limits",
            "every role has a connection limit (5.5)",
            "SELECT coalesce(string_agg(rolname, ','), '') FROM pg_roles WHERE rolconnlimit = -1 AND rolname !~ '^pg_'",
            str::is_empty,
        ),
        cis(
            context,
            "pg.cis.public_schema",
            "the public schema of postgres grants PUBLIC nothing (4.10)",
            "SELECT (has_schema_privilege('public', 'public', 'USAGE') OR has_schema_privilege('public', 'public', 'CREATE'))::text",
            |v| v == "false",
        ),
    ]
}
