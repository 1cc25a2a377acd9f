//! Qdrant over gRPC with the official Rust client, `qdrant-client`, through the stack's front
//! (`qdrant-front`): the user's own key from `hardstack env`, TLS verified against the stack CA.
//!
//! qdrant-client's builder (`Qdrant::from_url`) trusts the platform's certificate store and
//! cannot present a client certificate (the client's issue #272). So: without a client
//! certificate (dev, test), the builder, with `SSL_CERT_FILE` naming the stack CA for this
//! process (tonic's native roots read it); where the stack requires one (prod), the client's
//! own gRPC services (`collections_client`, `points_client`) over a tonic channel that trusts
//! the stack CA and presents the user's certificate.
//!
//!     HARDSTACK_DIR=stack cargo run --example qdrant_grpc
//!
//! Creates the collection `examples_grpc` if it is missing, upserts five points and searches;
//! ends with `N points found, nearest ID`.

mod common;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::collections_client::CollectionsClient;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::points_client::PointsClient;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointStruct, QueryPointsBuilder, ScoredPoint, UpsertPointsBuilder,
    VectorParamsBuilder,
};

const COLLECTION: &str = "examples_grpc";

fn main() -> anyhow::Result<std::process::ExitCode> {
    let credentials = common::credentials()?;
    let Some(url) = credentials.get("QDRANT_GRPC_URL").cloned() else {
        println!("SKIPPED: this stack has no Qdrant front (gRPC is served by qdrant-front)");
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let key = common::variable(&credentials, "QDRANT_API_KEY")?.to_owned();
    let ca = common::variable(&credentials, "QDRANT_CA_CERT")?.to_owned();
    let client_cert = credentials.get("QDRANT_CLIENT_CERT").cloned().zip(credentials.get("QDRANT_CLIENT_KEY").cloned());
    if client_cert.is_none() {
        // SAFETY: no other thread runs yet; the runtime is built below.
        unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
    }
    let points: Vec<PointStruct> =
        (1..=5u64).map(|i| PointStruct::new(i, vec![i as f32, 1.0], [("n", (i as i64).into())])).collect();
    let create = CreateCollectionBuilder::new(COLLECTION).vectors_config(VectorParamsBuilder::new(2, Distance::Cosine));
    let upsert = UpsertPointsBuilder::new(COLLECTION, points).wait(true);
    let query = QueryPointsBuilder::new(COLLECTION).query(vec![5.0, 1.0]).limit(3);
    let found = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        match client_cert {
            None => {
                let client = Qdrant::from_url(&url).api_key(key).build()?;
                if !client.collection_exists(COLLECTION).await? {
                    client.create_collection(create).await?;
                }
                client.upsert_points(upsert).await?;
                anyhow::Ok(client.query(query).await?.result)
            }
            Some((cert, private_key)) => {
                let read = |path: &str| std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"));
                let tls = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(read(&ca)?))
                    .identity(tonic::transport::Identity::from_pem(read(&cert)?, read(&private_key)?));
                let channel = tonic::transport::Channel::from_shared(url)?.tls_config(tls)?.connect().await?;
                let key: tonic::metadata::MetadataValue<_> = key.parse()?;
                // The signature is tonic's (an interceptor's error is a `Status`).
                #[allow(clippy::result_large_err)]
                let with_key = move |mut request: tonic::Request<()>| {
                    request.metadata_mut().insert("api-key", key.clone());
                    Ok(request)
                };
                let mut collections = CollectionsClient::with_interceptor(channel.clone(), with_key.clone());
                let exists = collections
                    .collection_exists(qdrant_client::qdrant::CollectionExistsRequest {
                        collection_name: COLLECTION.into(),
                    })
                    .await?
                    .into_inner()
                    .result
                    .is_some_and(|r| r.exists);
                if !exists {
                    collections.create(create.build()).await?;
                }
                let mut points = PointsClient::with_interceptor(channel, with_key);
                points.upsert(upsert.build()).await?;
                anyhow::Ok(points.query(query.build()).await?.into_inner().result)
            }
        }
    })?;
    println!("{} points found, nearest {}", found.len(), nearest(&found));
    Ok(std::process::ExitCode::SUCCESS)
}

/// The id of the nearest point.
fn nearest(found: &[ScoredPoint]) -> String {
    match found.first().and_then(|p| p.id.clone()).and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => n.to_string(),
        Some(PointIdOptions::Uuid(uuid)) => uuid,
        None => "none".to_owned(),
    }
}
