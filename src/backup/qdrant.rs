//! Qdrant: a snapshot per collection through its snapshot API over verified TLS (the stack CA,
//! the client certificate where the profile wants one), downloaded and checked against the
//! checksum Qdrant reports, then deleted on the server. Restored by upload with
//! `priority=snapshot` and the checksum, never from a URL.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::{Contents, Context, ServiceSet};
use crate::layout;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// A snapshot can be large: a transfer may take this long.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(1800);

/// Qdrant from the host with the read-write key.
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: crate::secrets::Secret,
}

impl Api {
    /// Qdrant where this machine reaches it: its published port, or its address on the stack
    /// network when the stack publishes nothing.
    pub async fn connect(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Api> {
        let login = profile.users.first().context("the profile has no application user")?.name.clone();
        let key = store.current(layout::QDRANT_API_KEY).await?.value;
        let target = crate::probe::reach(engine, profile, dir, Service::Qdrant, &login, key.clone(), "").await?;
        let client = crate::probe::https_client(&target, TRANSFER_TIMEOUT)?;
        Ok(Api { client, base: format!("https://{}:{}", target.host, target.port), key })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
        let response = request.header("api-key", self.key.expose()).send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("{what}: Qdrant answered {status}: {}", body.trim());
        }
        Ok(response)
    }

    async fn json(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<serde_json::Value> {
        self.send(request, what).await?.json().await.with_context(|| format!("{what}: reading the answer"))
    }

    /// The server's version.
    pub async fn version(&self) -> anyhow::Result<String> {
        let root = self.json(self.client.get(&self.base), "GET /").await?;
        Ok(format!("qdrant {}", root["version"].as_str().unwrap_or("unknown")))
    }

    /// The collections' names.
    pub async fn collections(&self) -> anyhow::Result<Vec<String>> {
        let answer =
            self.json(self.client.get(format!("{}/collections", self.base)), "listing the collections").await?;
        let mut names: Vec<String> = answer["result"]["collections"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// Exact points per collection.
    pub async fn contents(&self) -> anyhow::Result<Contents> {
        let mut contents = Contents::default();
        for collection in self.collections().await? {
            let url = format!("{}/collections/{collection}/points/count", self.base);
            let answer =
                self.json(self.client.post(url).json(&serde_json::json!({ "exact": true })), "counting points").await?;
            let count = answer["result"]["count"].as_u64().context("a point count")?;
            contents.counts.insert(collection, count);
        }
        Ok(contents)
    }

    /// Snapshots one collection into `file` and checks the checksum Qdrant reports.
    async fn snapshot(&self, collection: &str, file: &Path) -> anyhow::Result<()> {
        use futures_util::StreamExt as _;
        use std::io::Write as _;
        let url = format!("{}/collections/{collection}/snapshots?wait=true", self.base);
        let made = self.json(self.client.post(url), &format!("snapshotting {collection}")).await?;
        let name = made["result"]["name"].as_str().context("a snapshot name")?.to_owned();
        let checksum = made["result"]["checksum"].as_str().map(str::to_owned);
        let url = format!("{}/collections/{collection}/snapshots/{name}", self.base);
        let response = self.send(self.client.get(&url), &format!("downloading the snapshot of {collection}")).await?;
        let mut out = crate::fsio::create_private(file)?;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.context("downloading the snapshot")?)?;
        }
        out.sync_all()?;
        self.send(self.client.delete(&url), &format!("deleting the snapshot of {collection} on the server")).await?;
        if let Some(checksum) = checksum {
            anyhow::ensure!(
                super::sha256_file(file)? == checksum,
                "the snapshot of {collection} does not match the checksum Qdrant reported"
            );
        }
        Ok(())
    }

    /// Recovers a collection from a snapshot file, by upload (`priority=snapshot`, checksum).
    pub async fn recover(&self, collection: &str, file: &Path) -> anyhow::Result<()> {
        let checksum = super::sha256_file(file)?;
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let part = reqwest::multipart::Part::bytes(bytes).file_name(format!("{collection}.snapshot"));
        let form = reqwest::multipart::Form::new().part("snapshot", part);
        let url = format!(
            "{}/collections/{collection}/snapshots/upload?wait=true&priority=snapshot&checksum={checksum}",
            self.base
        );
        self.send(self.client.post(url).multipart(form), &format!("recovering {collection}")).await?;
        Ok(())
    }
}

/// A snapshot of every collection into `part`.
pub async fn backup(context: &Context<'_>, part: &Path) -> anyhow::Result<ServiceSet> {
    let api = Api::connect(context.engine, context.profile, context.dir, context.store).await?;
    for collection in api.collections().await? {
        api.snapshot(&collection, &part.join(format!("{collection}.snapshot"))).await?;
    }
    Ok(ServiceSet {
        service: Service::Qdrant,
        server_version: api.version().await?,
        method: "qdrant collection snapshots".into(),
        files: Vec::new(),
        contents: api.contents().await?,
        wal: None,
    })
}
