//! What the deploy tests read on their sshd hosts, and the environment most of them deploy:
//! a fleet without agents whose deploy root is `/srv/app` (each host has its own `/srv`), a
//! `post-deploy` that builds, and the keys a test adds ([`with_keys`]).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::git_repo::GitRepo;
use crate::sshd::SshHost;

/// The deploy root as every host sees it.
pub const ROOT: &str = "/srv/app";

/// `deploy.production` to `hosts` from `repo` at [`ROOT`], without agents, with `extra`'s
/// keys added (or replacing those given here), and the one app `app.sh`.
pub fn ecosystem(hosts: &[SshHost], repo: &GitRepo, extra: Value) -> Value {
    let hosts: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"host": h.address(), "port": h.port(), "user": "root"}))
        .collect();
    let env = with_keys(
        json!({
            "host": hosts,
            "ref": "origin/main",
            "repo": repo.url(),
            "path": ROOT,
            "post-deploy": "./app.sh > built.txt",
            "agent": false,
        }),
        &extra,
    );
    json!({"apps": [{"name": "app", "script": "app.sh"}], "deploy": {"production": env}})
}

/// `env` (an environment of an ecosystem file's `deploy`) with `extra`'s keys added, or
/// replacing those it has.
pub fn with_keys(mut env: Value, extra: &Value) -> Value {
    if let (Some(env), Some(extra)) = (env.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            env.insert(k.clone(), v.clone());
        }
    }
    env
}

/// The host's view of `/srv/app/<rel>`.
pub fn on_host(host: &SshHost, rel: &str) -> PathBuf {
    host.root().join("app").join(rel)
}

/// The release `current` points at on `host`.
pub fn current_release(host: &SshHost) -> Option<String> {
    std::fs::read_link(on_host(host, "current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// The `VERSION` file of `host`'s current release.
pub fn served_version(host: &SshHost) -> String {
    std::fs::read_to_string(on_host(host, "current/VERSION"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The release directories on `host`, sorted.
pub fn releases(host: &SshHost) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(on_host(host, "releases"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every host serves `version`, built by `post-deploy` (`current/built.txt` says `app version
/// <version>`), all from the same release; that release.
pub fn assert_fleet_serves(hosts: &[SshHost], version: &str) -> String {
    let first = hosts
        .first()
        .and_then(current_release)
        .expect("current on host 0");
    for host in hosts {
        assert_eq!(
            current_release(host).as_deref(),
            Some(first.as_str()),
            "release on {}",
            host.address()
        );
        assert_eq!(
            served_version(host),
            version,
            "version on {}",
            host.address()
        );
        let built = std::fs::read_to_string(on_host(host, "current/built.txt")).unwrap_or_default();
        assert_eq!(
            built.trim(),
            format!("app version {version}"),
            "post-deploy ran on {}",
            host.address()
        );
    }
    first
}
