//! Qdrant over gRPC with the official Rust client, `qdrant-client`, through the stack's front
//! (`qdrant-front`): the user's own key from `hardstack env`, TLS verified against the stack CA.
//!
//! qdrant-client trusts the platform's certificate store and nothing else (tonic's native
//! roots, read through rustls-native-certs, which honours `SSL_CERT_FILE`): the example names
//! the stack CA there for its own process. It cannot present a client certificate (the
//! client's issue #272), so it runs against stacks that do not require one (dev, test).
//!
//!     HARDSTACK_DIR=stack cargo run --example qdrant_grpc
//!
//! Creates the collection `examples_grpc` if it is missing, upserts five points and searches;
//! ends with `N points found, nearest ID`.

mod common;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointStruct, QueryPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};

const COLLECTION: &str = "examples_grpc";

fn main() -> anyhow::Result<std::process::ExitCode> {
    let credentials = common::credentials()?;
    let Some(url) = credentials.get("QDRANT_GRPC_URL").cloned() else {
        println!("SKIPPED: this stack has no Qdrant front (gRPC is served by qdrant-front)");
        return Ok(std::process::ExitCode::SUCCESS);
    };
    anyhow::ensure!(
        !credentials.contains_key("QDRANT_CLIENT_CERT"),
        "this stack requires client certificates, which qdrant-client cannot present (its issue #272)"
    );
    // SAFETY: no other thread runs yet; the runtime is built below.
    unsafe { std::env::set_var("SSL_CERT_FILE", common::variable(&credentials, "QDRANT_CA_CERT")?) };
    let key = common::variable(&credentials, "QDRANT_API_KEY")?.to_owned();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let client = Qdrant::from_url(&url).api_key(key).build()?;
        if !client.collection_exists(COLLECTION).await? {
            client
                .create_collection(
                    CreateCollectionBuilder::new(COLLECTION)
                        .vectors_config(VectorParamsBuilder::new(2, Distance::Cosine)),
                )
                .await?;
        }
        let points: Vec<PointStruct> =
            (1..=5u64).map(|i| PointStruct::new(i, vec![i as f32, 1.0], [("n", (i as i64).into())])).collect();
        client.upsert_points(UpsertPointsBuilder::new(COLLECTION, points).wait(true)).await?;
        let found = client.query(QueryPointsBuilder::new(COLLECTION).query(vec![5.0, 1.0]).limit(3)).await?;
        let nearest = match found.result.first().and_then(|p| p.id.clone()).and_then(|id| id.point_id_options) {
            Some(PointIdOptions::Num(n)) => n.to_string(),
            Some(PointIdOptions::Uuid(uuid)) => uuid,
            None => "none".to_owned(),
        };
        println!("{} points found, nearest {nearest}", found.result.len());
        anyhow::Ok(std::process::ExitCode::SUCCESS)
    })
}
