//! PgBouncer checks: an application login through the pooler over verify-full TLS reaches
//! PostgreSQL, and the pooler refuses plaintext, a certificate-less client where the profile
//! requires certificates, and its admin console to an application login.

use rustls::AlertDescription;

use super::postgres::{Login, connect, current_login};
use super::{CheckFuture, Context, Refusal, accepted, bounded, prepare, refused};
use crate::profile::Service;

/// PgBouncer refuses a client it will not serve with a protocol-violation error: `SSL required`
/// for plaintext, `not allowed` for the admin console (its src/client.c).
const POOLER_REFUSES: Refusal = Refusal::Sqlstate(&["08P01"]);

/// A login through the pooler as the first application user's current login.
fn login<'a>(context: &Context, name: &'a str, database: &'a str, tls: bool, cert: bool) -> anyhow::Result<Login<'a>> {
    let (_, password) = current_login(context, name)?;
    Ok(Login {
        via: Service::Pgbouncer,
        user: name,
        password: Some(password),
        database,
        tls: if tls { Some(context.tls_for(name, cert)?) } else { None },
        server_name: context.server_name(Service::Pgbouncer),
    })
}

/// Every PgBouncer check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    let Some(user) = context.users().first().cloned() else {
        return checks;
    };
    let mutual = context.mutual();
    let login_of = {
        let user = user.clone();
        move || current_login(context, &user.name).map(|(name, _)| name).unwrap_or_else(|_| user.name.clone())
    };
    let (name, database) = (login_of(), user.database.clone());
    checks.push(bounded("pgbouncer.tls_login".into(), async move {
        accepted("pgbouncer.tls_login", "an application login through PgBouncer over verify-full TLS", async {
            let session = connect(context, prepare(login(context, &name, &database, true, mutual))?).await?;
            let row = session.query_one("SELECT current_user::text, inet_server_port()", &[]).await?;
            let (role, port): (String, Option<i32>) = (row.get(0), row.get(1));
            session.close().await;
            Ok(format!("{name} reached PostgreSQL (port {}) as {role}", port.unwrap_or_default()))
        })
        .await
    }));
    let (name, database) = (login_of(), user.database.clone());
    checks.push(bounded("pgbouncer.plaintext_refused".into(), async move {
        refused("pgbouncer.plaintext_refused", "a plaintext connection to PgBouncer", POOLER_REFUSES, async {
            connect(context, prepare(login(context, &name, &database, false, false))?).await
        })
        .await
    }));
    let name = login_of();
    checks.push(bounded("pgbouncer.admin_console_refused".into(), async move {
        refused("pgbouncer.admin_console_refused", "the admin console to an application login", POOLER_REFUSES, async {
            connect(context, prepare(login(context, &name, "pgbouncer", true, mutual))?).await
        })
        .await
    }));
    let (name, database) = (login_of(), user.database.clone());
    checks.push(bounded("pgbouncer.no_client_cert_refused".into(), async move {
        if !mutual {
            return crate::report::Check::not_applicable(
                "pgbouncer.no_client_cert_refused",
                "the profile does not require client certificates",
            );
        }
        // client_tls_sslmode=verify-ca: the handshake requires a certificate (TLS 1.3 says so with
        // certificate_required, TLS 1.2 with handshake_failure).
        let refusal = Refusal::TlsAlert(&[AlertDescription::CertificateRequired, AlertDescription::HandshakeFailure]);
        refused(
            "pgbouncer.no_client_cert_refused",
            "a login through PgBouncer without a client certificate",
            refusal,
            async { connect(context, prepare(login(context, &name, &database, true, false))?).await },
        )
        .await
    }));
    checks
}
