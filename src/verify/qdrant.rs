//! Qdrant checks over its REST API: the key opens it, and no key, a wrong key, a write with
//! the read-only key, plain HTTP, a foreign client certificate and an uncovered host name are
//! refused.

use std::net::SocketAddr;

use super::{CheckFuture, Context, UNCOVERED_NAME, accepted, bounded, refused};
use crate::layout;
use crate::probe::{self, ClientTls};
use crate::profile::Service;
use crate::report::Check;

fn client(context: &Context, tls: &ClientTls, name: &str) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(probe::rustls_config(tls)?)
        .resolve(name, SocketAddr::new(context.address, context.port(Service::Qdrant)))
        .timeout(probe::CONNECT_TIMEOUT)
        .build()?)
}

fn url(context: &Context, name: &str, path: &str) -> String {
    let host = if name.contains(':') { format!("[{name}]") } else { name.to_owned() };
    format!("https://{host}:{}{path}", context.port(Service::Qdrant))
}

/// A request that must succeed (2xx).
async fn expect_ok(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let response = request.send().await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "answered {status}");
    Ok(format!("answered {status}"))
}

/// Every Qdrant check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mutual = context.mutual();
    let name = context.server_name();
    let login = context.users().first().map(|u| u.name.clone()).unwrap_or_default();
    let tls = move || context.tls_for(&login, mutual);
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.login".into(), async move {
        accepted("qdrant.login", "HTTPS verified against the stack CA, the API key, GET /collections", async {
            let key = context.secret(layout::QDRANT_API_KEY)?;
            expect_ok(client(context, &t()?, &n)?.get(url(context, &n, "/collections")).header("api-key", key.expose()))
                .await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.no_key_refused".into(), async move {
        refused("qdrant.no_key_refused", "a request without a key", async {
            expect_ok(client(context, &t()?, &n)?.get(url(context, &n, "/collections"))).await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.wrong_key_refused".into(), async move {
        refused("qdrant.wrong_key_refused", "a wrong key", async {
            expect_ok(
                client(context, &t()?, &n)?
                    .get(url(context, &n, "/collections"))
                    .header("api-key", "wrong-key-00000000000000000000000"),
            )
            .await
        })
        .await
    }));
    let (n, t) = (name.clone(), tls.clone());
    checks.push(bounded("qdrant.read_only_write_refused".into(), async move {
        refused("qdrant.read_only_write_refused", "a write with the read-only key", async {
            let key = context.secret(layout::QDRANT_READ_ONLY_API_KEY)?;
            let body = serde_json::json!({"vectors": {"size": 2, "distance": "Cosine"}});
            expect_ok(
                client(context, &t()?, &n)?
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
        refused("qdrant.plaintext_refused", "plain HTTP", async {
            let key = context.secret(layout::QDRANT_API_KEY)?;
            let plain = reqwest::Client::builder().timeout(probe::CONNECT_TIMEOUT).build()?;
            let host = if n.contains(':') { format!("[{n}]") } else { n.clone() };
            expect_ok(
                plain
                    .get(format!("http://{host}:{}/collections", context.port(Service::Qdrant)))
                    .header("api-key", key.expose()),
            )
            .await
        })
        .await
    }));
    checks.push(bounded("qdrant.foreign_client_cert_refused".into(), async move {
        if !mutual {
            return Check::not_applicable(
                "qdrant.foreign_client_cert_refused",
                "the profile does not require client certificates, so Qdrant asks for none",
            );
        }
        refused("qdrant.foreign_client_cert_refused", "a client certificate from another CA", async {
            let key = context.secret(layout::QDRANT_API_KEY)?;
            expect_ok(
                client(context, &context.foreign_tls(), &name)?
                    .get(url(context, &name, "/collections"))
                    .header("api-key", key.expose()),
            )
            .await
        })
        .await
    }));
    let t = tls.clone();
    checks.push(bounded("qdrant.wrong_host_name_refused".into(), async move {
        refused(
            "qdrant.wrong_host_name_refused",
            &format!("a server name the certificate does not cover ({UNCOVERED_NAME})"),
            async { expect_ok(client(context, &t()?, UNCOVERED_NAME)?.get(url(context, UNCOVERED_NAME, "/"))).await },
        )
        .await
    }));
    checks
}
