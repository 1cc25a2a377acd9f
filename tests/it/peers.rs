//! A Qdrant cluster (`qdrant.nodes = 3`) behind its front on the engine: the peers form one
//! cluster over mutual TLS, verify's cluster checks pass, a collection created without a factor
//! keeps every shard on two peers, the p2p port refuses curl without a certificate (a TLS alert)
//! and with one but without the key (UNAUTHENTICATED); the API key and Qdrant's certificate
//! rotate peer by peer under clients of the front with no failed request; a killed peer comes
//! back with the next `up`, the others untouched; fewer peers are refused.

use std::process::Command;

use crate::common::{DockerStack, docker_available, text};
use crate::front::{TWO_USERS, curl_status, env_of, started_at, under_clients};

/// Node 0's address on the stack network, which the host routes to.
fn node_address(stack: &DockerStack) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{}-net\").IPAddress}}}}", stack.name);
    let node = format!("{}-qdrant", stack.name);
    let out = Command::new("docker").args(["inspect", "-f", &format, &node]).output().unwrap();
    let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!address.is_empty(), "{}", text(&out));
    address
}

/// curl on node 0's p2p port (not published) with the application's certificate, calling an
/// internal method with `key` if any: the response's headers and trailers with curl's messages.
/// The server answers a refusal before it reads the request's message, and curl 7.88 sometimes
/// reports the stream's end as a framing error (exit 92) before the answer: that attempt is
/// made again, twice at most.
fn p2p_call(stack: &DockerStack, key: Option<&str>) -> String {
    let dir = stack.sandbox.stack();
    // An empty gRPC message: not compressed, length 0.
    let body = stack.sandbox.write("p2p-request.bin", "\0\0\0\0\0");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--http2", "-o", "/dev/null", "-D", "-"]);
    curl.arg("--data-binary").arg(format!("@{}", body.display()));
    curl.args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    curl.arg("--cacert")
        .arg(dir.join("ca/ca.crt"))
        .args(["--resolve", &format!("qdrant:6335:{}", node_address(stack))]);
    curl.arg("--cert").arg(dir.join("certs/clients/app/client.crt"));
    curl.arg("--key").arg(dir.join("certs/clients/app/client.key"));
    if let Some(key) = key {
        curl.args(["-H", &format!("api-key: {key}")]);
    }
    curl.arg("https://qdrant:6335/qdrant.QdrantInternal/GetConsensusCommit");
    let mut answer = String::new();
    for _ in 0..3 {
        let out = curl.output().unwrap();
        answer = text(&out);
        if out.status.code() != Some(92) {
            break;
        }
    }
    answer
}

/// `status -o json`: each Qdrant peer's role by its alias.
fn roles(stack: &DockerStack) -> Vec<(String, String)> {
    let out = stack.cmd("status", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = document["services"].as_array().unwrap();
    rows.iter()
        .filter(|row| row["service"].as_str().unwrap().starts_with("qdrant") && row["service"] != "qdrant-front")
        .map(|row| (row["service"].as_str().unwrap().to_owned(), row["role"].as_str().unwrap_or("-").to_owned()))
        .collect()
}

#[test]
fn a_qdrant_cluster_forms_over_mutual_tls_keeps_two_copies_and_rotates_with_no_failed_request() {
    if !docker_available("qdrant cluster") || crate::common::qdrant_image("qdrant cluster").is_none() {
        return;
    }
    let stack = DockerStack::new("qdrant cluster")
        .services(&["qdrant", "qdrant-front"])
        .set("qdrant.nodes=3")
        .set("qdrant.data=volume")
        .set("rotation.grace=3s");
    stack.sandbox.write("two-users.toml", TWO_USERS);
    let stack = stack.profile("two-users.toml");
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, checks) = stack.verify();
    for id in [
        "qdrant.cluster.peers",
        "qdrant.cluster.shards",
        "qdrant.cluster.p2p_no_cert_refused",
        "qdrant.cluster.p2p_no_key_refused",
    ] {
        assert_eq!(checks.get(id).map(String::as_str), Some("pass"), "{id}: {checks:?}");
    }
    assert_eq!(code, 0, "{checks:?}");
    let mut roles_now = roles(&stack);
    roles_now.sort();
    assert_eq!(roles_now.len(), 3, "{roles_now:?}");
    assert_eq!(roles_now.iter().filter(|(_, role)| role == "leader").count(), 1, "{roles_now:?}");
    assert_eq!(roles_now.iter().filter(|(_, role)| role == "follower").count(), 2, "{roles_now:?}");

    // A collection created through the front without a factor: two copies of every shard.
    let env = env_of(&stack, "app");
    let key = env["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_eq!(curl_status(&env, "PUT", "/collections/cluster_test", &key), "200");
    let out = Command::new("curl")
        .args(["-sS", "--cacert", env["QDRANT_CA_CERT"].as_str().unwrap(), "-H", &format!("api-key: {key}")])
        .arg(format!("{}/collections/cluster_test", env["QDRANT_URL"].as_str().unwrap()))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(info["result"]["config"]["params"]["replication_factor"], 2, "{info}");
    // The examples' collection (qdrant-client, REST and gRPC through the front) too.
    let examples_ran = crate::front::python_client(&stack);
    let out = stack.cmd("verify", &["-o", "json"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("cluster_test: 3 shards × 2 replicas, all Active"), "{report}");
    if examples_ran {
        assert!(report.contains("examples_vectors: 3 shards × 2 replicas, all Active"), "{report}");
    }

    // The p2p port: openssl without a client certificate gets the TLS alert; curl with one of
    // the stack CA (the application's) but without the key, UNAUTHENTICATED; with the key, an
    // answer.
    let script = format!(
        "(printf 'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'; sleep 1) | openssl s_client -connect {}:6335 \
         -servername qdrant -CAfile {} -alpn h2 -quiet 2>&1",
        node_address(&stack),
        stack.sandbox.stack().join("ca/ca.crt").display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(text(&out).contains("alert certificate required"), "{}", text(&out));
    let answer = p2p_call(&stack, None);
    assert!(answer.to_lowercase().contains("grpc-status: 16"), "{answer}");
    let record = crate::common::record(&stack, "qdrant/api-key");
    let qdrant_key = crate::common::version_with(&record, "current").unwrap()["value"].as_str().unwrap().to_owned();
    let answer = p2p_call(&stack, Some(&qdrant_key));
    assert!(answer.to_lowercase().contains("grpc-status: 0"), "{answer}");

    // Qdrant's own key and certificate: every peer restarts, one at a time, while clients of
    // the front (REST as the writer's key, gRPC as the reader's) see no failed request.
    for only in ["qdrant/api-key", "certificate/qdrant"] {
        let started: Vec<String> = ["qdrant", "qdrant-1", "qdrant-2"].iter().map(|p| started_at(&stack, p)).collect();
        let (seen, rotated) = under_clients(&stack, only);
        assert!(rotated.status.success(), "{only}: {}", text(&rotated));
        for run in &seen {
            assert_eq!(run.failed, 0, "{only}: failed requests: {seen:?}");
            assert!(run.ok > 0, "{only}: {seen:?}");
        }
        let after: Vec<String> = ["qdrant", "qdrant-1", "qdrant-2"].iter().map(|p| started_at(&stack, p)).collect();
        assert!(started.iter().zip(&after).all(|(before, now)| before != now), "{only}: not every peer restarted");
        println!("qdrant cluster, {only}: REST {}, gRPC {}", seen[0], seen[1]);
    }
    let (code, checks) = stack.verify();
    assert_eq!(code, 0, "after the rotations: {checks:?}");

    // A peer killed: the front keeps answering from the others; the next `up` starts it again,
    // the others untouched, and the cluster agrees again.
    let peer = format!("{}-qdrant-2", stack.name);
    assert!(Command::new("docker").args(["kill", &peer]).output().unwrap().status.success());
    let key = env_of(&stack, "app")["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_eq!(curl_status(&env, "GET", "/collections/cluster_test", &key), "200");
    let untouched: Vec<String> = ["qdrant", "qdrant-1"].iter().map(|p| started_at(&stack, p)).collect();
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(untouched, ["qdrant", "qdrant-1"].iter().map(|p| started_at(&stack, p)).collect::<Vec<_>>());

    // Fewer peers: refused before anything changes.
    let out = stack.cmd("up", &["--set", "qdrant.nodes=1"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("does not remove Qdrant peers"), "{}", text(&out));
    assert_eq!(roles(&stack).len(), 3);
}
