//! What `status` says about the deploy roots of this host ([`DeployRoot`]): for every root
//! `setup` registered in `<agent home>/roots`, where `current` points, the rollout record and
//! the deploy lock as the controller left them over SSH, which release each app the agent
//! runs from that root's releases is on, and a switch not confirmed yet or undone by the host
//! itself ([`crate::auto_revert`]).
//!
//! Only reading, and only for display: nothing read here is acted on. Every file is opened
//! without following a link and without waiting (a FIFO in its place answers at once), must be
//! a regular file, and is read up to [`MAX_ROOT_FILE_LEN`] bytes; what cannot be read is
//! reported as a reason, never a panic. An app belongs to a root when its working directory
//! (or its program, or an argument naming a path) lies in `<root>/releases/<id>/`; the release
//! is that `<id>`. The decisions are pure functions, tested by tables; [`read`] does the I/O.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use pmfleet_shared::protocol::{
    DeployRoot, LockSeen, MAX_ROOT_FILE_LEN, MAX_ROOTS, RolloutSeen, RootApp, Status,
};

use super::release_gate::{ROOTS_FILE, registered, valid_id};
use crate::supervisor::Supervisor;

/// An app the agent knows, as far as roots are concerned: the paths it runs from and how
/// many of its instances are online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    pub name: String,
    /// Its working directory first, then its program and arguments.
    pub paths: Vec<PathBuf>,
    pub online: u32,
    pub total: u32,
}

/// Every registered root of `agent_home`, described (at most [`MAX_ROOTS`]).
pub fn read(agent_home: &Path, apps: &[AppPaths]) -> Vec<DeployRoot> {
    let text = match read_small(&agent_home.join(ROOTS_FILE)) {
        Ok(Some(text)) => text,
        Ok(None) => return Vec::new(),
        Err(reason) => {
            tracing::warn!("status: {}/{ROOTS_FILE}: {reason}", agent_home.display());
            return Vec::new();
        }
    };
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in registered(&text) {
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots
        .into_iter()
        .take(MAX_ROOTS)
        .map(|root| describe(&root, apps))
        .collect()
}

/// What the supervisor's apps run from: each app's working directory, program and arguments.
pub fn apps_of_supervisor(sup: &Supervisor) -> Vec<AppPaths> {
    let mut names: Vec<String> = sup.list().into_iter().map(|p| p.name).collect();
    names.dedup();
    names
        .iter()
        .filter_map(|name| sup.show(name).ok())
        .map(|detail| {
            let spec = detail.spec;
            let mut paths = vec![spec.cwd.clone(), PathBuf::from(&spec.program)];
            paths.extend(spec.program_args.iter().map(PathBuf::from));
            let online = detail
                .processes
                .iter()
                .filter(|p| p.status == Status::Online)
                .count();
            AppPaths {
                name: spec.name,
                paths,
                online: u32::try_from(online).unwrap_or(u32::MAX),
                total: u32::try_from(detail.processes.len()).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

/// One root: `current`, the rollout record, the lock, its apps.
fn describe(root: &Path, apps: &[AppPaths]) -> DeployRoot {
    let (current, current_error) = match std::fs::read_link(root.join("current")) {
        Ok(target) => match release_of_link(&target) {
            Some(id) => (Some(id), None),
            None => (
                None,
                Some(format!(
                    "current points at {}, not at a release",
                    target.display()
                )),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => (None, Some(format!("current: {e}"))),
    };
    let state = root.join(".pmfleet");
    let (rollout, rollout_error) = match read_small(&state.join("rollout.json")) {
        Ok(None) => (None, None),
        Ok(Some(text)) => match parse_rollout(&text) {
            Ok(record) => (record, None),
            Err(reason) => (None, Some(format!("rollout.json: {reason}"))),
        },
        Err(reason) => (None, Some(format!("rollout.json: {reason}"))),
    };
    let lock_path = state.join("lock");
    let lock = match read_small(&lock_path) {
        Ok(None) => None,
        Ok(Some(text)) => Some(parse_lock(&text, heartbeat_age(&lock_path))),
        Err(reason) => Some(LockSeen {
            heartbeat_age_secs: heartbeat_age(&lock_path),
            error: Some(reason),
            ..LockSeen::default()
        }),
    };
    // Compared both as registered and with symlinks resolved (the apps' paths are resolved).
    let mut bases = vec![root.join("releases")];
    if let Ok(real) = std::fs::canonicalize(root) {
        let real = real.join("releases");
        if !bases.contains(&real) {
            bases.push(real);
        }
    }
    let (pending, pending_note, auto_reverted) = crate::auto_revert::describe(root);
    DeployRoot {
        path: root.to_path_buf(),
        current,
        current_error,
        rollout,
        rollout_error,
        lock,
        apps: apps_of(&bases, apps),
        pending,
        pending_note,
        auto_reverted,
    }
}

/// `releases/<id>` (what a switch writes) → `<id>`; anything else is not a release.
pub fn release_of_link(target: &Path) -> Option<String> {
    let mut parts = target.components();
    let (Some(Component::Normal(dir)), Some(Component::Normal(id)), None) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id = id.to_str()?;
    (dir == "releases" && valid_id(id)).then(|| id.to_string())
}

/// The release `path` lies in, when it is under one of `bases` (`<root>/releases`).
pub fn release_under(bases: &[PathBuf], path: &Path) -> Option<String> {
    bases.iter().find_map(|base| {
        let rest = path.strip_prefix(base).ok()?;
        match rest.components().next() {
            Some(Component::Normal(id)) => id.to_str().filter(|id| valid_id(id)).map(String::from),
            _ => None,
        }
    })
}

/// The apps running from the releases under `bases`, by name, with their release.
pub fn apps_of(bases: &[PathBuf], apps: &[AppPaths]) -> Vec<RootApp> {
    apps.iter()
        .filter_map(|app| {
            let release = app.paths.iter().find_map(|p| release_under(bases, p))?;
            Some(RootApp {
                name: app.name.clone(),
                release: Some(release),
                online: app.online,
                total: app.total,
            })
        })
        .collect()
}

/// The rollout record's text: empty is no record, anything else must be one JSON object.
pub fn parse_rollout(text: &str) -> Result<Option<RolloutSeen>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not a rollout record: {e}"))
}

/// The lock file's text (one JSON object, the holder), with its heartbeat's age. A lock
/// whose content cannot be read is held all the same: it says why.
pub fn parse_lock(text: &str, heartbeat_age_secs: u64) -> LockSeen {
    match serde_json::from_str::<LockSeen>(text.trim()) {
        Ok(seen) => LockSeen {
            heartbeat_age_secs,
            error: None,
            ..seen
        },
        Err(e) => LockSeen {
            heartbeat_age_secs,
            error: Some(format!("not a lock record: {e}")),
            ..LockSeen::default()
        },
    }
}

/// Seconds since the file's mtime (0 for a time in the future, or when it cannot be read).
fn heartbeat_age(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs())
}

/// A small regular file's text: `Ok(None)` when it does not exist. Links are not followed, a
/// FIFO or device is refused without blocking, and more than [`MAX_ROOT_FILE_LEN`] bytes is
/// an error.
pub fn read_small(path: &Path) -> Result<Option<String>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err("a symbolic link, not a file".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_ROOT_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_ROOT_FILE_LEN {
        return Err(format!("larger than {MAX_ROOT_FILE_LEN} bytes"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8 text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_names_a_release_only_as_a_switch_writes_it() {
        let table = [
            ("releases/20260101-120000", Some("20260101-120000")),
            ("releases/r1", Some("r1")),
            ("releases/r1/", Some("r1")),
            ("/srv/app/releases/r1", None),
            ("releases/../etc", None),
            ("releases/.hidden", None),
            ("releases", None),
            ("releases/r1/sub", None),
            ("elsewhere/r1", None),
        ];
        for (target, want) in table {
            assert_eq!(
                release_of_link(Path::new(target)).as_deref(),
                want,
                "{target}"
            );
        }
    }

    #[test]
    fn an_app_belongs_to_the_release_its_paths_lie_in() {
        let bases = [
            PathBuf::from("/srv/app/releases"),
            PathBuf::from("/data/app/releases"),
        ];
        let table = [
            ("/srv/app/releases/r2", Some("r2")),
            ("/srv/app/releases/r2/server", Some("r2")),
            ("/data/app/releases/r3/bin/x", Some("r3")),
            ("/srv/app/releases", None),
            ("/srv/app/releases/.tmp/x", None),
            ("/srv/app/current/x", None),
            ("/srv/other/releases/r1", None),
            ("relative/releases/r1", None),
        ];
        for (path, want) in table {
            assert_eq!(
                release_under(&bases, Path::new(path)).as_deref(),
                want,
                "{path}"
            );
        }
        let app = |name: &str, paths: &[&str]| AppPaths {
            name: name.into(),
            paths: paths.iter().map(PathBuf::from).collect(),
            online: 1,
            total: 2,
        };
        let apps = [
            app("api", &["/srv/app/releases/r2", "/usr/bin/node"]),
            // An absolute cwd elsewhere: found by its script.
            app(
                "worker",
                &["/var/work", "/usr/bin/python3", "/srv/app/releases/r1/w.py"],
            ),
            app("other", &["/home/x", "/usr/bin/sleep", "60"]),
        ];
        let found = apps_of(&bases, &apps);
        let names: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|a| (a.name.as_str(), a.release.as_deref()))
            .collect();
        assert_eq!(names, [("api", Some("r2")), ("worker", Some("r1"))]);
        assert_eq!((found[0].online, found[0].total), (1, 2));
    }

    #[test]
    fn records_and_locks_are_read_leniently_and_say_why_not() {
        assert_eq!(parse_rollout("  \n"), Ok(None));
        let record = parse_rollout(
            r#"{"id":"a","action":"deploy","who":"alice@laptop","started":"t","release":"r2","previous":"r1","state":"running"}"#,
        )
        .unwrap()
        .unwrap();
        assert!(record.is_running());
        assert_eq!(record.previous.as_deref(), Some("r1"));
        let torn = parse_rollout(r#"{"id":"a","acti"#).unwrap_err();
        assert!(torn.contains("not a rollout record"), "{torn}");
        assert!(parse_rollout("[1,2]").is_err());

        let lock = parse_lock(
            r#"{"holder":"alice@laptop","deploy_id":"a","action":"deploy","since":"t","pid":42,"machine":"laptop"}"#,
            7,
        );
        assert_eq!((lock.deploy_id.as_str(), lock.pid), ("a", 42));
        assert_eq!((lock.heartbeat_age_secs, lock.error), (7, None));
        let junk = parse_lock("garbage", 3);
        assert_eq!(junk.heartbeat_age_secs, 3);
        assert!(junk.error.is_some_and(|e| e.contains("not a lock record")));
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("ok"), "{}").unwrap();
        assert_eq!(read_small(&dir.join("ok")), Ok(Some("{}".into())));
        assert_eq!(read_small(&dir.join("missing")), Ok(None));
        std::fs::write(dir.join("big"), vec![b' '; MAX_ROOT_FILE_LEN as usize + 1]).unwrap();
        assert!(read_small(&dir.join("big")).unwrap_err().contains("larger"));
        std::os::unix::fs::symlink(dir.join("ok"), dir.join("link")).unwrap();
        assert!(read_small(&dir.join("link")).unwrap_err().contains("link"));
        std::fs::create_dir(dir.join("dir")).unwrap();
        assert!(read_small(&dir.join("dir")).is_err());
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(
            read_small(&fifo)
                .unwrap_err()
                .contains("not a regular file")
        );
        std::fs::write(dir.join("binary"), [0xff, 0xfe]).unwrap();
        assert!(read_small(&dir.join("binary")).is_err());
    }

    /// A host as setup and a deploy leave it, the controller killed mid-rollout.
    #[test]
    fn a_registered_root_is_described_from_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("agent");
        let root = tmp.path().join("srv/app");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(root.join("releases/r1")).unwrap();
        std::fs::create_dir_all(root.join("releases/r2")).unwrap();
        std::fs::create_dir_all(root.join(".pmfleet")).unwrap();
        std::os::unix::fs::symlink("releases/r2", root.join("current")).unwrap();
        std::fs::write(
            root.join(".pmfleet/rollout.json"),
            r#"{"id":"a","action":"deploy","who":"alice@laptop","started":"t","release":"r2","hosts":["web1"],"previous":"r1","state":"running"}"#,
        )
        .unwrap();
        std::fs::write(
            root.join(".pmfleet/lock"),
            r#"{"holder":"alice@laptop","deploy_id":"a","action":"deploy","since":"t","pid":42,"machine":"laptop"}"#,
        )
        .unwrap();
        let other = tmp.path().join("srv/empty");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            home.join(ROOTS_FILE),
            format!(
                "{}\n{}\n{}\n",
                root.display(),
                other.display(),
                root.display()
            ),
        )
        .unwrap();
        let apps = [AppPaths {
            name: "web".into(),
            paths: vec![root.join("releases/r1")],
            online: 2,
            total: 2,
        }];
        let roots = read(&home, &apps);
        assert_eq!(roots.len(), 2, "{roots:?}");
        let app = &roots[0];
        assert_eq!(app.current.as_deref(), Some("r2"));
        assert_eq!(
            app.rollout.as_ref().map(|r| r.previous.as_deref()),
            Some(Some("r1"))
        );
        assert_eq!(app.lock.as_ref().map(|l| l.deploy_id.as_str()), Some("a"));
        assert_eq!(app.apps[0].release.as_deref(), Some("r1"));
        let empty = &roots[1];
        assert_eq!(
            (&empty.current, &empty.rollout, &empty.lock),
            (&None, &None, &None)
        );
        assert!(empty.apps.is_empty());

        // Files the host broke are reasons, never trusted.
        std::fs::write(root.join(".pmfleet/rollout.json"), "{torn").unwrap();
        std::fs::remove_file(root.join("current")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("current")).unwrap();
        let roots = read(&home, &apps);
        assert!(roots[0].rollout.is_none());
        assert!(
            roots[0]
                .rollout_error
                .as_deref()
                .is_some_and(|e| e.contains("rollout.json"))
        );
        assert!(roots[0].current.is_none());
        assert!(
            roots[0]
                .current_error
                .as_deref()
                .is_some_and(|e| e.contains("/etc"))
        );

        std::fs::remove_file(home.join(ROOTS_FILE)).unwrap();
        assert!(read(&home, &apps).is_empty());
    }
}
