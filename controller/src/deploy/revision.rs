//! Resolving `ref` to one commit, once, on the controller, so every host gets the same SHA.
//!
//! The controller keeps a bare cache of each repo under `~/.cache/pmfleet/repos/`, fetched
//! with git2 (local paths, `file://`, `git://`, `http://`). For URLs this build of git2 cannot
//! fetch (`ssh://`, `git@host:path`, `https://`), the system `git` does the fetch with the
//! user's own credentials; git2 still does the resolving and the archive.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, Repository};

/// A resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The `ref` as the user wrote it.
    pub git_ref: String,
    /// The full commit SHA.
    pub sha: String,
    /// The commit's first summary line, for display.
    pub summary: String,
}

impl Revision {
    pub fn short_sha(&self) -> &str {
        short_sha(&self.sha)
    }
}

/// The first 7 characters of a SHA, as git shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("could not fetch {repo}: {message}")]
    Fetch { repo: String, message: String },
    #[error(
        "`{git_ref}` is not a branch, tag or commit of {repo}\n  hint: write `ref` as `origin/main`, `main`, a tag, or a commit SHA"
    )]
    NotFound { git_ref: String, repo: String },
    #[error("git error in the controller's cache {cache}: {source}")]
    Cache {
        cache: PathBuf,
        #[source]
        source: git2::Error,
    },
}

/// The controller's cache of one repository, held exclusively: two deploys on this machine
/// use it one after the other (git refuses concurrent fetches into one repository).
pub struct RepoCache {
    repo: Repository,
    url: String,
    path: PathBuf,
    /// An exclusive `flock` on `<cache>.lock`, released when the cache is dropped.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl RepoCache {
    /// Opens (or creates) the cache for `url` under `cache_root` and fetches every branch and tag.
    pub fn fetch(cache_root: &Path, url: &str) -> Result<RepoCache, RevisionError> {
        let path = cache_root.join(cache_dir_name(url));
        let cache_err = |source| RevisionError::Cache {
            cache: path.clone(),
            source,
        };
        let cannot = |what: &str, e: &dyn std::fmt::Display| RevisionError::Fetch {
            repo: url.to_string(),
            message: format!("cannot {what} {}: {e}", path.display()),
        };
        std::fs::create_dir_all(cache_root).map_err(|e| cannot("create the cache for", &e))?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{}.lock", path.display()))
            .map_err(|e| cannot("lock the cache", &e))?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| cannot("lock the cache", &e))?;
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&path).map_err(|e| RevisionError::Fetch {
                    repo: url.to_string(),
                    message: format!("cannot create {}: {e}", path.display()),
                })?;
                Repository::init_bare(&path).map_err(cache_err)?
            }
        };
        let refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
        let fetched = repo
            .remote_anonymous(url)
            .and_then(|mut remote| remote.fetch(&refspecs, None, None));
        if let Err(err) = fetched {
            if git2_cannot_fetch(&err) {
                fetch_with_git_cli(&path, url, &refspecs)?;
            } else {
                return Err(RevisionError::Fetch {
                    repo: url.to_string(),
                    message: err.message().to_string(),
                });
            }
        }
        Ok(RepoCache {
            repo,
            url: url.to_string(),
            path,
            _lock: lock,
        })
    }

    /// Resolves `git_ref`: a full SHA, a branch (`main` or `origin/main`), a tag, or anything
    /// `git rev-parse` understands (a short SHA, `main~1`).
    pub fn resolve(&self, git_ref: &str) -> Result<Revision, RevisionError> {
        let not_found = || RevisionError::NotFound {
            git_ref: git_ref.to_string(),
            repo: self.url.clone(),
        };
        let mut candidates = vec![
            format!("refs/heads/{git_ref}"),
            format!("refs/tags/{git_ref}"),
        ];
        if let Some(branch) = git_ref.strip_prefix("origin/") {
            candidates.push(format!("refs/heads/{branch}"));
        }
        let mut oid = None;
        for name in &candidates {
            if let Ok(reference) = self.repo.find_reference(name)
                && let Ok(commit) = reference.peel_to_commit()
            {
                oid = Some(commit.id());
                break;
            }
        }
        if oid.is_none()
            && !git_ref.starts_with('-')
            && let Ok(object) = self.repo.revparse_single(git_ref)
        {
            oid = object.peel_to_commit().ok().map(|c| c.id());
        }
        let oid = oid.ok_or_else(not_found)?;
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(|source| RevisionError::Cache {
                cache: self.path.clone(),
                source,
            })?;
        Ok(Revision {
            git_ref: git_ref.to_string(),
            sha: oid.to_string(),
            summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                .into_owned(),
        })
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The commit for a SHA this cache resolved.
    pub fn commit(&self, sha: &str) -> Result<git2::Commit<'_>, RevisionError> {
        Oid::from_str(sha)
            .and_then(|oid| self.repo.find_commit(oid))
            .map_err(|source| RevisionError::Cache {
                cache: self.path.clone(),
                source,
            })
    }
}

/// Where the caches live: `$XDG_CACHE_HOME/pmfleet/repos` or `~/.cache/pmfleet/repos`.
pub fn default_cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("pmfleet")
        .join("repos")
}

/// A stable directory name for a URL: a readable prefix plus an FNV-1a hash.
fn cache_dir_name(url: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    format!("{readable}-{hash:016x}")
}

/// True when the error is git2 not supporting the URL's transport in this build.
fn git2_cannot_fetch(err: &git2::Error) -> bool {
    let msg = err.message().to_ascii_lowercase();
    msg.contains("unsupported url protocol")
        || msg.contains("unsupported")
        || err.class() == git2::ErrorClass::Ssh
        || err.class() == git2::ErrorClass::Ssl
}

fn fetch_with_git_cli(cache: &Path, url: &str, refspecs: &[&str]) -> Result<(), RevisionError> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(cache)
        .args(["fetch", "-q", "--prune", "--"])
        .arg(url)
        .args(refspecs)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| RevisionError::Fetch {
            repo: url.to_string(),
            message: format!(
                "this URL needs the `git` command on the controller, which could not run: {e}"
            ),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(RevisionError::Fetch {
            repo: url.to_string(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn resolves_branch_tag_origin_prefix_and_sha() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        std::fs::write(src.join("a"), "1").unwrap();
        git(&src, &["add", "."]);
        git(&src, &["commit", "-qm", "first"]);
        git(&src, &["tag", "v1"]);
        std::fs::write(src.join("a"), "2").unwrap();
        git(&src, &["commit", "-qam", "second"]);
        let cache = RepoCache::fetch(&tmp.path().join("cache"), src.to_str().unwrap()).unwrap();
        let main = cache.resolve("main").unwrap();
        assert_eq!(main.summary, "second");
        assert_eq!(
            cache.resolve("origin/main").unwrap(),
            Revision {
                git_ref: "origin/main".into(),
                ..main.clone()
            }
        );
        let v1 = cache.resolve("v1").unwrap();
        assert_eq!(v1.summary, "first");
        assert_eq!(cache.resolve(&v1.sha).unwrap().sha, v1.sha);
        assert_eq!(cache.resolve(&v1.sha[..8]).unwrap().sha, v1.sha);
        assert!(matches!(
            cache.resolve("nope"),
            Err(RevisionError::NotFound { .. })
        ));
        assert!(matches!(
            cache.resolve("--upload-pack=x"),
            Err(RevisionError::NotFound { .. })
        ));
    }

    #[test]
    fn cache_names_are_stable_and_distinct() {
        assert_eq!(cache_dir_name("/a/app.git"), cache_dir_name("/a/app.git"));
        assert_ne!(cache_dir_name("/a/app.git"), cache_dir_name("/b/app.git"));
        assert!(cache_dir_name("git@example.com:team/app.git").starts_with("app.git-"));
    }
}
