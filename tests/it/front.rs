//! The Qdrant front (`qdrant-front`): REST and gRPC through HAProxy with each application
//! user's own key, Qdrant's own keys never accepted from outside, Qdrant itself on the stack
//! network only. Real engine, real Qdrant (skipped loudly where no Qdrant image exists).

use std::process::Command;

use crate::common::*;

/// Two users, one read-write and one read-only, on the test profile.
pub(crate) const TWO_USERS: &str = "extends = \"test\"\n\n\
    [[users]]\nname = \"app\"\ndatabase = \"app\"\nredis_keys = \"app:*\"\nqdrant = \"read-write\"\n\n\
    [[users]]\nname = \"reader\"\ndatabase = \"reader\"\nredis_keys = \"reader:*\"\nqdrant = \"read-only\"\n";

/// `hardstack env --user NAME -o json`.
pub(crate) fn env_of(stack: &DockerStack, user: &str) -> serde_json::Value {
    let out = stack.cmd("env", &["--user", user, "-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    document["variables"].clone()
}

/// curl against the front's REST port with a key (and the user's certificate where the stack
/// gives one): the HTTP status.
pub(crate) fn curl_status(env: &serde_json::Value, method: &str, path: &str, key: &str) -> String {
    let url = env["QDRANT_URL"].as_str().unwrap();
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", env["QDRANT_CA_CERT"].as_str().unwrap()]);
    if let (Some(cert), Some(client_key)) = (env["QDRANT_CLIENT_CERT"].as_str(), env["QDRANT_CLIENT_KEY"].as_str()) {
        curl.args(["--cert", cert, "--key", client_key]);
    }
    curl.args(["-X", method, "-H", &format!("api-key: {key}"), "-H", "Content-Type: application/json"]);
    if method == "PUT" {
        curl.args(["-d", r#"{"vectors":{"size":2,"distance":"Cosine"}}"#]);
    }
    let out = curl.arg(format!("{url}{path}")).output().unwrap();
    assert!(out.status.success(), "curl {method} {path}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs examples/python/vectors.py (qdrant-client) as the writer and the reader, over REST and
/// gRPC; a loud skip where the examples' virtualenv lacks it (CI must have it). Whether it ran.
pub(crate) fn python_client(stack: &DockerStack) -> bool {
    let python = std::path::Path::new("/opt/hardstack-examples/bin/python");
    let ready = python.is_file()
        && Command::new(python).args(["-c", "import qdrant_client"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        assert!(std::env::var_os("CI").is_none(), "qdrant-client is missing from /opt/hardstack-examples");
        skipped("the Python Qdrant client: /opt/hardstack-examples lacks qdrant-client (.ci/setup installs it)");
        return false;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/vectors.py");
    for (user, grpc, expected) in [
        ("app", false, "3 points found, nearest 5"),
        ("app", true, "3 points found, nearest 5"),
        ("reader", false, "write refused\n3 points found, nearest 5"),
        ("reader", true, "write refused\n3 points found, nearest 5"),
    ] {
        let mut run = Command::new(python);
        run.arg(&script).args(["--user", user]);
        if grpc {
            run.arg("--grpc");
        }
        if user == "reader" {
            run.arg("--read-only");
        }
        let out = run
            .env("HARDSTACK_DIR", stack.sandbox.stack())
            .env("HARDSTACK", assert_cmd::cargo::cargo_bin("hardstack"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{user} grpc={grpc}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected, "{user} grpc={grpc}");
    }
    true
}

/// Runs examples/qdrant_grpc.rs (qdrant-client over gRPC) as the stack's first user.
fn rust_client(stack: &DockerStack) {
    let example = example_binary("qdrant_grpc");
    let out = Command::new(&example)
        .env("HARDSTACK_DIR", stack.sandbox.stack())
        .env("HARDSTACK", assert_cmd::cargo::cargo_bin("hardstack"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", example.display()));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3 points found, nearest 5", "{}", text(&out));
}

/// The image .ci/setup builds from trixie's testssl.sh package.
const TESTSSL_IMAGE: &str = "hardstack-local/testssl:trixie";

/// Where testssl.sh reaches a port: on loopback, or on the stack network by name (a stack that
/// publishes nothing), presenting a client certificate where the stack requires one.
struct Audited<'a> {
    stack: &'a DockerStack,
    network: Option<String>,
    host: &'a str,
    mtls: Option<std::path::PathBuf>,
    /// The front accepts TLS 1.3 only (`qdrant.tls_min_version`, prod).
    tls13_only: bool,
}

/// testssl.sh against one port, trusting the stack CA: its findings of severity MEDIUM or
/// higher, revocation aside (a private CA publishes no CRL or OCSP responder). Nothing where
/// the image is missing (a loud skip; CI must have it).
fn testssl(audited: &Audited, port: u16) -> (u16, Vec<String>) {
    if !has_image(TESTSSL_IMAGE) {
        assert!(std::env::var_os("CI").is_none(), "no {TESTSSL_IMAGE}: .ci/setup builds it");
        skipped(&format!("testssl: no {TESTSSL_IMAGE} (.ci/setup builds it)"));
        return (port, Vec::new());
    }
    let out = audited.stack.sandbox.root().join(format!("testssl-{port}"));
    std::fs::create_dir_all(&out).unwrap();
    let ca = audited.stack.sandbox.stack().join("ca/ca.crt");
    let mut run = Command::new("docker");
    run.args(["run", "--rm", "--network", audited.network.as_deref().unwrap_or("host")]);
    run.args(["-v", &format!("{}:/ca.crt:ro", ca.display()), "-v", &format!("{}:/out", out.display())]);
    if let Some(pem) = &audited.mtls {
        run.args(["-v", &format!("{}:/client.pem:ro", pem.display())]);
    }
    run.args([TESTSSL_IMAGE, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", "/ca.crt"]);
    if audited.mtls.is_some() {
        run.args(["--mtls", "/client.pem"]);
    }
    let run = run.args(["--jsonfile", "/out/findings.json", &format!("{}:{port}", audited.host)]).output().unwrap();
    let json =
        std::fs::read(out.join("findings.json")).unwrap_or_else(|e| panic!("testssl on {port}: {e}: {}", text(&run)));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    // The scan happened: it negotiated the protocols the front offers, and met no problem.
    let finding = |id: &str| {
        findings.iter().find(|f| f["id"] == id).and_then(|f| f["finding"].as_str()).unwrap_or("absent").to_owned()
    };
    assert!(
        finding("TLS1_3").starts_with("offered"),
        "testssl on {port}: TLS1_3 {}: {}",
        finding("TLS1_3"),
        text(&run)
    );
    let tls12 = finding("TLS1_2");
    assert_eq!(tls12.starts_with("offered"), !audited.tls13_only, "testssl on {port}: TLS1_2 {tls12}");
    assert_eq!(finding("scanProblem"), "absent", "testssl on {port}");
    let serious = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("MEDIUM" | "HIGH" | "CRITICAL")))
        .filter(|f| {
            let id = f["id"].as_str().unwrap_or_default().to_lowercase();
            !(id.contains("revocation") || id.contains("crl") || id.contains("ocsp"))
        })
        .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["finding"]))
        .collect();
    (port, serious)
}

/// testssl.sh against the front's two ports at once; fails on any finding.
fn audit_both(audited: &Audited, ports: [u16; 2]) {
    std::thread::scope(|scope| {
        let audits: Vec<_> = ports.into_iter().map(|port| scope.spawn(move || testssl(audited, port))).collect();
        for audit in audits {
            let (port, findings) = audit.join().unwrap();
            assert!(findings.is_empty(), "testssl on {port}: {findings:#?}");
        }
    });
}

#[test]
fn the_front_serves_rest_and_grpc_with_each_users_own_key_and_refuses_the_rest() {
    if !docker_available("qdrant front") || crate::common::qdrant_image("qdrant front").is_none() {
        return;
    }
    // Certificates for 90 days, as a production stack's (the test profile's 7 days are a finding
    // of testssl's: it warns within 30 days of the end).
    let stack = DockerStack::new("qdrant front")
        .services(&["postgres", "qdrant", "qdrant-front"])
        .set("tls.ca_lifetime=365days")
        .set("tls.server_lifetime=90days");
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

    // connect qdrant goes through the front as the user, here (curl) and from the stack network
    // (this binary's client in Qdrant's image); --admin reaches Qdrant itself, on the network.
    for args in [&["qdrant", "--", "/collections"][..], &["qdrant", "--from", "network", "--", "/collections"]] {
        let out = stack.cmd("connect", args).output().unwrap();
        assert!(out.status.success(), "connect {args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("front_test"), "connect {args:?}: {}", text(&out));
    }
    for (args, server) in [
        (&["qdrant", "--user", "reader", "-o", "json", "--", "/collections"][..], "qdrant-front"),
        (&["qdrant", "--admin", "-o", "json", "--", "/collections"], "qdrant"),
    ] {
        let out = stack.cmd("connect", args).output().unwrap();
        assert!(out.status.success(), "connect {args:?}: {}", text(&out));
        let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(document["service"], server, "{document}");
        assert_eq!(document["exit_code"], 0, "{document}");
        assert!(document["stdout"].as_str().unwrap().contains("front_test"), "{document}");
    }

    // The official Python client, over REST and over gRPC (`prefer_grpc`), verified TLS: the
    // writer writes and searches, the reader searches and its write is refused by Qdrant.
    python_client(&stack);
    // The official Rust client, gRPC only, trusting the stack CA through SSL_CERT_FILE.
    rust_client(&stack);

    // testssl.sh against both ports: nothing of severity MEDIUM or higher.
    let audited = Audited { stack: &stack, network: None, host: "127.0.0.1", mtls: None, tls13_only: false };
    audit_both(&audited, [rest, grpc]);

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

/// One request as a client that re-reads its key first and retries nothing: over REST with
/// curl, or over gRPC (`Collections/List`, HTTP/2) with curl. Whether it succeeded.
fn one_request(stack: &DockerStack, user: &str, grpc: bool) -> bool {
    let env = env_of(stack, user);
    let (key, ca) = (env["QDRANT_API_KEY"].as_str().unwrap(), env["QDRANT_CA_CERT"].as_str().unwrap());
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--cacert", ca, "-H", &format!("api-key: {key}")]);
    if grpc {
        let url = format!("{}/qdrant.Collections/List", env["QDRANT_GRPC_URL"].as_str().unwrap());
        curl.args(["--http2", "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-"]);
        curl.args(["-o", "/dev/null", "-D", "-", &url]).stdin(std::process::Stdio::piped());
        curl.stdout(std::process::Stdio::piped());
        let mut child = curl.spawn().unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&[0, 0, 0, 0, 0]).unwrap();
        let out = child.wait_with_output().unwrap();
        // OK is `grpc-status: 0`, in the trailers, which curl prints after the headers.
        let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let statuses: Vec<&str> =
            headers.lines().filter_map(|l| l.strip_prefix("grpc-status:")).map(str::trim).collect();
        out.status.success() && statuses == ["0"]
    } else {
        let url = format!("{}/collections", env["QDRANT_URL"].as_str().unwrap());
        let out = curl.args(["-o", "/dev/null", "-w", "%{http_code}", &url]).output().unwrap();
        out.status.success() && out.stdout == b"200"
    }
}

/// What a client saw while a rotation ran.
#[derive(Debug)]
pub(crate) struct Seen {
    pub ok: u32,
    pub failed: u32,
    /// From the first failure of a run to the next success, the longest.
    longest_failure: std::time::Duration,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} failed", self.failed, self.ok + self.failed)?;
        if self.failed > 0 {
            write!(f, ", the longest run of failures {} ms", self.longest_failure.as_millis())?;
        }
        Ok(())
    }
}

/// Runs `rotate --force --only ONLY` under two clients that re-read their key before each
/// request and retry nothing: REST as the writer, gRPC as the reader.
pub(crate) fn under_clients(stack: &DockerStack, only: &str) -> (Vec<Seen>, std::process::Output) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let clients: Vec<_> = [false, true]
            .into_iter()
            .map(|grpc| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut seen = Seen { ok: 0, failed: 0, longest_failure: std::time::Duration::ZERO };
                    let mut failing_since = None;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let at = std::time::Instant::now();
                        if one_request(stack, if grpc { "reader" } else { "app" }, grpc) {
                            seen.ok += 1;
                            if let Some(since) = failing_since.take() {
                                seen.longest_failure = seen.longest_failure.max(at.duration_since(since));
                            }
                        } else {
                            seen.failed += 1;
                            failing_since.get_or_insert(at);
                        }
                    }
                    seen
                })
            })
            .collect();
        let out = stack.cmd("rotate", &["--force", "--only", only, "-o", "json"]).output().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (clients.into_iter().map(|c| c.join().unwrap()).collect(), out)
    })
}

pub(crate) fn started_at(stack: &DockerStack, service: &str) -> String {
    let name = format!("{}-{service}", stack.name);
    let out = Command::new("docker").args(["inspect", "-f", "{{.State.StartedAt}}", &name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn every_users_key_rotates_in_place_with_no_failed_request_and_the_previous_one_expires() {
    if !docker_available("front rotation") || crate::common::qdrant_image("front rotation").is_none() {
        return;
    }
    let stack = DockerStack::new("front rotation").services(&["qdrant", "qdrant-front"]).set("rotation.grace=3s");
    stack.sandbox.write("two-users.toml", TWO_USERS);
    let stack = stack.profile("two-users.toml");
    let out = stack.cmd("up", &["--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let started = (started_at(&stack, "qdrant"), started_at(&stack, "qdrant-front"));
    let old_key = env_of(&stack, "app")["QDRANT_API_KEY"].as_str().unwrap().to_owned();

    // Two clients (REST and gRPC) run through the rotation of every user's key.
    let (results, rotated) = under_clients(&stack, "qdrant-front");
    assert!(rotated.status.success(), "{}", text(&rotated));
    let document: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let states: Vec<(&str, &str)> = document["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["credential"].as_str().unwrap(), c["outcome"]["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("qdrant-front/app", "rotated"), ("qdrant-front/reader", "rotated")], "{document}");
    for run in &results {
        assert_eq!(run.failed, 0, "failed requests during the rotation: {results:?}");
        assert!(run.ok > 0, "{results:?}");
    }
    // Neither Qdrant nor the front restarted.
    assert_eq!((started_at(&stack, "qdrant"), started_at(&stack, "qdrant-front")), started);

    // The new key works; the old one too, through the grace period, then no more.
    let env = env_of(&stack, "app");
    let new_key = env["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(curl_status(&env, "GET", "/collections", &new_key), "200");
    assert_eq!(curl_status(&env, "GET", "/collections", &old_key), "200");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let out = stack.cmd("rotate", &["-o", "json", "--set", "rotation.enabled=true"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expired = document["expired_previous"].as_array().unwrap();
    assert!(expired.iter().any(|e| e == "qdrant-front/app"), "{document}");
    assert_eq!(curl_status(&env, "GET", "/collections", &old_key), "401");
    assert_eq!(curl_status(&env, "GET", "/collections", &new_key), "200");
    assert_eq!((started_at(&stack, "qdrant"), started_at(&stack, "qdrant-front")), started);

    // The front's certificate: re-issued, delivered, a graceful reload; no request fails and the
    // container is not restarted; the front serves the new certificate.
    let served = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial",
                env["QDRANT_URL"].as_str().unwrap().rsplit(':').next().unwrap()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let serial = served();
    assert!(serial.starts_with("serial="), "{serial}");
    let (renewed, rotated) = under_clients(&stack, "certificate/qdrant-front");
    assert!(rotated.status.success(), "{}", text(&rotated));
    for run in &renewed {
        assert_eq!(run.failed, 0, "failed requests during the certificate's rotation: {renewed:?}");
    }
    assert_ne!(served(), serial, "the front still serves the old certificate");
    assert_eq!((started_at(&stack, "qdrant"), started_at(&stack, "qdrant-front")), started);

    // Qdrant's own key, between the front and Qdrant: Qdrant reads it at start, so it restarts
    // (twice), and the front then sends the new key. Its cost is what the clients see.
    let (internal, rotated) = under_clients(&stack, "qdrant/api-key");
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert_eq!(curl_status(&env, "GET", "/collections", &new_key), "200");
    println!(
        "front rotation: every user's key, REST {} and gRPC {}, no restart; Qdrant's own key, REST {} and gRPC {}",
        results[0], results[1], internal[0], internal[1]
    );
}

#[test]
fn a_prod_front_requires_client_certificates_and_passes_testssl_on_the_stack_network() {
    if !docker_available("prod front") || crate::common::qdrant_image("prod front").is_none() {
        return;
    }
    // prod as shipped (nothing published, client certificates, TLS 1.3 at the front), Qdrant
    // and its front only.
    let stack = DockerStack::new("prod front").profile("prod").services(&["qdrant", "qdrant-front"]);
    let out = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verify"]["summary"]["fail"], 0, "{report}");
    // testssl.sh from inside the stack network, presenting the application user's certificate.
    let dir = stack.sandbox.stack();
    let pem = [
        std::fs::read(dir.join("certs/clients/app/client.crt")).unwrap(),
        std::fs::read(dir.join("certs/clients/app/client.key")).unwrap(),
    ]
    .concat();
    let mtls = stack.sandbox.root().join("client.pem");
    std::fs::write(&mtls, pem).unwrap();
    let network = format!("{}-net", stack.name);
    let audited =
        Audited { stack: &stack, network: Some(network), host: "qdrant-front", mtls: Some(mtls), tls13_only: true };
    audit_both(&audited, [6333, 6334]);
}

#[test]
fn the_front_is_added_to_a_running_stack_and_qdrant_keeps_its_data() {
    if !docker_available("front day two") || crate::common::qdrant_image("front day two").is_none() {
        return;
    }
    // A stack made before the front: Qdrant published, one collection in it.
    let stack = DockerStack::new("front day two").services(&["qdrant"]).set("qdrant.data=volume");
    let out = stack.cmd("up", &["--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let before = env_of(&stack, "app");
    let key = before["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_eq!(curl_status(&before, "PUT", "/collections/kept", &key), "200");

    // plan shows the change; up applies it.
    let with_front = stack.services(&["qdrant", "qdrant-front"]);
    let plan = with_front.cmd("plan", &["-o", "json"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.contains("qdrant-front"), "{plan}");
    let out = with_front.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Through the front, with the user's own key: the collection is still there; the shared key
    // the application had is no longer accepted there.
    let after = env_of(&with_front, "app");
    let own = after["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_ne!(own, key);
    assert_eq!(curl_status(&after, "GET", "/collections/kept", &own), "200");
    assert_eq!(curl_status(&after, "GET", "/collections/kept", &key), "401");
}

#[test]
fn with_client_certificates_required_the_python_client_connects_and_a_removed_user_is_refused() {
    if !docker_available("front mutual") || crate::common::qdrant_image("front mutual").is_none() {
        return;
    }
    let stack = DockerStack::new("front mutual").services(&["qdrant", "qdrant-front"]).set("tls.client_certs=required");
    stack.sandbox.write("two-users.toml", TWO_USERS);
    let stack = stack.profile("two-users.toml");
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The Python client presents the user's certificate, over REST and gRPC; the Rust one over
    // gRPC (a tonic channel with the certificate, the client's own services).
    python_client(&stack);
    rust_client(&stack);
    let reader = env_of(&stack, "reader");
    let key = reader["QDRANT_API_KEY"].as_str().unwrap().to_owned();
    assert_eq!(curl_status(&reader, "GET", "/collections", &key), "200");
    // Without a certificate, both ports end the handshake (TLS 1.3's certificate_required).
    for url in [reader["QDRANT_URL"].as_str().unwrap(), reader["QDRANT_GRPC_URL"].as_str().unwrap()] {
        let out = Command::new("curl")
            .args(["-sS", "--http2", "--cacert", reader["QDRANT_CA_CERT"].as_str().unwrap(), "-H"])
            .args([&format!("api-key: {key}"), &format!("{url}/collections")])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} answered without a client certificate");
        assert!(text(&out).contains("certificate required"), "{url}: {}", text(&out));
    }
    // The reader leaves the profile: the next up takes its key out of the front.
    stack.sandbox.write("two-users.toml", &TWO_USERS[..TWO_USERS.find("\n\n[[users]]\nname = \"reader\"").unwrap()]);
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(curl_status(&reader, "GET", "/collections", &key), "401");
}
