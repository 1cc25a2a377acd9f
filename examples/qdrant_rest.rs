//! An application's Qdrant access: one pooled HTTPS client (reqwest) verified against the stack
//! CA, the API key read from the secret store for each request (so a rotated key is in use at
//! once; Qdrant accepts the previous one as `alt_api_key` meanwhile); create a collection,
//! upsert, search, clean up.
//! Qdrant's gRPC port is off in hardstack's config (its TLS cannot verify client certificates),
//! so the REST API is the client interface.
//!
//!     cargo run --example qdrant_rest -- stack

mod common;

use anyhow::Context as _;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, entry) = common::connection("app")?;
    let q = &entry["qdrant"];
    if q.is_null() {
        println!("SKIPPED: this stack runs no qdrant");
        return Ok(());
    }
    let client = reqwest::Client::builder().use_preconfigured_tls(common::tls_config(&dir, q, "ca", "app")?).build()?;
    let base = q["url"].as_str().context("url")?;
    let collection = format!("{base}/collections/hardstack_example");
    let send = |request: reqwest::RequestBuilder| async {
        let key = common::resolve_secret(&dir, &q["api_key"])?;
        let response = request.header("api-key", key).send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.text().await?);
        anyhow::Ok(response.json::<serde_json::Value>().await?)
    };
    send(client.put(&collection).json(&json!({"vectors": {"size": 3, "distance": "Cosine"}}))).await?;
    let points = json!({"points": [
        {"id": 1, "vector": [1.0, 0.0, 0.0]},
        {"id": 2, "vector": [0.0, 1.0, 0.0]},
        {"id": 3, "vector": [0.0, 0.0, 1.0]},
    ]});
    send(client.put(format!("{collection}/points?wait=true")).json(&points)).await?;
    let found =
        send(client.post(format!("{collection}/points/search")).json(&json!({"vector": [0.9, 0.1, 0.0], "limit": 1})))
            .await?;
    send(client.delete(&collection)).await?;
    println!("qdrant: nearest point {}", found["result"][0]["id"]);
    Ok(())
}
