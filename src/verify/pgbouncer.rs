//! PgBouncer checks: an application login through the pooler over verify-full TLS reaches
//! PostgreSQL, and the pooler refuses plaintext, a certificate-less client where the profile
//! requires certificates, and its admin console to an application login.

use anyhow::Context as _;
use rustls::AlertDescription;

use super::postgres::{Login, connect, current_login};
use super::{CheckFuture, Context, Refusal, accepted, bounded, prepare, refused};
use crate::probe::PgSession;
use crate::profile::Service;
use crate::report::Check;

/// PgBouncer refuses a client it will not serve with a protocol-violation error: `SSL required`
/// for plaintext, `not allowed` for the admin console (its src/client.c).
const POOLER_REFUSES: Refusal = Refusal::Sqlstate(&["08P01"]);

/// How an attempt through the pooler is made.
#[derive(Clone, Copy)]
struct Way {
    tls: bool,
    client_cert: bool,
}

/// A connection through the pooler as the first application user's current login (the login
/// alternates with rotation: its password is that login's) to `database` (its own when
/// `None`).
async fn through(context: &Context, database: Option<&str>, way: Way) -> anyhow::Result<PgSession> {
    let user = context.users().first().context("the profile has no application user")?;
    let (name, password) = prepare(current_login(context, &user.name))?;
    let tls = match way.tls {
        true => Some(prepare(context.tls_for(&name, way.client_cert))?),
        false => None,
    };
    let login = Login {
        via: Service::Pgbouncer,
        user: &name,
        password: Some(password),
        database: database.unwrap_or(&user.database),
        tls,
        server_name: context.server_name(Service::Pgbouncer),
    };
    connect(context, login).await
}

/// The first application user's current login through the pooler over verify-full TLS, and a
/// query that reaches PostgreSQL: what happened, or the error.
pub(super) async fn login_through(context: &Context) -> anyhow::Result<String> {
    let session = through(context, None, Way { tls: true, client_cert: context.mutual() }).await?;
    let row = session.query_one("SELECT session_user::text, current_user::text, inet_server_port()", &[]).await?;
    let (login, role, port): (String, String, Option<i32>) = (row.get(0), row.get(1), row.get(2));
    session.close().await;
    Ok(format!("{login} reached PostgreSQL (port {}) through PgBouncer as {role}", port.unwrap_or_default()))
}

/// Every PgBouncer check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    let mutual = context.mutual();
    checks.push(bounded("pgbouncer.tls_login".into(), async move {
        let what = "an application login through PgBouncer over verify-full TLS";
        accepted("pgbouncer.tls_login", what, login_through(context)).await
    }));
    checks.push(bounded("pgbouncer.plaintext_refused".into(), async move {
        let attempt = through(context, None, Way { tls: false, client_cert: false });
        refused("pgbouncer.plaintext_refused", "a plaintext connection to PgBouncer", POOLER_REFUSES, attempt).await
    }));
    checks.push(bounded("pgbouncer.admin_console_refused".into(), async move {
        let attempt = through(context, Some("pgbouncer"), Way { tls: true, client_cert: mutual });
        let what = "the admin console to an application login";
        refused("pgbouncer.admin_console_refused", what, POOLER_REFUSES, attempt).await
    }));
    checks.push(bounded("pgbouncer.no_client_cert_refused".into(), async move {
        let id = "pgbouncer.no_client_cert_refused";
        if !mutual {
            return Check::not_applicable(id, "the profile does not require client certificates");
        }
        // client_tls_sslmode=verify-ca: the handshake requires a certificate (TLS 1.3 says so with
        // certificate_required, TLS 1.2 with handshake_failure).
        let refusal = Refusal::TlsAlert(&[AlertDescription::CertificateRequired, AlertDescription::HandshakeFailure]);
        let attempt = through(context, None, Way { tls: true, client_cert: false });
        refused(id, "a login through PgBouncer without a client certificate", refusal, attempt).await
    }));
    checks
}
