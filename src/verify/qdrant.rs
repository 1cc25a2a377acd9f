//! Qdrant checks over its REST API: the key opens it, and no key, a wrong key, a write with
//! the read-only key, plain HTTP, a foreign client certificate and an uncovered host name are
//! refused.

use rustls::AlertDescription;

use super::refusal::HttpStatus;
use super::{
    CheckFuture, Context, Refusal, UNCOVERED_NAME, accepted, bounded, plaintext_exchange, prepare, refused,
    tls_exchange,
};
use crate::layout;
use crate::probe::{self, ClientTls};
use crate::profile::Service;
use crate::report::Check;

fn client(context: &Context, tls: &ClientTls, name: &str) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(probe::rustls_config(tls)?)
        .resolve(name, context.addr(Service::Qdrant))
        .timeout(probe::CONNECT_TIMEOUT)
        .build()?)
}

fn url(context: &Context, name: &str, path: &str) -> String {
    let host = if name.contains(':') { format!("[{name}]") } else { name.to_owned() };
    format!("https://{host}:{}{path}", context.port(Service::Qdrant))
}

/// A request that must succeed (2xx); any other status is an [`HttpStatus`] error.
async fn expect_ok(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpStatus(status.as_u16()).into());
    }
    Ok(format!("answered {status}"))
}

/// Qdrant refuses a request without a valid key.
const UNAUTHORIZED: Refusal = Refusal::Http(&[401]);

/// A GET request written by hand, for the checks below TLS or outside it.
fn raw_get(context: &Context, name: &str, path: &str) -> Vec<u8> {
    let host = if name.contains(':') { format!("[{name}]") } else { name.to_owned() };
    format!("GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\n\r\n", context.port(Service::Qdrant))
        .into_bytes()
}

/// Every Qdrant check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    // Behind its front, Qdrant answers only a certificate of the stack CA.
    let mutual = context.profile.demands_client_cert(Service::Qdrant);
    let name = context.server_name(Service::Qdrant);
    let login = context.users().first().map(|u| u.name.clone()).unwrap_or_default();
    let tls = move || prepare(context.tls_for(&login, mutual));
    let https = move |tls: ClientTls, name: &str| prepare(client(context, &tls, name));
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.login".into(), async move {
        accepted("qdrant.login", "HTTPS verified against the stack CA, the API key, GET /collections", async {
            let key = context.secret(layout::QDRANT_API_KEY)?;
            expect_ok(https(t()?, &n)?.get(url(context, &n, "/collections")).header("api-key", key.expose())).await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.no_key_refused".into(), async move {
        refused("qdrant.no_key_refused", "a request without a key", UNAUTHORIZED, async {
            expect_ok(https(t()?, &n)?.get(url(context, &n, "/collections"))).await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.wrong_key_refused".into(), async move {
        refused("qdrant.wrong_key_refused", "a wrong key", UNAUTHORIZED, async {
            expect_ok(
                https(t()?, &n)?
                    .get(url(context, &n, "/collections"))
                    .header("api-key", "wrong-key-00000000000000000000000"),
            )
            .await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.read_only_write_refused".into(), async move {
        refused("qdrant.read_only_write_refused", "a write with the read-only key", Refusal::Http(&[403]), async {
            let key = prepare(context.secret(layout::QDRANT_READ_ONLY_API_KEY))?;
            let body = serde_json::json!({"vectors": {"size": 2, "distance": "Cosine"}});
            expect_ok(
                https(t()?, &n)?
                    .put(url(context, &n, "/collections/hardstack_verify"))
                    .header("api-key", key.expose())
                    .json(&body),
            )
            .await
        })
        .await
    }));
    let n = name.clone();
    checks.push(bounded("qdrant.plaintext_refused".into(), async move {
        refused("qdrant.plaintext_refused", "plain HTTP", Refusal::NoPlaintextAnswer, async {
            plaintext_exchange(context, Service::Qdrant, &raw_get(context, &n, "/collections")).await
        })
        .await
    }));
    let n = name.clone();
    checks.push(bounded("qdrant.foreign_client_cert_refused".into(), async move {
        if !mutual {
            return Check::not_applicable(
                "qdrant.foreign_client_cert_refused",
                "the profile does not require client certificates and Qdrant has no front, so it asks for none",
            );
        }
        let refusal = Refusal::TlsAlert(&[AlertDescription::UnknownCA, AlertDescription::BadCertificate]);
        refused("qdrant.foreign_client_cert_refused", "a client certificate from another CA", refusal, async {
            let request = raw_get(context, &n, "/collections");
            tls_exchange(context, Service::Qdrant, &n, Ok(context.foreign_tls()), &request).await
        })
        .await
    }));
    let t = tls.clone();
    checks.push(bounded("qdrant.wrong_host_name_refused".into(), async move {
        refused(
            "qdrant.wrong_host_name_refused",
            &format!("a server name the certificate does not cover ({UNCOVERED_NAME})"),
            Refusal::NameNotCovered,
            async {
                let request = raw_get(context, UNCOVERED_NAME, "/");
                tls_exchange(context, Service::Qdrant, UNCOVERED_NAME, t(), &request).await
            },
        )
        .await
    }));
    checks
}
