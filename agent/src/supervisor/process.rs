//! The edge where instances become processes: building the command line and environment,
//! handing over the listening socket, signalling process groups, reading /proc.
//!
//! Every instance leads its own session (`setsid`), so its pid is also its process group and
//! a stop reaches everything it started: a shell's children, a worker pool, a grandchild that
//! double-forked. The shared listening socket goes to fd 3 per the systemd socket-activation
//! protocol; `LISTEN_PID` must be the app's own pid, which only the child knows, so the
//! command runs under `sh -c 'LISTEN_PID=$$ exec "$0" "$@"'`, which sets it and then
//! becomes the app.

use std::os::fd::RawFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pmfleet_shared::protocol::{AppSpec, ExecModeSpec};
use tokio::process::{Child, Command};

use super::ready::NotifySocket;

/// The port an instance answers its health check on, alone: the Node preload serves the app
/// there, any other program in cluster mode listens on it itself.
pub const PROBE_PORT_VAR: &str = "PMFLEET_PROBE_PORT";

/// A free port on the loopback address, for an instance's own health checks.
pub fn free_probe_port() -> Option<u16> {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

/// A signal name as written in an ecosystem file: `SIGINT`, `INT`, `sigterm` or `15`.
pub fn parse_signal(name: &str) -> Option<Signal> {
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// What one spawn of one instance needs besides the spec.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The slot, 0..instances: `instance_var` gets it.
    pub slot: u32,
    /// The instance's stable id (`pm_id`).
    pub id: u32,
    /// The app's listening socket, handed over as fd 3.
    pub listener: Option<RawFd>,
    /// Per-spawn readiness channels: `NOTIFY_SOCKET` (datagram) and `PMFLEET_READY_SOCKET`
    /// (stream, for the Node preload).
    pub notify: Option<&'a NotifySocket>,
    /// The Node `listen()` preload, for Node apps in cluster mode with a socket.
    pub preload: Option<&'a Path>,
    /// This spawn's mark (`PMFLEET_AGENT_MARK`), inherited by everything it starts.
    pub mark: &'a str,
    /// The port this instance answers its health check on (`PMFLEET_PROBE_PORT`).
    pub probe_port: Option<u16>,
}

/// Spawn one instance: its own session, stdout/stderr piped, the socket on fd 3.
pub fn spawn(spec: &AppSpec, launch: Launch<'_>) -> std::io::Result<Child> {
    let mut env = instance_env(spec, &launch);
    super::secrets::fill(spec, &mut env)?;
    let mut cmd = match launch.listener {
        Some(_) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
                .arg(&spec.program);
            c
        }
        None => Command::new(&spec.program),
    };
    cmd.args(&spec.program_args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let listener = launch.listener;
    // SAFETY: the closure runs in the forked child before exec, allocates nothing and only
    // makes async-signal-safe system calls (setsid, signal, fcntl, dup2).
    unsafe {
        cmd.pre_exec(move || child_setup(listener));
    }
    // Registered as the daemon's own before any orphan sweep can see it exit.
    let _gate = super::reaper::spawn_gate();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        super::reaper::own(pid);
    }
    Ok(child)
}

/// The instance's environment: the spec's, plus what PM2 and socket activation add (its
/// secrets still named, see [`super::secrets::fill`]).
fn instance_env(spec: &AppSpec, launch: &Launch<'_>) -> std::collections::BTreeMap<String, String> {
    let mut env = spec.env.clone();
    env.insert(spec.instance_var.clone(), launch.slot.to_string());
    env.insert("pm_id".into(), launch.id.to_string());
    env.insert("name".into(), spec.name.clone());
    env.insert("PMFLEET_APP".into(), spec.name.clone());
    if spec.exec_mode == ExecModeSpec::Cluster {
        env.insert("exec_mode".into(), "cluster_mode".into());
    }
    if let Some(var) = &spec.increment_var {
        let base = env
            .get(var)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        env.insert(var.clone(), (base + i64::from(launch.slot)).to_string());
    }
    if launch.listener.is_some() {
        env.insert("LISTEN_FDS".into(), "1".into());
        env.insert("LISTEN_FDNAMES".into(), spec.name.clone());
        // sh sets the real LISTEN_PID; make sure no inherited value leaks through.
        env.remove("LISTEN_PID");
    } else {
        for k in ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"] {
            env.remove(k);
        }
    }
    env.insert(super::marker::MARK_VAR.into(), launch.mark.to_string());
    crate::app_metrics::add_env(&mut env, spec, launch.slot);
    match launch.probe_port {
        Some(port) => {
            env.insert(PROBE_PORT_VAR.into(), port.to_string());
        }
        None => {
            env.remove(PROBE_PORT_VAR);
        }
    }
    env.remove("NOTIFY_SOCKET");
    env.remove("PMFLEET_READY_SOCKET");
    if let Some(n) = launch.notify {
        env.insert(
            "NOTIFY_SOCKET".into(),
            n.datagram_path().display().to_string(),
        );
        env.insert(
            "PMFLEET_READY_SOCKET".into(),
            n.stream_path().display().to_string(),
        );
    }
    if let Some(preload) = launch.preload {
        // NODE_OPTIONS splits on spaces unless the value is double-quoted.
        let path = preload.display().to_string();
        let require = if path.contains(' ') {
            format!(
                "--require \"{}\"",
                path.replace('\\', "\\\\").replace('"', "\\\"")
            )
        } else {
            format!("--require {path}")
        };
        let opts = match env.get("NODE_OPTIONS") {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {require}"),
            _ => require,
        };
        env.insert("NODE_OPTIONS".into(), opts);
        if !spec.wait_ready && launch.notify.is_some() {
            env.insert("PMFLEET_NOTIFY_ON_LISTEN".into(), "1".into());
        }
    }
    env
}

/// In the child, between fork and exec: a session of its own, default signal dispositions,
/// and the cluster socket on fd 3 ([`super::cluster_socket::hand_to_child`]).
fn child_setup(listener: Option<RawFd>) -> std::io::Result<()> {
    nix::unistd::setsid()?;
    // Dispositions set to "ignore" survive exec: a daemon started from a non-interactive
    // shell would otherwise pass an ignored SIGINT on, and the app could never be stopped
    // gracefully.
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: restoring the default disposition installs no handler.
        unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }?;
    }
    if let Some(fd) = listener {
        super::cluster_socket::hand_to_child(fd)?;
    }
    Ok(())
}

/// Send `signal` to the whole process group led by `pgid`. A group already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Stop an instance: `signal` to its group and to the rest of its family (what left the
/// group: [`super::family`]), SIGKILL to all of it after `timeout`, and a final SIGKILL once
/// the leader is gone so no descendant outlives it — not even one that called `setsid`.
pub(crate) async fn stop_child(
    child: &mut super::child::ChildProcess,
    mark: Option<&str>,
    signal: Signal,
    timeout: Duration,
) -> Option<ExitStatus> {
    let Some(pid) = child.id() else {
        let status = child.wait().await.ok();
        super::family::end_leftovers(mark);
        return status;
    };
    // Walked before anything is signalled: once the leader is gone, the tree no longer
    // leads to its children.
    let mut family = super::family::Family::find(Some(pid), mark);
    signal_group(pid, signal);
    family.signal_outside_group(signal);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::warn!(
                pid,
                "did not exit within kill_timeout; sending SIGKILL to its group"
            );
            signal_group(pid, Signal::SIGKILL);
            family.kill();
            child.wait().await.ok()
        }
    };
    signal_group(pid, Signal::SIGKILL);
    family.grow(mark);
    family.kill();
    status
}

/// How many CPUs `instances: max` means.
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> AppSpec {
        let mut app = pmfleet_shared::ecosystem::App::from_script("server.js");
        app.increment_var = Some("PORT".into());
        app.exec_mode = pmfleet_shared::ecosystem::ExecMode::Cluster;
        std::fs::write(dir.join("server.js"), "").unwrap();
        let env = [
            ("PORT".to_string(), "3000".to_string()),
            ("NODE_OPTIONS".into(), "--max-old-space-size=64".into()),
        ];
        let mut spec =
            crate::supervisor::spec::resolve(&app, dir, &env.into_iter().collect(), None).unwrap();
        spec.env.insert("LISTEN_PID".into(), "1".into());
        spec
    }

    #[test]
    fn instance_environment_follows_pm2_and_socket_activation() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let preload = Path::new("/home/a/preload/cluster.js");
        let launch = Launch {
            slot: 2,
            id: 7,
            listener: Some(5),
            notify: None,
            preload: Some(preload),
            mark: "0123456789abcdef:1.2.3",
            probe_port: Some(4100),
        };
        let env: std::collections::BTreeMap<_, _> =
            instance_env(&spec, &launch).into_iter().collect();
        assert_eq!(env["NODE_APP_INSTANCE"], "2");
        assert_eq!(env["pm_id"], "7");
        assert_eq!(env["PORT"], "3002", "increment_var adds the slot");
        assert_eq!(env["LISTEN_FDS"], "1");
        assert_eq!(env["LISTEN_FDNAMES"], "server");
        assert_eq!(env["PMFLEET_AGENT_MARK"], "0123456789abcdef:1.2.3");
        assert_eq!(env["PMFLEET_PROBE_PORT"], "4100");
        assert!(
            !env.contains_key("LISTEN_PID"),
            "the shell sets the child's own pid"
        );
        assert_eq!(
            env["NODE_OPTIONS"],
            "--max-old-space-size=64 --require /home/a/preload/cluster.js"
        );

        let fork = Launch {
            slot: 0,
            id: 1,
            listener: None,
            notify: None,
            preload: None,
            mark: "0123456789abcdef:1.2.4",
            probe_port: None,
        };
        let env: std::collections::BTreeMap<_, _> =
            instance_env(&spec, &fork).into_iter().collect();
        assert!(!env.contains_key("LISTEN_FDS"));
        assert_eq!(env["NODE_OPTIONS"], "--max-old-space-size=64");
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("term"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGUSR2"), Some(Signal::SIGUSR2));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
