//! A login over PostgreSQL's replication protocol, as far as the server's welcome: what verify
//! asks of the replicas' login (accepted with its client certificate, refused without).
//! tokio-postgres cannot ask for a replication connection (the `replication` startup
//! parameter), so the startup and SCRAM exchange are spoken here with postgres-protocol's
//! messages over rustls, as every other client of hardstack's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::{backend::Message, frontend};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::{CONNECT_TIMEOUT, ClientTls};
use crate::secrets::Secret;

/// The server's refusal: its SQLSTATE and message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (SQLSTATE {code})")]
pub struct ServerError {
    pub code: String,
    pub message: String,
}

/// Logs in as `user` over the replication protocol (`replication=true`), verify-full TLS
/// against `server_name`, with `password` if the server asks for one; `Ok` once the server
/// says it is ready for commands. A refusal is a [`ServerError`]. A connection the server
/// never answers (seen once in a while through the engine's port proxy right after a
/// switchover: accepted, then silent) is tried once more.
pub async fn login(
    address: SocketAddr,
    server_name: &str,
    tls: &ClientTls,
    user: &str,
    password: &Secret,
) -> anyhow::Result<()> {
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt(address, server_name, tls, user, password)).await {
        Ok(answered) => answered,
        Err(_) => tokio::time::timeout(CONNECT_TIMEOUT, attempt(address, server_name, tls, user, password))
            .await
            .context("no answer from the server, twice")?,
    }
}

async fn attempt(
    address: SocketAddr,
    server_name: &str,
    tls: &ClientTls,
    user: &str,
    password: &Secret,
) -> anyhow::Result<()> {
    let work = async {
        let mut tcp =
            tokio::net::TcpStream::connect(address).await.with_context(|| format!("connecting to {address}"))?;
        let mut out = BytesMut::new();
        frontend::ssl_request(&mut out);
        tcp.write_all(&out).await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        anyhow::ensure!(answer[0] == b'S', "the server refused TLS");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(super::rustls_config(tls)?));
        let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())?;
        let mut stream = connector.connect(name, tcp).await?;
        out.clear();
        let parameters = [("user", user), ("replication", "true"), ("application_name", "hardstack verify")];
        frontend::startup_message(parameters, &mut out)?;
        stream.write_all(&out).await?;
        let mut input = BytesMut::new();
        let mut scram: Option<ScramSha256> = None;
        loop {
            out.clear();
            match read(&mut stream, &mut input).await? {
                Message::AuthenticationSasl(body) => {
                    let offered: Vec<String> = body.mechanisms().map(|m| Ok(m.to_owned())).collect()?;
                    anyhow::ensure!(offered.iter().any(|m| m == SCRAM_SHA_256), "the server offers {offered:?}");
                    let exchange = ScramSha256::new(password.expose().as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut out)?;
                    scram = Some(exchange);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let exchange = scram.as_mut().context("SCRAM continued before it began")?;
                    exchange.update(body.data())?;
                    frontend::sasl_response(exchange.message(), &mut out)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    scram.as_mut().context("SCRAM ended before it began")?.finish(body.data())?;
                }
                Message::ReadyForQuery(_) => {
                    frontend::terminate(&mut out);
                    let _ = stream.write_all(&out).await;
                    return Ok(());
                }
                Message::ErrorResponse(body) => {
                    let (mut code, mut message) = (String::new(), String::new());
                    let mut fields = body.fields();
                    while let Some(field) = fields.next()? {
                        match field.type_() {
                            b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                            _ => {}
                        }
                    }
                    return Err(ServerError { code, message }.into());
                }
                Message::AuthenticationOk
                | Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                _ => anyhow::bail!("an unexpected message from the server"),
            }
            if !out.is_empty() {
                stream.write_all(&out).await?;
            }
        }
    };
    work.await
}

/// The next message from the server.
async fn read(stream: &mut (impl AsyncRead + Unpin), input: &mut BytesMut) -> anyhow::Result<Message> {
    loop {
        if let Some(message) = Message::parse(input)? {
            return Ok(message);
        }
        anyhow::ensure!(stream.read_buf(input).await? > 0, "the server closed the connection");
    }
}
