//! Real git repositories made by a test, with the real `git` command.
//!
//! They live under `/var/tmp/pmfleet-tests`, not `/tmp`: test hosts may have a private `/tmp`,
//! and with `fetch: host` they read the repository by its path.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Where test repositories and projects are made (visible to every test host).
pub fn scratch_root() -> PathBuf {
    let root = PathBuf::from("/var/tmp/pmfleet-tests");
    let _ = std::fs::create_dir_all(&root);
    root
}

/// A repository on branch `main`.
pub struct GitRepo {
    dir: TempDir,
}

impl GitRepo {
    /// A repository with one commit holding `app.sh` and `VERSION` = 1.
    pub fn new() -> GitRepo {
        let dir = tempfile::Builder::new()
            .prefix("repo-")
            .tempdir_in(scratch_root())
            .expect("temp dir for a git repository");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.write("app.sh", "#!/bin/sh\necho \"app version $(cat VERSION)\"\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            repo.path().join("app.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod app.sh");
        repo.commit_file("VERSION", "1\n", "version 1");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The URL to put in `repo`: the absolute path.
    pub fn url(&self) -> String {
        self.dir.path().display().to_string()
    }

    pub fn write(&self, file: &str, content: &str) {
        let path = self.dir.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir in repo");
        }
        std::fs::write(path, content).expect("write in repo");
    }

    /// Writes `file` and commits it; returns the new HEAD SHA.
    pub fn commit_file(&self, file: &str, content: &str, message: &str) -> String {
        self.write(file, content);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Runs git in the repository and returns stdout; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        GitRepo::new()
    }
}
