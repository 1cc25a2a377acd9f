//! Redis checks: logins over TLS verified against the stack CA, and everything the TLS-only
//! listener and the ACL file must refuse.

use anyhow::Context as _;

use rustls::AlertDescription;

use super::{
    CheckFuture, Context, Refusal, UNCOVERED_NAME, accepted, bounded, plaintext_exchange, prepare, refused,
    tls_exchange,
};
use crate::layout::{self, StackFile};
use crate::probe::{self, ClientTls};
use crate::profile::Service;
use crate::report::Check;

fn client(context: &Context, credentials: Option<(&str, &str)>, tls: ClientTls) -> anyhow::Result<redis::Client> {
    let auth = credentials.map(|(user, password)| format!("{user}:{password}@")).unwrap_or_default();
    let url = format!("rediss://{auth}{}:{}/0", context.server_name(Service::Redis), context.port(Service::Redis));
    let client_tls = tls
        .client
        .map(|(cert, key)| redis::ClientTlsConfig { client_cert: cert, client_key: key.expose().as_bytes().to_vec() });
    redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls, root_cert: Some(tls.ca_pem) })
        .context("building the Redis client")
}

async fn connection(client: &redis::Client) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(tokio::time::timeout(probe::CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .context("timed out")??)
}

pub(super) async fn app_connection(
    context: &Context,
    user: &str,
    client_cert: bool,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let password = context.secret(&layout::login_secret(Service::Redis, user))?;
    connection(&client(context, Some((user, password.expose())), context.tls_for(user, client_cert)?)?).await
}

async fn ping(connection: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<String> {
    let pong: String = redis::cmd("PING").query_async(connection).await?;
    anyhow::ensure!(pong == "PONG", "PING answered {pong}");
    Ok(pong)
}

/// `ACL LIST` as admin: one line per user, as the server holds it.
pub(super) async fn acl_list(context: &Context) -> anyhow::Result<Vec<String>> {
    let password = context.secret(&layout::login_secret(Service::Redis, layout::ADMIN))?;
    let tls = context.tls_for(layout::ADMIN, context.mutual())?;
    let mut connection = connection(&client(context, Some((layout::ADMIN, password.expose())), tls)?).await?;
    Ok(redis::cmd("ACL").arg("LIST").query_async(&mut connection).await?)
}

/// The ACL refuses the command or key.
const NO_PERMISSION: Refusal = Refusal::Redis(&["NOPERM"]);

/// Every Redis check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mutual = context.mutual();
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    for user in context.users() {
        let (name, prefix) = (user.name.clone(), user.redis_keys.trim_end_matches('*').to_owned());
        let id = format!("redis.login.{name}");
        checks.push(bounded(id.clone(), async move {
            accepted(&id, "TLS verified against the stack CA, AUTH, PING, a write and a read", async {
                let mut connection = app_connection(context, &name, mutual).await?;
                ping(&mut connection).await?;
                let key = format!("{prefix}hardstack-verify");
                redis::cmd("SET").arg(&key).arg("ok").arg("EX").arg(60).query_async::<()>(&mut connection).await?;
                let value: String = redis::cmd("GET").arg(&key).query_async(&mut connection).await?;
                anyhow::ensure!(value == "ok", "GET returned {value}");
                Ok(format!("{name}: PONG, SET/GET {key}"))
            })
            .await
        }));
        let name = user.name.clone();
        let id = format!("redis.client_cert_login.{name}");
        checks.push(bounded(id.clone(), async move {
            accepted(&id, "login with the user's client certificate", async {
                let mut connection = app_connection(context, &name, true).await?;
                ping(&mut connection).await?;
                Ok(format!("{name} presented {}", StackFile::ClientCert(name.clone()).path()))
            })
            .await
        }));
        let name = user.name.clone();
        let id = format!("redis.admin_commands_refused.{name}");
        checks.push(bounded(id.clone(), async move {
            let what = "CONFIG, FLUSHALL and DEBUG by an application user";
            let mut connection = match app_connection(context, &name, mutual).await {
                Ok(connection) => connection,
                Err(err) => {
                    return Check::fail(&id, format!("the attempt at {what} could not be made"), format!("{err:#}"));
                }
            };
            let mut refusals = Vec::new();
            for (command, also) in [
                (vec!["CONFIG", "GET", "maxmemory"], None),
                (vec!["FLUSHALL"], None),
                // Redis refuses DEBUG before the ACL is consulted when enable-debug-command is no.
                (vec!["DEBUG", "SLEEP", "0"], Some(Refusal::RedisErr("DEBUG command not allowed"))),
            ] {
                let mut cmd = redis::cmd(command[0]);
                for arg in &command[1..] {
                    cmd.arg(*arg);
                }
                let err = match cmd.query_async::<redis::Value>(&mut connection).await {
                    Ok(_) => return Check::fail(&id, format!("{what}: {} was allowed", command[0]), command.join(" ")),
                    Err(err) => anyhow::Error::from(err),
                };
                if !(NO_PERMISSION.is_in(&err) || also.is_some_and(|r| r.is_in(&err))) {
                    return Check::fail(
                        &id,
                        format!("{what}: {} was not refused as expected", command[0]),
                        format!("expected {NO_PERMISSION}; got: {err:#}"),
                    );
                }
                refusals.push(format!("{}: {err}", command[0]));
            }
            Check::pass(&id, "CONFIG, FLUSHALL and DEBUG are refused to an application user", refusals.join("; "))
        }));
        let name = user.name.clone();
        let id = format!("redis.other_keys_refused.{name}");
        checks.push(bounded(id.clone(), async move {
            refused(&id, "a key outside the user's pattern", NO_PERMISSION, async {
                let mut connection = app_connection(context, &name, mutual).await?;
                redis::cmd("GET")
                    .arg("hardstack-verify-not-yours")
                    .query_async::<Option<String>>(&mut connection)
                    .await
                    .map_err(anyhow::Error::from)
            })
            .await
        }));
    }

    let user = context.users().first().map(|u| u.name.clone()).unwrap_or_default();
    checks.push(bounded("redis.plaintext_refused".into(), async move {
        refused("redis.plaintext_refused", "a plaintext connection", Refusal::NoPlaintextAnswer, async {
            plaintext_exchange(context, Service::Redis, b"PING\r\n").await
        })
        .await
    }));
    let name = user.clone();
    checks.push(bounded("redis.wrong_password_refused".into(), async move {
        // AUTH sent on its own: the client library reports any failed AUTH at connection set-up
        // alike, and only the server's own answer tells a wrong password apart.
        refused("redis.wrong_password_refused", "a wrong password", Refusal::Redis(&["WRONGPASS"]), async {
            let client = prepare(context.tls_for(&name, mutual).and_then(|tls| client(context, None, tls)))?;
            let mut connection = connection(&client).await?;
            redis::cmd("AUTH")
                .arg(&name)
                .arg("wrong-password-0000000000")
                .query_async::<()>(&mut connection)
                .await
                .map_err(anyhow::Error::from)
        })
        .await
    }));
    let name = user.clone();
    checks.push(bounded("redis.no_password_refused".into(), async move {
        refused("redis.no_password_refused", "a command without AUTH", Refusal::Redis(&["NOAUTH"]), async {
            let client = prepare(context.tls_for(&name, mutual).and_then(|tls| client(context, None, tls)))?;
            let mut connection = connection(&client).await?;
            ping(&mut connection).await
        })
        .await
    }));
    let name = user.clone();
    checks.push(bounded("redis.default_user_refused".into(), async move {
        let id = "redis.default_user_refused";
        let attempt = refused(id, "the default user", Refusal::Redis(&["WRONGPASS"]), async {
            let client = prepare(context.tls_for(&name, mutual).and_then(|tls| client(context, None, tls)))?;
            let mut connection = connection(&client).await?;
            redis::cmd("AUTH").arg("default").arg("anything").query_async::<()>(&mut connection).await?;
            ping(&mut connection).await
        })
        .await;
        if attempt.verdict != crate::report::Verdict::Pass {
            return attempt;
        }
        // A refused guess is not enough: the default user must be off, whatever its password.
        let flags: anyhow::Result<Vec<String>> = async {
            let password = context.secret(&layout::login_secret(Service::Redis, layout::ADMIN))?;
            let mut connection = connection(&client(
                context,
                Some((layout::ADMIN, password.expose())),
                context.tls_for(layout::ADMIN, mutual)?,
            )?)
            .await?;
            // ACL GETUSER answers field, value, field, value...; "flags" is a list of words.
            let fields: Vec<redis::Value> =
                redis::cmd("ACL").arg("GETUSER").arg("default").query_async(&mut connection).await?;
            let position = fields.iter().position(|v| redis::from_redis_value::<String>(v).is_ok_and(|f| f == "flags"));
            let flags = position.and_then(|i| fields.get(i + 1)).context("ACL GETUSER has no flags")?;
            Ok(redis::from_redis_value::<Vec<String>>(flags)?)
        }
        .await;
        match flags {
            Ok(flags) if flags.iter().any(|f| f == "off") => Check::pass(
                id,
                "the default user is off",
                format!("{}; ACL GETUSER default flags: {}", attempt.evidence, flags.join(" ")),
            ),
            Ok(flags) => {
                Check::fail(id, "the default user is on", format!("ACL GETUSER default flags: {}", flags.join(" ")))
            }
            Err(err) => Check::fail(id, "could not read the default user's flags as admin", format!("{err:#}")),
        }
    }));
    checks.push(bounded("redis.foreign_client_cert_refused".into(), async move {
        let refusal = Refusal::TlsAlert(&[AlertDescription::UnknownCA, AlertDescription::BadCertificate]);
        refused("redis.foreign_client_cert_refused", "a client certificate from another CA", refusal, async {
            tls_exchange(
                context,
                Service::Redis,
                &context.server_name(Service::Redis),
                Ok(context.foreign_tls()),
                b"PING\r\n",
            )
            .await
        })
        .await
    }));
    let name = user.clone();
    checks.push(bounded("redis.wrong_host_name_refused".into(), async move {
        refused(
            "redis.wrong_host_name_refused",
            &format!("a server name the certificate does not cover ({UNCOVERED_NAME})"),
            Refusal::NameNotCovered,
            async {
                tls_exchange(context, Service::Redis, UNCOVERED_NAME, context.tls_for(&name, mutual), b"PING\r\n").await
            },
        )
        .await
    }));
    checks.push(bounded("redis.no_client_cert_refused".into(), async move {
        if !mutual {
            return Check::not_applicable(
                "redis.no_client_cert_refused",
                "the profile does not require client certificates",
            );
        }
        // tls-auth-clients yes: the handshake requires a certificate (TLS 1.3 says so with
        // certificate_required, TLS 1.2 with handshake_failure).
        let refusal = Refusal::TlsAlert(&[AlertDescription::CertificateRequired, AlertDescription::HandshakeFailure]);
        refused("redis.no_client_cert_refused", "a connection without a client certificate", refusal, async {
            tls_exchange(
                context,
                Service::Redis,
                &context.server_name(Service::Redis),
                context.tls_for(&user, false),
                b"PING\r\n",
            )
            .await
        })
        .await
    }));
    checks
}
