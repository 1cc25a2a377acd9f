//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The built binary with a clean environment, run in `cwd`.
pub fn hardstack(cwd: &Path) -> Command {
    let mut cmd = Command::cargo_bin("hardstack").expect("the binary is built by cargo test");
    cmd.current_dir(cwd).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("NO_COLOR", "1");
    cmd
}

/// A temporary directory and the stack directory inside it (not yet created).
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { tmp: tempfile::tempdir().expect("a temporary directory") }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn stack(&self) -> PathBuf {
        self.tmp.path().join("stack")
    }

    pub fn cmd(&self) -> Command {
        hardstack(self.root())
    }

    /// Runs `init` with extra arguments and asserts success.
    pub fn init(&self, args: &[&str]) -> String {
        let out = self.cmd().arg("init").args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.stack().join(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}
