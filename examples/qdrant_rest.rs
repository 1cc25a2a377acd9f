//! An application's Qdrant access: one pooled HTTPS client (reqwest) verified against the stack
//! CA; the API key `hardstack env` gives, asked again for each request (`send`), so a rotated
//! key is in use at once (Qdrant accepts the previous one as `alt_api_key` meanwhile); create a
//! collection, upsert, search, clean up, for `--seconds`.
//! Qdrant's gRPC port is off in hardstack's config (its TLS cannot verify client certificates),
//! so the REST API is the client interface.
//!
//!     HARDSTACK_DIR=stack cargo run --example qdrant_rest -- --seconds 30

mod common;

use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let credentials = common::credentials()?;
    let Some(base) = credentials.get("QDRANT_URL").cloned() else {
        println!("SKIPPED: this stack runs no qdrant (or the user has no Qdrant access)");
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let client_cert = credentials.get("QDRANT_CLIENT_CERT").zip(credentials.get("QDRANT_CLIENT_KEY"));
    let tls = common::tls_config(
        common::variable(&credentials, "QDRANT_CA_CERT")?,
        client_cert.map(|(c, k)| (c.as_str(), k.as_str())),
    )?;
    let client = reqwest::Client::builder().use_preconfigured_tls(tls).build()?;
    let collection = format!("{base}/collections/hardstack_example");
    let send = |request: reqwest::RequestBuilder| async {
        let credentials = common::credentials()?;
        let key = common::variable(&credentials, "QDRANT_API_KEY")?;
        let response = request.header("api-key", key).send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.text().await?);
        anyhow::Ok(response.json::<serde_json::Value>().await?)
    };
    let seconds = common::seconds()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let (mut operations, mut failures) = (0u64, Vec::new());
    let mut nearest = serde_json::Value::Null;
    loop {
        let round = async {
            send(client.put(&collection).json(&json!({"vectors": {"size": 3, "distance": "Cosine"}}))).await?;
            let points = json!({"points": [
                {"id": 1, "vector": [1.0, 0.0, 0.0]},
                {"id": 2, "vector": [0.0, 1.0, 0.0]},
                {"id": 3, "vector": [0.0, 0.0, 1.0]},
            ]});
            send(client.put(format!("{collection}/points?wait=true")).json(&points)).await?;
            let search = json!({"vector": [0.9, 0.1, 0.0], "limit": 1});
            let found = send(client.post(format!("{collection}/points/search")).json(&search)).await?;
            send(client.delete(&collection)).await?;
            anyhow::Ok(found["result"][0]["id"].clone())
        };
        operations += 1;
        match round.await {
            Ok(id) => nearest = id,
            Err(err) => failures.push(format!("{err:#}")),
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
    }
    println!("qdrant: nearest point {nearest}");
    Ok(common::finish(operations, &failures))
}
