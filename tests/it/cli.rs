use std::os::unix::fs::PermissionsExt as _;

use predicates::prelude::*;

use crate::common::{Sandbox, files_under};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_private_bundle() {
    let sandbox = Sandbox::new();
    let stdout = sandbox.init(&[]);
    assert!(stdout.contains("file(s) created"), "{stdout}");
    let stack = sandbox.stack();
    assert_eq!(mode(&stack), 0o700);
    for file in files_under(&stack) {
        let path = stack.join(&file);
        // The modes come from the layout, the table render, bundle and audit read too.
        let expected = hardstack::layout::expected_mode(&file).unwrap_or_else(|| panic!("{file} is not in the layout"));
        assert_eq!(mode(&path), expected.bits(), "{file}");
        let mut dir = path.parent().unwrap();
        while dir != stack {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
            dir = dir.parent().unwrap();
        }
    }
    for expected in [
        "ca/ca.crt",
        "ca/ca.key",
        "certs/postgres/server.key",
        "certs/clients/app/client.crt",
        "config/postgres/pg_hba.conf",
        "config/redis/users.acl",
        "config/qdrant/config.yaml",
        "docker-compose.yml",
        "connections.json",
        "hardstack.toml",
    ] {
        assert!(stack.join(expected).exists(), "{expected}");
    }
}

#[test]
fn init_prints_no_secret() {
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().args(["init", "-v"]).output().unwrap();
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("secrets/postgres/app.json"), "-v lists the files it wrote: {printed}");
    let secrets = files_under(&sandbox.stack().join("secrets"));
    // The dev profile's secrets: PostgreSQL's superuser, admin, health, backup and app; Redis's
    // admin, health, backup and app; Qdrant's two keys; the app user's key at the Qdrant front.
    assert_eq!(secrets.len(), 12, "{secrets:?}");
    for file in secrets {
        let record: serde_json::Value = serde_json::from_slice(&sandbox.read(&format!("secrets/{file}"))).unwrap();
        let value = record["versions"][0]["value"].as_str().unwrap();
        assert_eq!(value.len(), 40);
        assert!(!printed.contains(value), "{file} printed");
    }
}

#[test]
fn second_init_writes_nothing_and_says_so() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    // The lock file says who last held the lock: each run writes it.
    let before: Vec<_> = files_under(&sandbox.stack())
        .iter()
        .filter(|f| *f != ".hardstack.lock")
        .map(|f| (f.clone(), sandbox.read(f), std::fs::metadata(sandbox.stack().join(f)).unwrap().modified().unwrap()))
        .collect();
    let stdout = sandbox.init(&[]);
    assert!(stdout.contains("up to date") && stdout.contains("nothing written"), "{stdout}");
    let after: Vec<_> = files_under(&sandbox.stack())
        .iter()
        .filter(|f| *f != ".hardstack.lock")
        .map(|f| (f.clone(), sandbox.read(f), std::fs::metadata(sandbox.stack().join(f)).unwrap().modified().unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn changed_profile_rerenders_configs_and_keeps_secrets_and_certificates() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    let kept = [
        "ca/ca.key",
        "ca/ca.crt",
        "certs/postgres/server.key",
        "certs/clients/app/client.crt",
        "secrets/postgres/app.json",
        "secrets/redis/app.json",
        "config/redis/users.acl",
        "config/postgres/initdb/10-hardstack.sql",
    ];
    let before: Vec<Vec<u8>> = kept.iter().map(|f| sandbox.read(f)).collect();
    let stdout =
        sandbox.init(&["--set", "network.ports.postgres=5433", "--set", "postgres.slow_statement_ms=250", "-v"]);
    assert!(stdout.contains("updated"), "{stdout}");
    let conf = String::from_utf8(sandbox.read("config/postgres/postgresql.conf")).unwrap();
    assert!(conf.contains("log_min_duration_statement = 250"));
    let compose = String::from_utf8(sandbox.read("docker-compose.yml")).unwrap();
    assert!(compose.contains("127.0.0.1:5433:5432"));
    let after: Vec<Vec<u8>> = kept.iter().map(|f| sandbox.read(f)).collect();
    assert_eq!(before, after, "secrets and certificates must be kept");
    // The directory now remembers the profile: a plain init is a no-op.
    assert!(sandbox.init(&[]).contains("nothing written"));
}

#[test]
fn foreign_file_is_not_overwritten_without_force() {
    let sandbox = Sandbox::new();
    let mine = sandbox.write("stack/docker-compose.yml", "services: {}\n# mine\n");
    sandbox.cmd().arg("init").assert().code(1).stderr(
        predicate::str::contains("refusing to overwrite 1 file(s)")
            .and(predicate::str::contains("docker-compose.yml (not written by hardstack)"))
            .and(predicate::str::contains("--force")),
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "services: {}\n# mine\n");
    assert!(!sandbox.stack().join("ca/ca.key").exists(), "nothing is written when init refuses");
    sandbox.init(&["--force"]);
    assert!(std::fs::read_to_string(&mine).unwrap().contains("Generated by hardstack"));
}

#[test]
fn edited_config_is_not_overwritten_without_force() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    let hba = sandbox.stack().join("config/postgres/pg_hba.conf");
    std::fs::write(&hba, "host all all all trust\n").unwrap();
    sandbox
        .cmd()
        .args(["init", "--set", "postgres.slow_statement_ms=100"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pg_hba.conf (edited since hardstack wrote it)"));
    assert_eq!(std::fs::read_to_string(&hba).unwrap(), "host all all all trust\n");
}

#[test]
fn every_shipped_profile_initialises() {
    for profile in ["dev", "test", "prod"] {
        let sandbox = Sandbox::new();
        sandbox.init(&["--profile", profile]);
        let resolved = String::from_utf8(sandbox.read("hardstack.toml")).unwrap();
        assert!(resolved.contains(&format!("name = \"{profile}\"")));
    }
}

#[test]
fn user_profile_extends_a_shipped_one() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mine.toml",
        "extends = \"dev\"\nname = \"mine\"\n\n[stack]\nname = \"mine\"\nservices = [\"postgres\"]\n",
    );
    sandbox.init(&["--profile", "mine.toml"]);
    let compose = String::from_utf8(sandbox.read("docker-compose.yml")).unwrap();
    assert!(compose.contains("container_name: mine-postgres"));
    assert!(!compose.contains("redis"));
    assert!(!sandbox.stack().join("config/redis").exists());
}

#[test]
fn templates_dir_overrides_one_template() {
    let sandbox = Sandbox::new();
    sandbox.write("tpl/postgres/pg_ident.conf.tera", "# custom ident for {{ stack }}\n");
    sandbox.init(&["--templates", "tpl"]);
    assert_eq!(sandbox.read("config/postgres/pg_ident.conf"), b"# custom ident for hardstack-dev\n");
    // The others stay embedded.
    assert!(String::from_utf8(sandbox.read("config/postgres/pg_hba.conf")).unwrap().contains("hostnossl"));
}

/// Runs init with `args`, asserts exit code 1, the stderr fragments, and that nothing was written.
fn rejects(sandbox: &Sandbox, args: &[&str], fragments: &[&str]) {
    let out = sandbox.cmd().arg("init").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for fragment in fragments {
        assert!(stderr.contains(fragment), "expected `{fragment}` in: {stderr}");
    }
    assert!(!sandbox.stack().exists(), "nothing may be written on bad input: {stderr}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", "extends = \"dev\"\n\n[postgres]\nworkload = \"web\"\nshared_bufers = \"1GB\"\n");
    rejects(
        &sandbox,
        &["--profile", "p.toml"],
        &["p.toml:5", "unknown key postgres.shared_bufers", "check its spelling"],
    );
}

#[test]
fn invalid_value_names_file_line_and_key() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", "extends = \"dev\"\n[postgres]\nworkload = \"fast\"\n");
    rejects(&sandbox, &["--profile", "p.toml"], &["p.toml:3", "key postgres.workload", "unknown variant `fast`"]);
}

#[test]
fn semantic_error_names_file_line_and_key() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", "extends = \"dev\"\n\n[redis]\nmaxmemory = \"4GiB\"\n");
    rejects(
        &sandbox,
        &["--profile", "p.toml"],
        &["p.toml:4", "key redis.maxmemory", "must be below resources.redis.memory"],
    );
}

#[test]
fn invalid_toml_names_the_line() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", "extends = \"dev\"\n[network\nports = 1\n");
    rejects(&sandbox, &["--profile", "p.toml"], &["p.toml:2", "not valid TOML"]);
}

#[test]
fn set_of_unknown_key_names_the_flag() {
    let sandbox = Sandbox::new();
    rejects(
        &sandbox,
        &["--set", "network.portz.postgres=1"],
        &["--set network.portz.postgres=1", "unknown key network.portz.postgres"],
    );
}

#[test]
fn set_of_invalid_value_names_the_flag() {
    let sandbox = Sandbox::new();
    rejects(
        &sandbox,
        &["--set", "network.ports.redis=eighty"],
        &["--set network.ports.redis=eighty", "key network.ports.redis", "invalid type"],
    );
    rejects(
        &sandbox,
        &["--set", "network.ports.redis=5432"],
        &["--set network.ports.redis=5432", "port 5432 is already used by another service"],
    );
}

#[test]
fn missing_profile_file_is_named() {
    let sandbox = Sandbox::new();
    rejects(&sandbox, &["--profile", "nope.toml"], &["reading profile nope.toml", "dev, test, prod"]);
}

#[test]
fn reserved_user_name_is_rejected_with_its_line() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", "extends = \"dev\"\n\n[[users]]\nname = \"postgres\"\ndatabase = \"x\"\nredis_keys = \"x:*\"\nqdrant = \"none\"\n");
    rejects(&sandbox, &["--profile", "p.toml"], &["p.toml:4", "key users.0.name", "reserved"]);
}

#[test]
fn unreachable_engine_is_an_environment_failure() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    for command in ["up", "status", "down"] {
        sandbox.cmd().arg(command).env("DOCKER_HOST", "unix:///nonexistent/docker.sock").assert().code(2).stderr(
            // The endpoint and where it came from.
            predicate::str::contains(
                "the Docker engine at unix:///nonexistent/docker.sock (DOCKER_HOST) does not answer",
            ),
        );
    }
}

#[test]
fn audit_passes_a_generated_bundle_and_names_a_weakened_rule() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--profile", "prod"]);
    sandbox.cmd().args(["audit"]).assert().success().stdout(predicate::str::contains("0 failed"));
    let conf = sandbox.stack().join("config/postgres/postgresql.conf");
    let text = std::fs::read_to_string(&conf).unwrap().replace("ssl = on", "ssl = off");
    std::fs::write(&conf, text).unwrap();
    sandbox.cmd().args(["audit", "stack"]).assert().code(1).stdout(
        predicate::str::contains("audit.pg.ssl_on")
            .and(predicate::str::contains("FAIL"))
            .and(predicate::str::contains("set ssl = on")),
    );
    let out = sandbox.cmd().args(["audit", "-o", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "hardstack.checks/v1");
    assert_eq!(report["command"], "audit");
    assert_eq!(report["summary"]["fail"], 1);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["audit.pg.ssl_on"]);
}

#[test]
fn audit_of_a_missing_directory_is_a_clear_error() {
    let sandbox = Sandbox::new();
    sandbox
        .cmd()
        .args(["audit", "nowhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nowhere is not a directory"));
}

#[test]
fn init_emits_systemd_services_and_timers_for_rotation_backup_and_the_restore_test() {
    // Without the flag, nothing about systemd is written.
    let plain = Sandbox::new();
    plain.init(&[]);
    assert!(!plain.stack().join("systemd").exists());

    let sandbox = Sandbox::new();
    let stdout = sandbox.init(&["--systemd", "--set", "rotation.schedule=*-*-* 03:00:00"]);
    let (service_path, timer_path) =
        ("systemd/hardstack-rotate-hardstack-dev.service", "systemd/hardstack-rotate-hardstack-dev.timer");
    assert!(stdout.contains(&format!("created: {service_path}")), "{stdout}");
    assert!(stdout.contains(&format!("created: {timer_path}")), "{stdout}");
    let service = String::from_utf8(sandbox.read(service_path)).unwrap();
    let stack = sandbox.stack().canonicalize().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("hardstack");
    assert!(service.contains(&format!("ExecStart={} rotate --dir {}", binary.display(), stack.display())), "{service}");
    assert!(service.contains("Type=oneshot"));
    let timer = String::from_utf8(sandbox.read(timer_path)).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 03:00:00"), "{timer}");
    assert!(timer.contains("Unit=hardstack-rotate-hardstack-dev.service"));

    // Backups and their restore test on the profile's own schedules.
    for (job, arguments, schedule) in [("backup", "backup", "daily"), ("restore-test", "backup --test", "weekly")] {
        let service =
            String::from_utf8(sandbox.read(&format!("systemd/hardstack-{job}-hardstack-dev.service"))).unwrap();
        assert!(
            service.contains(&format!("ExecStart={} {arguments} --dir {}", binary.display(), stack.display())),
            "{service}"
        );
        let timer = String::from_utf8(sandbox.read(&format!("systemd/hardstack-{job}-hardstack-dev.timer"))).unwrap();
        assert!(timer.contains(&format!("OnCalendar={schedule}")), "{timer}");
        assert!(timer.contains(&format!("Unit=hardstack-{job}-hardstack-dev.service")), "{timer}");
    }

    // Again, with the same schedule: the units are unchanged and nothing about them is said.
    let modified = std::fs::metadata(sandbox.stack().join(service_path)).unwrap().modified().unwrap();
    let again = sandbox.init(&["--systemd", "--set", "rotation.schedule=*-*-* 03:00:00"]);
    assert!(!again.contains("systemd/"), "{again}");
    assert_eq!(std::fs::metadata(sandbox.stack().join(service_path)).unwrap().modified().unwrap(), modified);
    assert_eq!(sandbox.read(service_path), service.as_bytes());
}

#[test]
fn completion_scripts_parse_in_their_shells() {
    let sandbox = Sandbox::new();
    for (shell, check) in [("bash", vec!["-n"]), ("zsh", vec!["-n"]), ("fish", vec!["--no-execute"])] {
        let out = sandbox.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("hardstack"), "{shell}: an empty script");
        let path = sandbox.write(&format!("completion.{shell}"), &String::from_utf8_lossy(&out.stdout));
        let Ok(parsed) = std::process::Command::new(shell).args(&check).arg(&path).output() else {
            assert!(std::env::var_os("CI").is_none(), "{shell} is missing in CI (.ci/setup installs it)");
            crate::common::skipped(&format!("no {shell} to parse its completion script"));
            continue;
        };
        assert!(parsed.status.success(), "{shell}: {}", String::from_utf8_lossy(&parsed.stderr));
    }
}

#[test]
fn version_names_the_commit() {
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert_eq!(version, format!("hardstack {} ({head})", env!("CARGO_PKG_VERSION")));
}

/// docs/commands.md is every command's `--help`, as the binary prints it. After a change to the
/// help, `HARDSTACK_UPDATE_DOCS=1 cargo test --test it -- cli::docs_commands` writes it again.
#[test]
fn docs_commands_is_the_help_of_every_command() {
    let sandbox = Sandbox::new();
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["up"],
        &["plan"],
        &["status"],
        &["env"],
        &["connect"],
        &["verify"],
        &["audit"],
        &["doctor"],
        &["rotate"],
        &["backup"],
        &["restore"],
        &["down"],
        &["switchover"],
        &["profile", "show"],
        &["profile", "schema"],
        &["completions"],
    ];
    let mut expected = String::from(
        "# Commands\n\nEvery command's `--help`, as the binary prints it (a test keeps this page equal to it).\nThe exit codes are in [json.md](json.md); every help screen ends with them.\n",
    );
    for command in commands {
        let out = sandbox.cmd().args(*command).arg("--help").output().unwrap();
        assert!(out.status.success(), "{command:?}: {}", crate::common::text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        let help = help.split("\nExit codes:").next().unwrap().trim_end();
        let name = if command.is_empty() { "hardstack".to_owned() } else { format!("hardstack {}", command.join(" ")) };
        expected.push_str(&format!("\n## {name}\n\n```text\n{help}\n```\n"));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md");
    if std::env::var_os("HARDSTACK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/commands.md differs from the help; HARDSTACK_UPDATE_DOCS=1 cargo test --test it -- cli::docs_commands writes it"
    );
}
