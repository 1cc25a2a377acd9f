//! The Qdrant front's checks, over REST and gRPC: an application user's own key opens both;
//! no key, an unknown key and Qdrant's own key (which no application holds) are refused with
//! 401 / UNAUTHENTICATED; a read-only user's write with 403 / PERMISSION_DENIED (from Qdrant,
//! which the front hands the read-only key); plain HTTP and a foreign client certificate are
//! refused as on the other services.

use rustls::AlertDescription;

use super::refusal::{GrpcStatus, HttpStatus};
use super::{CheckFuture, Context, Refusal, accepted, bounded, plaintext_exchange, prepare, refused, tls_exchange};
use crate::layout;
use crate::probe::{self, ClientTls};
use crate::profile::{QdrantAccess, Service};
use crate::report::Check;

const FRONT: Service = Service::QdrantFront;
const UNAUTHORIZED: Refusal = Refusal::Http(&[401]);
const UNAUTHENTICATED: Refusal = Refusal::Grpc(&[16]);
/// A collection name no application uses: a refused write never creates it.
const PROBE_COLLECTION: &str = "hardstack_verify";

/// Which of the front's two ports a request goes to.
#[derive(Clone, Copy)]
enum Port {
    Rest,
    Grpc,
}

fn address(context: &Context, port: Port) -> std::net::SocketAddr {
    let rest = context.addr(FRONT);
    match port {
        Port::Rest => rest,
        Port::Grpc => match context.vantage {
            super::Vantage::Host => std::net::SocketAddr::new(rest.ip(), context.profile.network.ports.qdrant_grpc),
            super::Vantage::Network => std::net::SocketAddr::new(rest.ip(), crate::endpoint::QDRANT_GRPC_PORT),
        },
    }
}

fn client(context: &Context, tls: &ClientTls, port: Port) -> anyhow::Result<reqwest::Client> {
    let name = context.server_name(FRONT);
    let mut config = probe::rustls_config(tls)?;
    let builder = reqwest::Client::builder().resolve(&name, address(context, port)).timeout(probe::CONNECT_TIMEOUT);
    Ok(match port {
        Port::Rest => builder.use_preconfigured_tls(config).build()?,
        Port::Grpc => {
            config.alpn_protocols = vec![b"h2".to_vec()];
            builder.use_preconfigured_tls(config).http2_prior_knowledge().build()?
        }
    })
}

fn url(context: &Context, port: Port, path: &str) -> String {
    let name = context.server_name(FRONT);
    let host = if name.contains(':') { format!("[{name}]") } else { name };
    format!("https://{host}:{}{path}", address(context, port).port())
}

/// A REST request that must succeed; any other status is an [`HttpStatus`] error.
async fn rest(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpStatus(status.as_u16()).into());
    }
    Ok(format!("answered {status}"))
}

/// A unary gRPC call with one message; a status other than OK is a [`GrpcStatus`] error. A
/// refusal comes as a trailers-only answer (the status in the headers); an answer carries a
/// message.
pub(super) async fn grpc(
    client: reqwest::Client,
    url: String,
    key: Option<&str>,
    message: &[u8],
) -> anyhow::Result<String> {
    let mut body = vec![0u8];
    body.extend((message.len() as u32).to_be_bytes());
    body.extend(message);
    let mut request = client.post(url).header("content-type", "application/grpc").header("te", "trailers").body(body);
    if let Some(key) = key {
        request = request.header("api-key", key);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpStatus(status.as_u16()).into());
    }
    if let Some(code) = response.headers().get("grpc-status") {
        let code: u32 = code.to_str()?.parse()?;
        if code != 0 {
            return Err(GrpcStatus(code).into());
        }
    }
    let answer = response.bytes().await?;
    anyhow::ensure!(answer.len() >= 5, "the answer carries no gRPC message");
    Ok(format!("answered a {}-byte message", answer.len() - 5))
}

/// A `CreateCollection` message naming only the collection (field 1).
fn create_collection(name: &str) -> Vec<u8> {
    let mut message = vec![0x0a, name.len() as u8];
    message.extend(name.as_bytes());
    message
}

/// A key that is no user's.
const UNKNOWN_KEY: &str = "unknown-key-0000000000000000000000000000";

/// Every check of the front.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mutual = context.mutual();
    let users: Vec<_> = layout::front_key_users(&context.profile).cloned().collect();
    let writer = users.iter().find(|u| u.qdrant == QdrantAccess::ReadWrite).or(users.first()).cloned();
    let reader = users.iter().find(|u| u.qdrant == QdrantAccess::ReadOnly).cloned();
    let login = writer.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let tls = move || prepare(context.tls_for(&login, mutual));
    let key_of = |user: &crate::profile::AppUser| prepare(context.secret(&layout::login_secret(FRONT, &user.name)));
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();

    let (t, user) = (tls.clone(), writer.clone());
    checks.push(bounded("front.login".into(), async move {
        accepted("front.login", "REST through the front with the user's own key, GET /collections", async {
            let key = key_of(user.as_ref().ok_or_else(|| anyhow::anyhow!("no user has Qdrant access"))?)?;
            rest(
                prepare(client(context, &t()?, Port::Rest))?
                    .get(url(context, Port::Rest, "/collections"))
                    .header("api-key", key.expose()),
            )
            .await
        })
        .await
    }));
    let (t, user) = (tls.clone(), writer.clone());
    checks.push(bounded("front.grpc_login".into(), async move {
        accepted("front.grpc_login", "gRPC through the front with the user's own key, Collections/List", async {
            let key = key_of(user.as_ref().ok_or_else(|| anyhow::anyhow!("no user has Qdrant access"))?)?;
            let client = prepare(client(context, &t()?, Port::Grpc))?;
            grpc(client, url(context, Port::Grpc, "/qdrant.Collections/List"), Some(key.expose()), &[]).await
        })
        .await
    }));
    for (id, what, key) in [
        ("front.no_key_refused", "a REST request without a key", None),
        ("front.unknown_key_refused", "a REST request with a key that is no user's", Some(UNKNOWN_KEY)),
        ("front.internal_key_refused", "a REST request with Qdrant's own key", Some("")),
    ] {
        let t = tls.clone();
        checks.push(bounded(id.into(), async move {
            refused(id, what, UNAUTHORIZED, async {
                let mut request =
                    prepare(client(context, &t()?, Port::Rest))?.get(url(context, Port::Rest, "/collections"));
                let internal;
                match key {
                    Some("") => {
                        internal = prepare(context.secret(layout::QDRANT_API_KEY))?;
                        request = request.header("api-key", internal.expose());
                    }
                    Some(key) => request = request.header("api-key", key),
                    None => {}
                }
                rest(request).await
            })
            .await
        }));
    }
    for (id, what, key) in [
        ("front.grpc_no_key_refused", "a gRPC call without a key", None),
        ("front.grpc_unknown_key_refused", "a gRPC call with a key that is no user's", Some(UNKNOWN_KEY)),
    ] {
        let t = tls.clone();
        checks.push(bounded(id.into(), async move {
            refused(id, what, UNAUTHENTICATED, async {
                let client = prepare(client(context, &t()?, Port::Grpc))?;
                grpc(client, url(context, Port::Grpc, "/qdrant.Collections/List"), key, &[]).await
            })
            .await
        }));
    }
    let (t, user) = (tls.clone(), reader.clone());
    checks.push(bounded("front.read_only_write_refused".into(), async move {
        let Some(user) = user else {
            return Check::not_applicable("front.read_only_write_refused", "no user has read-only Qdrant access");
        };
        refused(
            "front.read_only_write_refused",
            "a REST write with a read-only user's key",
            Refusal::Http(&[403]),
            async {
                let key = key_of(&user)?;
                let body = serde_json::json!({"vectors": {"size": 2, "distance": "Cosine"}});
                let path = format!("/collections/{PROBE_COLLECTION}");
                rest(
                    prepare(client(context, &t()?, Port::Rest))?
                        .put(url(context, Port::Rest, &path))
                        .header("api-key", key.expose())
                        .json(&body),
                )
                .await
            },
        )
        .await
    }));
    let (t, user) = (tls.clone(), reader);
    checks.push(bounded("front.grpc_read_only_write_refused".into(), async move {
        let Some(user) = user else {
            return Check::not_applicable("front.grpc_read_only_write_refused", "no user has read-only Qdrant access");
        };
        refused(
            "front.grpc_read_only_write_refused",
            "a gRPC write with a read-only user's key",
            Refusal::Grpc(&[7]),
            async {
                let key = key_of(&user)?;
                let client = prepare(client(context, &t()?, Port::Grpc))?;
                grpc(
                    client,
                    url(context, Port::Grpc, "/qdrant.Collections/Create"),
                    Some(key.expose()),
                    &create_collection(PROBE_COLLECTION),
                )
                .await
            },
        )
        .await
    }));
    checks.push(bounded("front.plaintext_refused".into(), async move {
        refused("front.plaintext_refused", "plain HTTP", Refusal::NoPlaintextAnswer, async {
            let request = format!(
                "GET /collections HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                context.server_name(FRONT)
            );
            plaintext_exchange(context, FRONT, request.as_bytes()).await
        })
        .await
    }));
    checks.push(bounded("front.foreign_client_cert_refused".into(), async move {
        if !mutual {
            return Check::not_applicable(
                "front.foreign_client_cert_refused",
                "the profile does not require client certificates, so the front asks for none",
            );
        }
        let refusal = Refusal::TlsAlert(&[AlertDescription::UnknownCA, AlertDescription::BadCertificate]);
        refused("front.foreign_client_cert_refused", "a client certificate from another CA", refusal, async {
            let name = context.server_name(FRONT);
            let request = format!("GET /collections HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
            tls_exchange(context, FRONT, &name, Ok(context.foreign_tls()), request.as_bytes()).await
        })
        .await
    }));
    checks
}
