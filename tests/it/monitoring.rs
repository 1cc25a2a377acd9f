//! The exporters and Prometheus against the real servers, read by independent clients (curl,
//! psql, redis-cli): scrapes over TLS with a stack client certificate and the series the alert
//! rules read, refused without one; the monitor logins refused anything but reading; rotation
//! of their passwords and certificates; an alert made to fire; the rules through promtool.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{DockerStack, MONITORING_IMAGE, Sandbox, docker_available, redis, text};

const MONITORED: &[&str] =
    &["postgres", "redis", "pgbouncer", "postgres-exporter", "redis-exporter", "pgbouncer-exporter", "prometheus"];

/// curl with the stack CA, presenting the admin client certificate unless `certless`. Without
/// one, over TLS 1.2: the server's refusal (bad_certificate) then ends the handshake, where
/// under TLS 1.3 it arrives after curl has sent its request and races its own report.
fn curl(stack: &DockerStack, url: &str, resolve: Option<String>, certless: bool) -> Output {
    let dir = stack.sandbox.stack();
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "10", "--cacert"]).arg(dir.join("ca/ca.crt"));
    if certless {
        curl.args(["--tls-max", "1.2"]);
    } else {
        curl.arg("--cert").arg(dir.join("certs/clients/admin/client.crt"));
        curl.arg("--key").arg(dir.join("certs/clients/admin/client.key"));
    }
    if let Some(resolve) = resolve {
        curl.args(["--resolve", &resolve]);
    }
    curl.arg(url).output().expect("curl is installed")
}

/// A scrape of an exporter on the stack network (the host routes to the engine's bridge),
/// verified against its alias.
fn scrape(stack: &DockerStack, exporter: &str, port: u16, certless: bool) -> Output {
    let container = format!("{}-{exporter}", stack.name);
    let format = format!("{{{{(index .NetworkSettings.Networks \"{}-net\").IPAddress}}}}", stack.name);
    let out = Command::new("docker").args(["inspect", "-f", &format, &container]).output().unwrap();
    let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!address.is_empty(), "{container} has an address: {}", text(&out));
    let url = format!("https://{exporter}:{port}/metrics");
    curl(stack, &url, Some(format!("{exporter}:{port}:{address}")), certless)
}

/// The current value of a secret of the file store.
fn current(stack: &DockerStack, secret: &str) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&stack.sandbox.read(&format!("secrets/{secret}.json"))).unwrap();
    let versions = record["versions"].as_array().unwrap();
    let current = versions.iter().find(|v| v["stages"].as_array().unwrap().iter().any(|s| s == "current")).unwrap();
    current["value"].as_str().unwrap().to_owned()
}

/// The value of an instant query to Prometheus's API, if it has a sample.
fn query(stack: &DockerStack, promql: &str) -> Option<f64> {
    let url = format!("{}/api/v1/query", stack.env("PROMETHEUS_URL"));
    let dir = stack.sandbox.stack();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--get", "--data-urlencode", &format!("query={promql}")])
        .arg("--cacert")
        .arg(dir.join("ca/ca.crt"))
        .arg("--cert")
        .arg(dir.join("certs/clients/admin/client.crt"))
        .arg("--key")
        .arg(dir.join("certs/clients/admin/client.key"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    document["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok())
}

/// When a server certificate of the stack directory expires (Unix seconds).
fn expiry(stack: &DockerStack, service: &str) -> f64 {
    let pem = String::from_utf8(stack.sandbox.read(&format!("certs/{service}/server.crt"))).unwrap();
    hardstack::pki::not_after(&pem).unwrap() as f64
}

/// Prometheus's alerts, as its API lists them: name, job label and state.
fn alerts(stack: &DockerStack) -> Vec<(String, String, String)> {
    let out = curl(stack, &format!("{}/api/v1/alerts", stack.env("PROMETHEUS_URL")), None, false);
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    document["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let label = |key: &str| a["labels"][key].as_str().unwrap_or_default().to_owned();
            (label("alertname"), label("job"), a["state"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn exporters_and_prometheus_answer_over_tls_only_rotate_and_an_alert_fires() {
    if !docker_available("monitoring") {
        return;
    }
    let stack = DockerStack::new("monitoring").services(MONITORED).set("prometheus.scrape_interval=1s");
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for id in [
        "postgres-exporter.tls_scrape",
        "postgres-exporter.no_client_cert_refused",
        "redis-exporter.tls_scrape",
        "redis-exporter.no_client_cert_refused",
        "pgbouncer-exporter.tls_scrape",
        "pgbouncer-exporter.no_client_cert_refused",
        "prometheus.targets_up",
        "prometheus.no_client_cert_refused",
        "postgres.monitor_cannot_write",
        "redis.monitor_cannot_write",
        "checklist.monitoring",
        "pg.logins_declared",
    ] {
        assert_eq!(verdicts[id], "pass", "{id}: {verdicts:?}");
    }

    // curl: each exporter over TLS with a stack client certificate, with the series the alert
    // rules read; without a certificate, the TLS handshake ends with bad_certificate.
    for (exporter, port, up, series) in [
        ("postgres-exporter", 9187, "pg_up", &["pg_settings_max_connections", "pg_stat_activity_count"][..]),
        (
            "redis-exporter",
            9121,
            "redis_up",
            &["redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total"][..],
        ),
        (
            "pgbouncer-exporter",
            9127,
            "pgbouncer_up",
            &["pgbouncer_pools_client_waiting_connections", "pgbouncer_pools_client_active_connections"][..],
        ),
    ] {
        let out = scrape(&stack, exporter, port, false);
        assert!(out.status.success(), "{exporter}: {}", text(&out));
        let metrics = String::from_utf8_lossy(&out.stdout);
        // A sample line: the name, then its labels or a space, then the value.
        let value = |name: &str| {
            metrics.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?;
                let rest = if rest.starts_with('{') { &rest[rest.find('}')? + 1..] } else { rest };
                rest.starts_with(' ').then(|| rest.trim().to_owned())
            })
        };
        assert_eq!(value(up).as_deref(), Some("1"), "{exporter} reaches its server");
        for name in series {
            assert!(value(name).is_some(), "{exporter} serves {name}");
        }
        let refused = text(&scrape(&stack, exporter, port, true));
        assert!(refused.contains("alert bad certificate"), "{exporter} without a certificate: {refused}");
    }
    let prometheus = format!("{}/api/v1/targets", stack.env("PROMETHEUS_URL"));
    let refused = text(&curl(&stack, &prometheus, None, true));
    assert!(refused.contains("alert bad certificate"), "Prometheus without a certificate: {refused}");

    // psql and redis-cli as the monitor logins: reading is all they may do.
    let dir = stack.sandbox.stack();
    // PostgreSQL itself: monitor is no login through the pooler.
    let direct = stack.env("DATABASE_DIRECT_URL");
    let port = direct.split('@').nth(1).unwrap().split(['/', ':']).nth(1).unwrap().to_owned();
    let monitor_url = |password: &str| {
        format!(
            "postgresql://monitor:{password}@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            dir.join("ca/ca.crt").display(),
            dir.join("certs/clients/monitor/client.crt").display(),
            dir.join("certs/clients/monitor/client.key").display()
        )
    };
    let as_monitor = |sql: &str| {
        let url = monitor_url(&current(&stack, "postgres/monitor"));
        Command::new("psql").args([&url, "-w", "-tA", "-v", "VERBOSITY=verbose", "-c", sql]).output().unwrap()
    };
    let read = as_monitor("SELECT count(*) > 0 FROM pg_stat_activity");
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "t", "{}", text(&read));
    let write = text(&as_monitor("CREATE TABLE public.monitor_wrote (id int)"));
    assert!(write.contains("42501"), "monitor may not create a table: {write}");
    assert!(redis(&stack, "monitor", "redis/monitor", &["INFO", "memory"]).contains("used_memory:"));
    let set = redis(&stack, "monitor", "redis/monitor", &["SET", "monitor-wrote", "1"]);
    assert!(set.contains("NOPERM"), "monitor may not write a key: {set}");

    // Rotation: new passwords (the exporters restart with them) and certificates (read for
    // each connection); every target is up again, and the old monitor password is refused.
    let before = (current(&stack, "postgres/monitor"), current(&stack, "redis/monitor"));
    let served =
        |exporter: &str, port: u16| String::from_utf8_lossy(&scrape(&stack, exporter, port, false).stdout).len();
    let out = stack.cmd("rotate", &["--force"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(before.0, current(&stack, "postgres/monitor"));
    assert_ne!(before.1, current(&stack, "redis/monitor"));
    let old = Command::new("psql").args([&monitor_url(&before.0), "-w", "-tA", "-c", "SELECT 1"]).output().unwrap();
    assert!(text(&old).contains("password authentication failed"), "{}", text(&old));
    for (exporter, port) in [("postgres-exporter", 9187), ("redis-exporter", 9121), ("pgbouncer-exporter", 9127)] {
        assert!(served(exporter, port) > 0, "{exporter} answers after the rotation");
    }
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "after the rotation: {verdicts:?}");
    // Prometheus's rules follow the renewed certificates.
    let started = Instant::now();
    let series = r#"hardstack_certificate_expiry_timestamp_seconds{certificate="postgres"}"#;
    while query(&stack, series) != Some(expiry(&stack, "postgres")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?} != {}",
            query(&stack, series),
            expiry(&stack, "postgres")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(verdicts["checklist.monitoring"], "pass");

    // An alert, for real: redis-exporter stopped, TargetDown fires for its job (four scrape
    // intervals); verify names the stopped container; `up` brings it back.
    let out = Command::new("docker").args(["stop", &format!("{}-redis-exporter", stack.name)]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let started = Instant::now();
    let firing = ("TargetDown".to_owned(), "redis-exporter".to_owned(), "firing".to_owned());
    loop {
        let now = alerts(&stack);
        if now.contains(&firing) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "TargetDown never fired for redis-exporter: {now:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = stack.cmd("verify", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("redis-exporter is not running"), "{}", text(&out));
    let out = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, verdicts) = stack.verify();
    assert_eq!((code, verdicts["checklist.monitoring"].as_str()), (0, "pass"), "{verdicts:?}");

    // An exporter that runs but no longer reaches its server (its user turned off by hand)
    // fails checklist.monitoring, and RedisDown fires.
    assert_eq!(redis(&stack, "admin", "redis/admin", &["ACL", "SETUSER", "monitor", "off"]), "OK");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 1, "{verdicts:?}");
    for id in ["redis-exporter.tls_scrape", "checklist.monitoring"] {
        assert_eq!(verdicts[id], "fail", "{id}: {verdicts:?}");
    }
    let started = Instant::now();
    let down = ("RedisDown".to_owned(), "redis-exporter".to_owned(), "firing".to_owned());
    while !alerts(&stack).contains(&down) {
        assert!(started.elapsed() < Duration::from_secs(120), "RedisDown never fired: {:?}", alerts(&stack));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(redis(&stack, "admin", "redis/admin", &["ACL", "SETUSER", "monitor", "on"]), "OK");
    let (code, verdicts) = stack.verify();
    assert_eq!((code, verdicts["checklist.monitoring"].as_str()), (0, "pass"), "{verdicts:?}");
}

/// A server certificate left inside `rotation.cert_renew_before` (no rotation runs) fires
/// CertificateRenewalOverdue; here the window is all but the certificate's first ten seconds.
#[test]
fn a_certificate_left_inside_its_renewal_window_fires_its_alert() {
    if !docker_available("certificate_alert") {
        return;
    }
    let stack = DockerStack::new("certificate_alert")
        .services(&["postgres", "postgres-exporter", "prometheus"])
        .set("prometheus.scrape_interval=1s")
        .set("tls.server_lifetime=7days")
        .set("rotation.cert_renew_before=6days 23h 59m 50s");
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let series = r#"hardstack_certificate_expiry_timestamp_seconds{certificate="prometheus"}"#;
    let started = Instant::now();
    loop {
        let overdue =
            alerts(&stack).iter().any(|(name, _, state)| name == "CertificateRenewalOverdue" && state == "firing");
        if overdue {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never fired: {:?}", alerts(&stack));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(query(&stack, series), Some(expiry(&stack, "prometheus")));
}

/// The alert rules and the scrape configuration of every shipped profile, with every
/// monitoring service and Qdrant, pass promtool (from the local monitoring image).
#[test]
fn the_rendered_rules_and_configuration_pass_promtool() {
    if !docker_available("promtool") {
        return;
    }
    for profile in ["dev", "test", "prod"] {
        let sandbox = Sandbox::new();
        let services = r#"stack.services=["postgres","redis","qdrant","pgbouncer","postgres-exporter","redis-exporter","pgbouncer-exporter","prometheus"]"#;
        sandbox.init(&["--profile", profile, "--set", services]);
        for (file, check) in
            [("config/prometheus/alerts.yml", "rules"), ("config/prometheus/prometheus.yml", "config --syntax-only")]
        {
            let content = sandbox.read(file);
            let script = format!("cat > /tmp/checked.yml && promtool check {check} /tmp/checked.yml");
            let mut run = Command::new("docker")
                .args(["run", "--rm", "-i", "--network", "none", "--entrypoint", "sh", MONITORING_IMAGE, "-c", &script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            run.stdin.take().unwrap().write_all(&content).unwrap();
            let out = run.wait_with_output().unwrap();
            assert!(out.status.success(), "{profile}: promtool check {check} {file}: {}", text(&out));
            assert!(text(&out).contains("SUCCESS"), "{profile} {file}: {}", text(&out));
        }
    }
}
