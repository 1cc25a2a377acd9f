//! Tidy tests: read `src/` and hold the code to the boundaries ARCHITECTURE.md states. Each
//! test names the rule it enforces; a failure lists every offending line.

use std::path::{Path, PathBuf};

/// A line of code under `src/`: its file (relative to `src/`), number and text.
struct Line {
    file: String,
    number: usize,
    text: String,
}

/// Every code line of `src/`: comment lines and test code (`tests.rs` files, and whatever
/// follows a `#[cfg(test)]` line, where the test module of a file starts) are left out.
fn code_lines() -> Vec<Line> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    assert!(files.len() > 40, "src/ has {} Rust files; the walk is broken", files.len());
    let mut lines = Vec::new();
    for path in files {
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        if file.ends_with("/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            lines.push(Line { file: file.clone(), number: index + 1, text: line.to_owned() });
        }
    }
    lines
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines outside `allowed` files that contain any of `needles`.
fn offenders(needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    offending_lines(allowed, |text| needles.iter().any(|n| text.contains(n)))
}

fn offending_lines(allowed: impl Fn(&str) -> bool, offends: impl Fn(&str) -> bool) -> Vec<String> {
    code_lines()
        .into_iter()
        .filter(|line| !allowed(&line.file) && offends(&line.text))
        .map(|line| format!("src/{}:{}: {}", line.file, line.number, line.text.trim()))
        .collect()
}

/// The string literals of a line (without their quotes).
fn literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut literal = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    '"' if !escaped => break,
                    '\\' if !escaped => escaped = true,
                    _ => escaped = false,
                }
                literal.push(c);
            }
            found.push(literal);
        }
    }
    found
}

fn assert_none(rule: &str, offenders: Vec<String>) {
    assert!(offenders.is_empty(), "{rule}:\n{}", offenders.join("\n"));
}

/// The front layer: the command line, settings, output and the commands. Everything else is
/// below it.
fn front(file: &str) -> bool {
    matches!(file, "lib.rs" | "main.rs" | "cli.rs" | "settings.rs" | "output.rs") || file.starts_with("commands/")
}

#[test]
fn dependencies_point_down_from_the_commands() {
    assert_none(
        "a module below the commands names the front layer; report through return values instead",
        offenders(&["crate::commands", "crate::cli", "crate::output"], front),
    );
    assert_none("cli holds clap types only", offenders(&["crate::"], |file| file != "cli.rs"));
}

#[test]
fn only_runtime_names_bollard() {
    assert_none("bollard outside runtime", offenders(&["bollard"], |file| file.starts_with("runtime/")));
}

#[test]
fn only_the_aws_store_names_the_aws_sdk() {
    assert_none(
        "the AWS SDK outside secrets/aws.rs",
        offenders(&["aws_sdk_", "aws_config", "aws_smithy", "aws_types"], |file| file == "secrets/aws.rs"),
    );
}

#[test]
fn only_pki_names_rcgen() {
    assert_none("rcgen outside pki", offenders(&["rcgen"], |file| file.starts_with("pki/")));
}

#[test]
fn only_cli_names_clap_and_only_output_names_indicatif() {
    assert_none(
        "clap outside cli (and main's parse)",
        offenders(&["clap::"], |file| file == "cli.rs" || file == "main.rs"),
    );
    assert_none("indicatif outside output", offenders(&["indicatif"], |file| file == "output.rs"));
}

#[test]
fn only_output_prints() {
    assert_none(
        "printing outside output (main prints the error chain)",
        offenders(&["println!", "print!(", "eprintln!", "eprint!(", "stdout()", "stderr()", "dbg!("], |file| {
            file == "output.rs" || file == "main.rs"
        }),
    );
}

#[test]
fn only_fsio_writes_files() {
    assert_none(
        "a file written outside fsio",
        offenders(
            &[
                "fs::write",
                "fs::rename",
                "File::create",
                "OpenOptions",
                "fs::create_dir",
                "DirBuilder",
                "fs::set_permissions",
            ],
            |file| file == "fsio.rs",
        ),
    );
}

#[test]
fn one_async_runtime_per_process() {
    assert_none(
        "an async runtime built outside lib.rs's run",
        offenders(&["Runtime::new", "runtime::Builder", "#[tokio::main]"], |file| file == "lib.rs"),
    );
}

#[test]
fn only_layout_spells_stack_directory_paths() {
    let paths = [
        "ca/ca.",
        "certs/",
        "config/postgres",
        "config/redis",
        "config/qdrant",
        "config/pgbouncer",
        "secrets/",
        "systemd/hardstack",
        "docker-compose.yml",
        "connections.json",
        "hardstack.toml",
        "hardstack-manifest",
        ".pending",
    ];
    // Template names (`docker-compose.yml.tera`) are names in the binary, not paths of the
    // stack directory.
    let spells_a_path =
        |text: &str| literals(text).iter().any(|l| !l.ends_with(".tera") && paths.iter().any(|p| l.contains(p)));
    assert_none(
        "a stack-directory path spelled outside layout",
        offending_lines(|file| file.starts_with("layout/"), spells_a_path),
    );
}

/// Every loop that waits for something waits through `retry::Backoff`; the rotation daemon's
/// sleep between passes is a schedule, not a wait for a condition.
#[test]
fn only_the_retry_helper_sleeps() {
    assert_none(
        "a sleep outside retry.rs (wait with retry::Backoff)",
        offenders(&["thread::sleep", "time::sleep"], |file| file == "retry.rs" || file == "commands/rotate.rs"),
    );
}

#[test]
fn the_environment_error_lives_in_its_own_module() {
    assert_none(
        "EnvironmentError defined outside error.rs",
        offenders(&["struct EnvironmentError"], |file| file == "error.rs"),
    );
}

#[test]
fn the_tidy_reader_finds_literals_and_skips_comments_and_tests() {
    assert_eq!(literals(r#"let a = format!("certs/{x}") + "b\"c";"#), ["certs/{x}", "b\\\"c"]);
    let lines = code_lines();
    assert!(lines.iter().any(|l| l.file == "layout/files.rs" && l.text.contains("\"ca/ca.crt\"")));
    assert!(!lines.iter().any(|l| l.text.trim_start().starts_with("//")));
    assert!(!lines.iter().any(|l| l.text.contains("#[test]")), "test code is read");
}

#[test]
fn layout_is_a_leaf() {
    let reaches = offending_lines(
        |file| !file.starts_with("layout/"),
        |text| text.match_indices("crate::").any(|(at, _)| !text[at..].starts_with("crate::profile")),
    );
    assert_none("layout depends on the profile model only", reaches);
}

#[test]
fn the_pure_modules_name_no_engine_store_or_network() {
    let pure = |file: &str| {
        file.starts_with("layout/")
            || file == "endpoint.rs"
            || file == "containers.rs"
            || file == "node.rs"
            || file == "peers.rs"
            || file == "sentinel.rs"
            || file == "replica.rs"
            || file == "secrets/mod.rs"
            || file.starts_with("pki/")
            || file.starts_with("render/")
    };
    assert_none(
        "a pure module names the engine, a secret store or the network",
        offenders(
            &["runtime::", "Engine", "store::", "SecretStore", "tokio", "reqwest", "redis::", "probe::", "fsio::"],
            |file| !pure(file),
        ),
    );
}

#[test]
fn skipped_is_printed_from_one_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut offenders = Vec::new();
    for path in files {
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (index, line) in text.lines().enumerate() {
            let prints = ["println!", "eprintln!", "print!", "eprint!"].iter().any(|m| line.contains(m));
            if prints && line.contains("SKIPPED") && !(file == "common/mod.rs" && line.contains("{why}")) {
                offenders.push(format!("tests/it/{file}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert_none("SKIPPED printed outside common::skipped", offenders);
}

#[test]
fn no_source_file_is_over_700_lines() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples"] {
        collect(&manifest.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .map(|path| (path, std::fs::read_to_string(path).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 700)
        .map(|(path, lines)| format!("{}: {lines} lines", path.strip_prefix(manifest).unwrap().display()))
        .collect();
    assert_none("a source file over 700 lines (split it by concern)", long);
}

#[test]
fn every_test_architecture_names_exists() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(manifest.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    collect(&manifest.join("src"), &mut files);
    collect(&manifest.join("tests"), &mut files);
    let code: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect::<Vec<_>>().join("\n");
    // Names in backticks within the invariants' italic test lists: `module::name` or
    // `module::tests::name`; the last segment is the test function.
    let mut missing = Vec::new();
    let mut named = 0;
    for part in architecture.split('`').skip(1).step_by(2) {
        let words: Vec<&str> = part.split("::").collect();
        let Some(name) = words.last() else { continue };
        let is_test_name = words.len() >= 2
            && name.contains('_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !is_test_name {
            continue;
        }
        named += 1;
        if !code.contains(&format!("fn {name}(")) {
            missing.push(part.to_owned());
        }
    }
    assert!(named > 30, "ARCHITECTURE.md names {named} tests; the reading is broken");
    assert_none("a test ARCHITECTURE.md names does not exist", missing);
}
