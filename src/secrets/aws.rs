//! The `aws` secret store: AWS Secrets Manager through aws-sdk-secretsmanager, the only user of
//! the AWS SDK. One secret per credential, named `<prefix><name>`; the stages are
//! `AWSCURRENT`, `AWSPENDING` and `AWSPREVIOUS`. PostgreSQL secrets carry the JSON shape AWS's
//! own RDS rotation functions read (`engine, host, port, username, password, dbname`). The
//! endpoint and region come from the profile, so tests run against a local emulator (moto).

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::Context as _;
use aws_sdk_secretsmanager::Client;
use serde::{Deserialize, Serialize};

use super::Secret;
use super::store::{SecretStore, SecretVersion, Stage};
use crate::error::EnvironmentError;
use crate::profile::{Profile, Service};

/// Where a PostgreSQL secret's database is, for the RDS JSON shape.
#[derive(Debug, Clone)]
pub struct RdsTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

/// AWS Secrets Manager.
pub struct AwsStore {
    client: Client,
    prefix: String,
    /// RDS fields per PostgreSQL secret name.
    rds: BTreeMap<String, RdsTarget>,
}

/// The secret string: the RDS shape for PostgreSQL, `password` (and `username`) otherwise.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dbname: Option<String>,
    /// The SCRAM verifier hardstack sends to PostgreSQL instead of the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram_verifier: Option<String>,
}

fn label(stage: Stage) -> &'static str {
    match stage {
        Stage::Current => "AWSCURRENT",
        Stage::Pending => "AWSPENDING",
        Stage::Previous => "AWSPREVIOUS",
    }
}

fn aws_error(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    let detail = format!("{:#}", anyhow::Error::new(err));
    anyhow::Error::new(EnvironmentError(format!("AWS Secrets Manager: {what}: {detail}")))
}

impl AwsStore {
    /// A client for the profile's region and endpoint; credentials from the usual AWS chain.
    pub async fn connect(profile: &Profile) -> anyhow::Result<AwsStore> {
        let aws = &profile.secrets.aws;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(aws.region.clone()));
        if !aws.endpoint.is_empty() {
            loader = loader.endpoint_url(&aws.endpoint);
        }
        let config = loader.load().await;
        let mut rds = BTreeMap::new();
        if profile.runs(Service::Postgres) {
            let crate::endpoint::Endpoint { host, port } = crate::endpoint::client_endpoint(profile, Service::Postgres);
            for user in &profile.users {
                rds.insert(
                    crate::layout::login_secret(Service::Postgres, &user.name),
                    RdsTarget { host: host.clone(), port, dbname: user.database.clone() },
                );
            }
        }
        Ok(AwsStore { client: Client::new(&config), prefix: aws.prefix.clone(), rds })
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn encode(&self, name: &str, version: &SecretVersion) -> String {
        let rds = self.rds.get(name);
        let payload = Payload {
            engine: rds.map(|_| "postgres".to_owned()),
            host: rds.map(|r| r.host.clone()),
            port: rds.map(|r| r.port),
            username: version.username.clone(),
            password: version.value.expose().to_owned(),
            dbname: rds.map(|r| r.dbname.clone()),
            scram_verifier: version.verifier.as_ref().map(|v| v.expose().to_owned()),
        };
        serde_json::to_string(&payload).expect("a payload serializes")
    }

    /// Every version id of a secret with its labels.
    async fn labels(&self, name: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let described = self
            .client
            .describe_secret()
            .secret_id(self.id(name))
            .send()
            .await
            .map_err(|e| aws_error(&format!("describing {}", self.id(name)), e))?;
        Ok(described
            .version_ids_to_stages()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}

impl SecretStore for AwsStore {
    async fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>> {
        // The stage is always explicit: moto's unlabelled read lags behind stage moves.
        let result = self.client.get_secret_value().secret_id(self.id(name)).version_stage(label(stage)).send().await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let service = err.into_service_error();
                if service.is_resource_not_found_exception() {
                    return Ok(None);
                }
                return Err(aws_error(&format!("reading {}", self.id(name)), service));
            }
        };
        let text = output.secret_string().context("the secret has no string value")?;
        let payload: Payload =
            serde_json::from_str(text).with_context(|| format!("{} is not a hardstack secret", self.id(name)))?;
        let created =
            output.created_date().and_then(|d| SystemTime::try_from(*d).ok()).unwrap_or(SystemTime::UNIX_EPOCH);
        let stages = output
            .version_stages()
            .iter()
            .filter_map(|s| match s.as_str() {
                "AWSCURRENT" => Some(Stage::Current),
                "AWSPENDING" => Some(Stage::Pending),
                "AWSPREVIOUS" => Some(Stage::Previous),
                _ => None,
            })
            .collect();
        Ok(Some(SecretVersion {
            id: output.version_id().unwrap_or_default().to_owned(),
            value: Secret::new(payload.password),
            username: payload.username,
            verifier: payload.scram_verifier.map(Secret::new),
            created,
            stages,
        }))
    }

    async fn create(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        self.client
            .create_secret()
            .name(self.id(name))
            .client_request_token(&version.id)
            .secret_string(self.encode(name, version))
            .description("managed by hardstack")
            .send()
            .await
            .map_err(|e| aws_error(&format!("creating {}", self.id(name)), e))?;
        Ok(())
    }

    async fn put_pending(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        if self.labels(name).await?.contains_key(&version.id) {
            return Ok(());
        }
        self.client
            .put_secret_value()
            .secret_id(self.id(name))
            .client_request_token(&version.id)
            .secret_string(self.encode(name, version))
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(|e| aws_error(&format!("adding a pending version to {}", self.id(name)), e))?;
        Ok(())
    }

    async fn finish(&self, name: &str, id: &str) -> anyhow::Result<()> {
        let labels = self.labels(name).await?;
        let current =
            labels.iter().find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT")).map(|(v, _)| v.clone());
        if current.as_deref() != Some(id) {
            // Moving AWSCURRENT puts AWSPREVIOUS on the old current version.
            let mut request = self
                .client
                .update_secret_version_stage()
                .secret_id(self.id(name))
                .version_stage("AWSCURRENT")
                .move_to_version_id(id);
            if let Some(current) = current {
                request = request.remove_from_version_id(current);
            }
            request.send().await.map_err(|e| aws_error(&format!("making {id} current in {}", self.id(name)), e))?;
        }
        if labels.get(id).is_some_and(|stages| stages.iter().any(|s| s == "AWSPENDING")) {
            self.client
                .update_secret_version_stage()
                .secret_id(self.id(name))
                .version_stage("AWSPENDING")
                .remove_from_version_id(id)
                .send()
                .await
                .map_err(|e| aws_error(&format!("removing AWSPENDING from {}", self.id(name)), e))?;
        }
        Ok(())
    }
}
