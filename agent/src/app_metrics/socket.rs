//! The metrics socket: `<home>/metrics.sock` (a Unix stream socket, mode 0600), whose path
//! every instance finds in `PMFLEET_METRICS_SOCKET`. An app connects, writes StatsD-style
//! lines ([`super::statsd`]) and may stay connected. Who sent a line is the connecting
//! process (the kernel's peer credentials), mapped to the instance whose process tree holds
//! it; a connection from a process that is no instance (nor becomes one within a minute:
//! a reload's new instance connects before it counts) is closed.
//!
//! Bounded like every other way in: a cap on connections, on the length of a line, and on
//! the keys an instance may create ([`super::Store`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Store, statsd};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// The longest line read; a longer one ends the connection.
pub const MAX_LINE: usize = 1024;
/// How long a connection may send lines before its sender is an instance the supervisor
/// knows (its lines are dropped until then); past that it is closed.
const ADOPT_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Which instance a pid belongs to: (app, instance), or `None`.
pub type Resolve = Arc<dyn Fn(u32) -> Option<(String, u32)> + Send + Sync>;

/// Bind the socket at `path` (replacing a stale one) and serve it until `shutdown`.
pub async fn serve(path: PathBuf, store: Store, resolve: Resolve, shutdown: CancellationToken) {
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "metrics socket {}: {e}; the apps' own metrics are not read from it",
                path.display()
            );
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("metrics socket: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (store, resolve, shutdown) = (store.clone(), resolve.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(stream, &store, &resolve) => {}
                _ = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn connection(stream: UnixStream, store: &Store, resolve: &Resolve) {
    let Some(pid) = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .and_then(|p| u32::try_from(p).ok())
    else {
        return;
    };
    // A new instance connects as it starts, before a reload or a release counts it as one
    // of the app's: it is looked up again at each line until it is, for a while.
    let connected = std::time::Instant::now();
    let mut owner = resolve(pid);
    let mut reader = BufReader::with_capacity(MAX_LINE, stream);
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let mut limited = tokio::io::AsyncReadExt::take(&mut reader, MAX_LINE as u64);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") && line.len() >= MAX_LINE {
            return;
        }
        if owner.is_none() {
            owner = resolve(pid);
        }
        let Some((app, instance)) = &owner else {
            if connected.elapsed() > ADOPT_WITHIN {
                tracing::debug!(pid, "metrics socket: pid {pid} is no instance's; closed");
                return;
            }
            continue;
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        // A datagram-style sender may put several metrics in one write.
        for part in text.split('\n') {
            if let Some(parsed) = statsd::parse(part) {
                store.update(app, *instance, &parsed.name, parsed.update);
            }
        }
    }
}
