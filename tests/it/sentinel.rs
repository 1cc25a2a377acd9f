//! Redis's replicas under Sentinel (`redis.replicas`, `redis.sentinels`) against the real
//! engine: verify's replica and Sentinel checks, `hardstack env`'s Sentinel variables, a
//! redis-py client through Sentinel on the stack network while the primary's container is
//! killed (Sentinel promotes a replica; the client's writes resume), `status` naming the new
//! primary, and the next `up` bringing the old node back as a replica without recreating the
//! survivors.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{DockerStack, docker_available, has_image, text};

/// The image `.ci/setup` builds with trixie's python3-redis.
const CLIENT_IMAGE: &str = "hardstack-local/redis-client:trixie";

/// A redis-py client through Sentinel, from `hardstack env -o json` (mounted): INCR of one key
/// every 10 ms for the given seconds, each call given up after the given timeout; prints `ready` once its first write is acknowledged, then
/// one JSON line with what it saw.
const CLIENT: &str = r#"
import json, sys, time
from urllib.parse import urlparse
from redis.sentinel import Sentinel
from redis.exceptions import RedisError
v = json.load(open("/client/env.json"))["variables"]
url = urlparse(v["REDIS_URL"])
tls = {"ssl": True, "ssl_ca_certs": v["REDIS_CA_CERT"]}
if "REDIS_CLIENT_CERT" in v:
    tls.update(ssl_certfile=v["REDIS_CLIENT_CERT"], ssl_keyfile=v["REDIS_CLIENT_KEY"])
sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in v["REDIS_SENTINELS"].split(","))]
login = {"username": v["REDIS_SENTINEL_USER"], "password": v["REDIS_SENTINEL_PASSWORD"]}
timeout = float(sys.argv[3])
sentinel = Sentinel(sentinels, sentinel_kwargs=dict(socket_timeout=timeout, **login, **tls), socket_timeout=timeout, **tls)
primary = sentinel.master_for(v["REDIS_MASTER_NAME"], username=url.username, password=url.password)
key, seconds = sys.argv[1], float(sys.argv[2])
ok = failed = acknowledged = 0
first_failure = last_failure = None
errors = set()
changes, state = [], None
start = time.monotonic()
while time.monotonic() - start < seconds:
    at = time.monotonic() - start
    try:
        acknowledged = primary.incr(key)
        ok += 1
        now = "ok"
        if ok == 1:
            print("ready", flush=True)
    except RedisError as err:
        failed += 1
        first_failure = at if first_failure is None else first_failure
        last_failure = at
        now = type(err).__name__
        errors.add(now)
    if now != state:
        changes.append([round(at, 2), now])
        state = now
    time.sleep(0.01)
address = sentinel.discover_master(v["REDIS_MASTER_NAME"])
print(json.dumps({"ok": ok, "failed": failed, "acknowledged": acknowledged, "first_failure": first_failure,
                  "last_failure": last_failure, "errors": sorted(errors), "primary": address[0],
                  "value": int(primary.get(key)), "changes": changes}), flush=True)
"#;

fn with_sentinels(test: &str) -> DockerStack {
    DockerStack::new(test).services(&["redis"]).set("redis.replicas=2").set("redis.sentinels=3")
}

/// A container's id.
fn id(container: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", "{{.Id}}", container]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `status -o json`'s role of each Redis node, by alias.
fn roles(stack: &DockerStack) -> std::collections::BTreeMap<String, String> {
    let out = stack.cmd("status", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["role"].is_string())
        .map(|row| (row["service"].as_str().unwrap().to_owned(), row["role"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn sentinel_promotes_a_replica_the_client_rides_through_and_up_brings_the_old_primary_back() {
    if !docker_available("sentinel") {
        return;
    }
    assert!(has_image(CLIENT_IMAGE), "no {CLIENT_IMAGE}: .ci/setup builds it");
    let stack = with_sentinels("sentinel");
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for id in [
        "redis.sentinels",
        "redis.replica.1.streams",
        "redis.replica.1.write_refused",
        "redis.replica.2.streams",
        "redis.replica.2.write_refused",
        "redis.sentinel.login_required",
        "redis.sentinel.failover_refused",
        "redis.acl_declared",
    ] {
        assert_eq!(verdicts.get(id).map(String::as_str), Some("pass"), "{id}: {verdicts:?}");
    }
    let sentinels = stack.env("REDIS_SENTINELS");
    assert_eq!(sentinels, "redis-sentinel:26379,redis-sentinel-1:26379,redis-sentinel-2:26379");
    assert_eq!(stack.env("REDIS_MASTER_NAME"), stack.name);
    assert_eq!(stack.env("REDIS_SENTINEL_USER"), "discovery");
    assert_eq!(roles(&stack).get("redis").map(String::as_str), Some("primary"));

    // redis-py through Sentinel on the stack network, writing while the primary is killed.
    let client = client_through_sentinel(&stack, "app:failover", 40, 0.5);
    let survivors = [format!("{}-redis-1", stack.name), format!("{}-redis-2", stack.name)];
    let sentinel_names: Vec<String> = ["redis-sentinel", "redis-sentinel-1", "redis-sentinel-2"]
        .iter()
        .map(|s| format!("{}-{s}", stack.name))
        .collect();
    let before: Vec<String> = survivors.iter().chain(&sentinel_names).map(|c| id(c)).collect();
    let killed = Command::new("docker").args(["kill", &format!("{}-redis", stack.name)]).output().unwrap();
    assert!(killed.status.success(), "{}", text(&killed));

    // Sentinel promotes a replica; status says which, and that the old primary is down.
    let promoted = Instant::now();
    let primary = loop {
        let roles = roles(&stack);
        if let Some((alias, _)) = roles.iter().find(|(alias, role)| *alias != "redis" && *role == "primary") {
            assert_eq!(roles.get("redis").map(String::as_str), Some("down"), "{roles:?}");
            break alias.clone();
        }
        // A Sentinel stalled past 2 s (a loaded machine) stays in TILT mode for 30 s, and a
        // failed election is tried again after 20 s: 90 s leaves room for both.
        if promoted.elapsed() > Duration::from_secs(90) {
            let logs: Vec<String> = sentinel_names.iter().map(|s| format!("{s}:\n{}", logs(s))).collect();
            panic!("no replica promoted: {roles:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("status named {primary} the primary {:.1} s after the kill", promoted.elapsed().as_secs_f64());
    let status = stack.cmd("status", &[]).output().unwrap();
    assert!(text(&status).contains(&format!("redis: the primary is {primary}")), "{}", text(&status));

    let report = client.report();
    println!("redis failover through Sentinel: {report}");
    println!("{}", logs(&format!("{}-redis-sentinel", stack.name)));
    // Writes failed while no primary answered, then went on at the new one, found through
    // Sentinel without a new configuration.
    assert_eq!(report["primary"], primary.as_str(), "{report}");
    // The last change is back to writes that succeed, and the outage ended well before the
    // client did.
    let changes = report["changes"].as_array().unwrap();
    let last = changes.last().unwrap();
    let resumed = changes.len() > 2 && last[1] == "ok" && last[0].as_f64() < Some(35.0);
    assert!(resumed, "writes did not resume: {report}\n{}", logs(&format!("{}-redis-sentinel", stack.name)));
    assert!(report["value"].as_i64() >= report["acknowledged"].as_i64(), "{report}");

    // The next up brings the old primary back as a replica of the new one, recreating nothing.
    let up = stack.cmd("up", &[]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains(&format!("redis: now a replica of {primary}")), "{}", text(&up));
    let after: Vec<String> = survivors.iter().chain(&sentinel_names).map(|c| id(c)).collect();
    assert_eq!(before, after, "a survivor was recreated");
    let roles = roles(&stack);
    assert_eq!(roles.get("redis").map(String::as_str), Some("replica"), "{roles:?}");
    assert_eq!(roles.get(&primary).map(String::as_str), Some("primary"), "{roles:?}");
    assert!(stack.env("REDIS_URL").ends_with(&format!(":{}/0", port_of(&stack, &primary))));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts.get("redis.replica.0.streams").map(String::as_str), Some("pass"), "{verdicts:?}");

    // The primary (not node 0 now) killed and `up` run at once, before the Sentinels decide:
    // node 0 does not wait on the dead primary's address to call itself usable, the dead node
    // is started again, and the stack settles on whichever primary the Sentinels then name.
    let killed = Command::new("docker").args(["kill", &format!("{}-{primary}", stack.name)]).output().unwrap();
    assert!(killed.status.success(), "{}", text(&killed));
    let up = stack.cmd("up", &[]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");

    // Every credential and certificate on every node and Sentinel rotates under the same
    // client, which keeps the logins it read at start: no write fails. Its calls wait up to 5 s
    // (redis-py waits forever by default): on a loaded machine a node's fsync stalled it past
    // the half second the failover client allows itself to notice a dead primary.
    let client = client_through_sentinel(&stack, "app:rotation", 25, 5.0);
    let rotated = stack.cmd("rotate", &["--force"]).output().unwrap();
    assert!(rotated.status.success(), "{}", text(&rotated));
    for credential in ["redis/replica", "redis/sentinel", "redis-sentinel/discovery", "certificate/redis-sentinel"] {
        assert!(text(&rotated).contains(&format!("{credential}: rotated")), "{}", text(&rotated));
    }
    let report = client.report();
    assert_eq!(report["failed"], 0, "{report}");
    // What rotation delivered is recorded on every node: the next up changes nothing.
    let up = stack.cmd("up", &["-o", "json", "--no-verify"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let document: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    for service in document["services"].as_array().unwrap() {
        assert_eq!(service["change"], "unchanged", "{service}");
    }
}

/// The redis-py client through Sentinel on the stack network, started, its first write done.
struct Client {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

fn client_through_sentinel(stack: &DockerStack, key: &str, seconds: u32, timeout: f64) -> Client {
    let env = stack.cmd("env", &["-o", "json"]).output().unwrap();
    assert!(env.status.success(), "{}", text(&env));
    let file = format!("client/{}.json", key.replace(':', "-"));
    let env_file = stack.sandbox.write(&file, &String::from_utf8_lossy(&env.stdout));
    let root = stack.sandbox.stack();
    let mut child = Command::new("docker")
        .args(["run", "--rm", "--network", &format!("{}-net", stack.name)])
        // As the stack's Redis nodes and Sentinels resolve: a name that is gone fails within a
        // second (this machine's resolver has no upstream to answer it).
        .args(["--dns-opt", "timeout:1", "--dns-opt", "attempts:1"])
        .args(["-v", &format!("{}:/client/env.json:ro", env_file.display())])
        .args(["-v", &format!("{}:{}:ro", root.display(), root.display())])
        .args([CLIENT_IMAGE, "-c", CLIENT, key, &seconds.to_string(), &timeout.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    if lines.next().and_then(Result::ok).as_deref() != Some("ready") {
        panic!("the client never wrote: {}", text(&child.wait_with_output().unwrap()));
    }
    Client { child, lines }
}

impl Client {
    /// What the client saw, once it is done.
    fn report(mut self) -> serde_json::Value {
        let report = self.lines.next().and_then(Result::ok).unwrap_or_default();
        let exited = self.child.wait_with_output().unwrap();
        assert!(exited.status.success(), "{report}\n{}", text(&exited));
        serde_json::from_str(&report).unwrap_or_else(|err| panic!("{err}: {report}"))
    }
}

/// A container's log, its last lines.
fn logs(container: &str) -> String {
    text(&Command::new("docker").args(["logs", "--tail", "40", container]).output().unwrap())
}

/// The host port of Redis node `alias` (`redis-2` is Redis's port + 2).
fn port_of(stack: &DockerStack, alias: &str) -> u16 {
    let base: u16 = stack.args.iter().find_map(|a| a.strip_prefix("network.ports.redis=")?.parse().ok()).unwrap();
    base + alias.strip_prefix("redis-").map_or(0, |n| n.parse::<u16>().unwrap())
}

#[test]
fn a_redis_replica_added_on_day_two_copies_the_primary_without_touching_it() {
    if !docker_available("sentinel_day_two") {
        return;
    }
    let stack =
        DockerStack::new("sentinel_day_two").services(&["redis"]).set("redis.replicas=1").set("redis.sentinels=3");
    let up = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let written = crate::common::redis(&stack, "app", "redis/app", &["SET", "app:before", "kept"]);
    assert_eq!(written.trim(), "OK", "{written}");
    let primary = format!("{}-redis", stack.name);
    let before = id(&primary);

    let plan = stack.cmd("plan", &["--set", "redis.replicas=2"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("redis-2: created"), "{}", text(&plan));
    let up = stack.cmd("up", &["--set", "redis.replicas=2"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("redis-2: now a replica of redis"), "{}", text(&up));
    assert_eq!(id(&primary), before, "the primary was recreated");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for check in ["redis.sentinels", "redis.replica.2.streams", "redis.replica.2.write_refused"] {
        assert_eq!(verdicts.get(check).map(String::as_str), Some("pass"), "{check}: {verdicts:?}");
    }
    // The new replica holds what the primary held before it existed (redis-cli at its port).
    let password = crate::common::version_with(&crate::common::record(&stack, "redis/app"), "current").unwrap();
    let read = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port_of(&stack, "redis-2").to_string(), "--tls"])
        .args(["--cacert", &stack.env("REDIS_CA_CERT"), "--user", "app", "--no-auth-warning"])
        .args(["--pass", password["value"].as_str().unwrap(), "GET", "app:before"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "kept", "{}", text(&read));

    // The Sentinels stopped and started again in another order, as after a reboot, come back
    // under other addresses: they announce their aliases, so none counts a stale address as
    // one more Sentinel, and the next up settles.
    let sentinels: Vec<String> = ["redis-sentinel", "redis-sentinel-1", "redis-sentinel-2"]
        .iter()
        .map(|s| format!("{}-{s}", stack.name))
        .collect();
    let addresses = || sentinels.iter().map(|c| address(c)).collect::<Vec<_>>();
    let before = addresses();
    let stopped = Command::new("docker").arg("stop").args(&sentinels).output().unwrap();
    assert!(stopped.status.success(), "{}", text(&stopped));
    // The engine gives a starting container the lowest free address: the one that had the
    // highest starts first.
    let mut by_address: Vec<(std::net::Ipv4Addr, &String)> =
        before.iter().map(|a| a.parse().unwrap()).zip(&sentinels).collect();
    by_address.sort();
    for (_, sentinel) in by_address.iter().rev() {
        let started = Command::new("docker").args(["start", sentinel]).output().unwrap();
        assert!(started.status.success(), "{}", text(&started));
    }
    assert_ne!(addresses(), before, "the Sentinels came back under the same addresses");
    let up = stack.cmd("up", &["--set", "redis.replicas=2"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(!text(&up).contains("SENTINEL RESET"), "{}", text(&up));

    // The replica taken out again: up removes it, and the Sentinels, which never forget a
    // replica by themselves, are told to.
    let up = stack.cmd("up", &[]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("-redis-2: removed, a replica beyond redis.replicas"), "{}", text(&up));
    assert!(
        text(&up).contains("redis-sentinel: told to forget the nodes that no longer run (SENTINEL RESET)"),
        "{}",
        text(&up)
    );
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts.get("redis.sentinels").map(String::as_str), Some("pass"), "{verdicts:?}");
}

/// A container's address on its stack's network.
fn address(container: &str) -> String {
    let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
    let out = Command::new("docker").args(["inspect", "-f", format, container]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
