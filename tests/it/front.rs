//! The Qdrant front (`qdrant-front`): REST and gRPC through HAProxy with each application
//! user's own key, Qdrant's own keys never accepted from outside, Qdrant itself on the stack
//! network only. Real engine, real Qdrant (skipped loudly where no Qdrant image exists).

use std::process::Command;

use crate::common::*;

/// Two users, one read-write and one read-only, on the test profile.
const TWO_USERS: &str = "extends = \"test\"\n\n\
    [[users]]\nname = \"app\"\ndatabase = \"app\"\nredis_keys = \"app:*\"\nqdrant = \"read-write\"\n\n\
    [[users]]\nname = \"reader\"\ndatabase = \"reader\"\nredis_keys = \"reader:*\"\nqdrant = \"read-only\"\n";

/// `hardstack env --user NAME -o json`.
fn env_of(stack: &DockerStack, user: &str) -> serde_json::Value {
    let out = stack.cmd("env", &["--user", user, "-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    document["variables"].clone()
}

/// curl against the front's REST port with a key: the HTTP status.
fn curl_status(env: &serde_json::Value, method: &str, path: &str, key: &str) -> String {
    let url = env["QDRANT_URL"].as_str().unwrap();
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", env["QDRANT_CA_CERT"].as_str().unwrap()]);
    curl.args(["-X", method, "-H", &format!("api-key: {key}"), "-H", "Content-Type: application/json"]);
    if method == "PUT" {
        curl.args(["-d", r#"{"vectors":{"size":2,"distance":"Cosine"}}"#]);
    }
    let out = curl.arg(format!("{url}{path}")).output().unwrap();
    assert!(out.status.success(), "curl {method} {path}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_front_serves_rest_and_grpc_with_each_users_own_key_and_refuses_the_rest() {
    if !docker_available("qdrant front") || crate::common::qdrant_image("qdrant front").is_none() {
        return;
    }
    let stack = DockerStack::new("qdrant front").services(&["postgres", "qdrant", "qdrant-front"]);
    stack.sandbox.write("two-users.toml", TWO_USERS);
    let stack = stack.profile("two-users.toml");
    let out = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for id in [
        "front.login",
        "front.grpc_login",
        "front.no_key_refused",
        "front.unknown_key_refused",
        "front.internal_key_refused",
        "front.grpc_no_key_refused",
        "front.grpc_unknown_key_refused",
        "front.read_only_write_refused",
        "front.grpc_read_only_write_refused",
        "front.plaintext_refused",
        "qdrant.login",
        "qdrant.foreign_client_cert_refused",
    ] {
        assert_eq!(verdicts.get(id).map(String::as_str), Some("pass"), "{id}: {verdicts:?}");
    }

    // Each user has a key of its own, which is none of Qdrant's.
    let (app, reader) = (env_of(&stack, "app"), env_of(&stack, "reader"));
    let (app_key, reader_key) = (app["QDRANT_API_KEY"].as_str().unwrap(), reader["QDRANT_API_KEY"].as_str().unwrap());
    assert_ne!(app_key, reader_key);
    let dir = stack.sandbox.stack();
    let qdrant_config = std::fs::read_to_string(dir.join("config/qdrant/config.yaml")).unwrap();
    assert!(!qdrant_config.contains(app_key) && !qdrant_config.contains(reader_key));
    // The URLs are the front's two published ports.
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let (rest, grpc) = (port(app["QDRANT_URL"].as_str().unwrap()), port(app["QDRANT_GRPC_URL"].as_str().unwrap()));
    assert_ne!(rest, grpc, "{app}");
    // The front's files hold digests of the users' keys, never the keys.
    for file in ["haproxy.cfg", "users.map", "roles.map"] {
        let content = std::fs::read_to_string(dir.join("config/qdrant-front").join(file)).unwrap();
        assert!(!content.contains(app_key) && !content.contains(reader_key), "{file} holds a user's key");
    }

    // curl: the reader reads and cannot write (Qdrant's 403, through the front); the writer
    // writes; Qdrant's own key is refused at the front.
    assert_eq!(curl_status(&reader, "GET", "/collections", reader_key), "200");
    assert_eq!(curl_status(&reader, "PUT", "/collections/front_test", reader_key), "403");
    assert_eq!(curl_status(&app, "PUT", "/collections/front_test", app_key), "200");
    assert_eq!(curl_status(&reader, "GET", "/collections/front_test", reader_key), "200");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("secrets/qdrant/api-key.json")).unwrap()).unwrap();
    let internal = record["versions"][0]["value"].as_str().unwrap();
    assert_eq!(curl_status(&app, "GET", "/collections", internal), "401");

    // Qdrant publishes nothing; the front publishes REST and gRPC.
    let ports = |container: &str| {
        let out = Command::new("docker").args(["port", container]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(ports(&format!("{}-qdrant", stack.name)).trim(), "", "Qdrant publishes a port");
    let front = ports(&format!("{}-qdrant-front", stack.name));
    assert!(front.contains(&format!("6333/tcp -> 127.0.0.1:{rest}")), "{front}");
    assert!(front.contains(&format!("6334/tcp -> 127.0.0.1:{grpc}")), "{front}");
}
