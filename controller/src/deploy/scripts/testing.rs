//! A deploy root in a temporary directory for the scripts' tests: the scripts run in it with
//! the real `sh`, as on a host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::setup_dirs;
use crate::shell::Script;

/// Runs `command` with `sh -c`.
pub fn sh(command: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .expect("run sh")
}

pub struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// A deploy root after `setup`.
    pub fn set_up() -> Host {
        let host = Host {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        host.run(&setup_dirs(&host.root()));
        host
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Runs `script`, which must succeed; returns its stdout.
    pub fn run(&self, script: &Script) -> String {
        let out = sh(&script.render());
        assert!(
            out.status.success(),
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `script` with a `grep` that, once it has found a match, runs `then` (with `$L`
    /// the lock file): another process acting between a script's check and its next step.
    pub fn run_racing(&self, script: &Script, then: &str) -> String {
        let real = sh("command -v grep");
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        let shim = self.path().join("shim");
        std::fs::create_dir_all(&shim).expect("mkdir shim");
        let grep = shim.join("grep");
        std::fs::write(
            &grep,
            format!("#!/bin/sh\n{real} \"$@\"; rc=$?\n[ \"$rc\" -ne 0 ] || sh -c \"$THEN\"\nexit \"$rc\"\n"),
        )
        .expect("write the grep shim");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&grep, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    shim.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("THEN", then)
            .env("L", self.lock())
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `script`, which must fail; returns its exit status and stderr.
    pub fn fails(&self, script: &Script) -> (i32, String) {
        let out = sh(&script.render());
        assert!(!out.status.success(), "{out:?}");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn lock(&self) -> PathBuf {
        self.path().join(".pmfleet/lock")
    }

    pub fn lock_content(&self) -> String {
        std::fs::read_to_string(self.lock()).unwrap_or_default()
    }

    /// The lock, held by run `id`.
    pub fn lock_for(&self, id: &str) {
        std::fs::write(
            self.lock(),
            format!("{{\"holder\":\"t\",\"deploy_id\":\"{id}\",\"action\":\"deploy\",\"since\":\"t\",\"pid\":1}}\n"),
        )
        .expect("write the lock");
    }

    pub fn history(&self) -> PathBuf {
        self.path().join(".pmfleet/history.jsonl")
    }

    pub fn rollout(&self) -> PathBuf {
        self.path().join(".pmfleet/rollout.json")
    }

    /// A complete release `id`.
    pub fn release(&self, id: &str) {
        std::fs::create_dir_all(self.path().join("releases").join(id)).expect("mkdir release");
        std::fs::write(self.path().join(".pmfleet/prepared").join(id), "").expect("mark");
    }

    pub fn has_release(&self, id: &str) -> bool {
        self.path().join("releases").join(id).exists()
    }

    /// `current` → `releases/<id>`.
    pub fn current(&self, id: &str) {
        let link = self.path().join("current");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("releases/{id}"), link).expect("symlink current");
    }

    pub fn current_target(&self) -> Option<String> {
        std::fs::read_link(self.path().join("current"))
            .ok()
            .map(|t| t.display().to_string())
    }
}
