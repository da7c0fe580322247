//! The agent on each host, as part of `setup` (idempotent): the binary, a certificate signed by
//! the fleet CA for the host's name (the key is made on the host; only a CSR travels), and a
//! running daemon — a systemd service where systemd runs, else a background daemon that
//! outlives the SSH session. A healthy agent is left as it is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::ecosystem::AgentSettings;
use pmfleet_shared::protocol::{Request, Response};

use super::client::AgentClient;
use crate::deploy::fleet::Member;
use crate::deploy::scripts;
use crate::pki::{self, Ca, ClientIdentity};
use crate::transport::SharedBytes;

/// What the controller brings to every host.
pub struct Kit {
    pub ca: Ca,
    pub client: AgentClient,
    /// The agent binary to install, and its SHA-256.
    pub binary: Arc<Vec<u8>>,
    pub binary_sum: String,
    /// `setup --upgrade-agent`: replace an installed agent whose binary differs.
    pub upgrade: bool,
}

impl Kit {
    /// Loads the fleet CA and the agent binary; the errors say what to do.
    pub fn load(upgrade: bool) -> Result<Kit, String> {
        let dir = pki::default_dir().map_err(|e| e.to_string())?;
        let ca = Ca::load(&dir).map_err(|e| {
            format!("{e}\n  hint: run `pmfleet ca init` once on this machine, or set `agent: false` in the environment to deploy without the agent")
        })?;
        let identity = ClientIdentity::from_env_or_dir(&dir).map_err(|e| e.to_string())?;
        let client =
            AgentClient::new(&identity, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        let path = agent_binary_path();
        let binary = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read the agent binary {}: {e}\n  hint: build it (`cargo build --release -p pmfleet-agent`) next to `pmfleet`, or set PMFLEET_AGENT_BIN",
                path.display()
            )
        })?;
        let binary_sum = sha256_hex(&binary);
        Ok(Kit {
            ca,
            client,
            binary: Arc::new(binary),
            binary_sum,
            upgrade,
        })
    }
}

/// `$PMFLEET_AGENT_BIN`, else `pmfleet-agent` next to this executable.
pub fn agent_binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PMFLEET_AGENT_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("pmfleet-agent")))
        .unwrap_or_else(|| PathBuf::from("pmfleet-agent"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The address the agent listens on: the host's own address when it is written as one (or
/// `localhost`), else every interface.
pub fn listen_address(host: &str, settings: &AgentSettings) -> String {
    let ip = if host == "localhost" {
        Some("127.0.0.1".to_string())
    } else {
        host.parse::<std::net::IpAddr>().ok().map(|ip| match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        })
    };
    format!(
        "{}:{}",
        ip.unwrap_or_else(|| "0.0.0.0".into()),
        settings.port
    )
}

/// Makes sure `member` runs a current, certified agent; returns a one-line description.
pub async fn provision(
    kit: &Kit,
    settings: &AgentSettings,
    member: &Member,
) -> Result<String, String> {
    let home = &settings.home;
    let probe = member
        .run(&scripts::agent_probe(home))
        .await
        .map_err(|e| e.to_string())?;
    let field = |key: &str| {
        probe
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let (os, arch) = (field("os"), field("arch"));
    if os != "Linux" || arch != std::env::consts::ARCH {
        return Err(format!(
            "this host is {os} {arch}, and the agent binary here is for Linux {}: build pmfleet-agent for that target and point PMFLEET_AGENT_BIN at it",
            std::env::consts::ARCH
        ));
    }
    let mut changed = Vec::new();
    let installed = field("sum");
    let mut outdated = false;
    if installed != kit.binary_sum && !installed.is_empty() && !kit.upgrade {
        // A healthy agent is left as it is unless --upgrade-agent asks to replace it.
        outdated = true;
    } else if installed != kit.binary_sum {
        let stdin = SharedBytes::stdin(&kit.binary);
        let captured = member
            .conn
            .run_with_stdin(&scripts::agent_upload(home), Some(stdin))
            .await
            .map_err(|e| format!("uploading the agent: {e:#}"))?;
        if !captured.success() {
            return Err(format!("uploading the agent: {}", captured.reason()));
        }
        changed.push("binary");
    }

    let sans = vec![member.host.clone()];
    let listen = listen_address(&member.host, settings);
    let bind_address = if settings.bind_host {
        listen_address(&member.host, settings)
            .rsplit_once(':')
            .map(|(ip, _)| ip.trim_matches(['[', ']']).to_string())
            .filter(|ip| ip != "0.0.0.0")
            .unwrap_or_default()
    } else {
        String::new()
    };
    let issued = format!(
        "{} {listen} {} bind={bind_address}",
        sans.join(","),
        kit.ca.fingerprint()
    );
    if field("issued") != issued {
        let csr = member
            .run(&scripts::agent_csr(home, &sans))
            .await
            .map_err(|e| format!("certificate request: {e}"))?;
        let cert = pki::sign_agent_csr(&kit.ca, &csr.stdout, &sans, pki::DEFAULT_AGENT_DAYS)
            .map_err(|e| format!("signing the agent's certificate: {e}"))?;
        let crl = std::fs::read_to_string(kit.ca.dir().join(pki::CRL_FILE)).unwrap_or_default();
        member
            .run(&scripts::agent_tls(
                home,
                &scripts::AgentTlsFiles {
                    cert: cert.trim(),
                    ca: kit.ca.cert_pem().trim(),
                    crl: crl.trim(),
                    listen: &listen,
                    issued: &issued,
                    bind_address: &bind_address,
                },
            ))
            .await
            .map_err(|e| format!("installing the certificate: {e}"))?;
        changed.push("certificate");
    }

    let running = field("running") == "yes";
    let systemd = field("systemd") == "yes";
    let binary = changed.contains(&"binary");
    let mut how = String::new();
    if !running {
        member
            .run(&scripts::agent_start(home, systemd, false))
            .await
            .map_err(|e| format!("starting the agent: {e}"))?;
    } else if binary {
        // The running daemon becomes the new binary in place, with its apps still running
        // (it reads the TLS files again as it does so).
        let upgraded = member
            .conn
            .run(&scripts::agent_upgrade(home))
            .await
            .map_err(|e| format!("upgrading the agent: {e:#}"))?;
        // A running daemon too old to hand over (exit 3), or a binary without `upgrade` (an
        // older one, rolled back to): the daemon is restarted into the new binary instead.
        let no_upgrade = upgraded.status == 2 && upgraded.stderr.contains("upgrade");
        how = match upgraded.status {
            0 => "upgraded in place, its apps kept running".into(),
            _ if upgraded.status == AGENT_TOO_OLD || no_upgrade => {
                restart_agent(member, home, systemd).await?;
                "restarted: the agent could not hand its apps over in place, so they restarted"
                    .into()
            }
            _ => return Err(format!("upgrading the agent: {}", upgraded.reason())),
        };
    } else if !changed.is_empty() && bind_changed(&field("issued"), &issued) {
        // Cluster apps bind their ports when they start: a restart binds them anew.
        restart_agent(member, home, systemd).await?;
        how = "restarted to listen on the new bind address; its apps restarted".into();
    } else if !changed.is_empty() {
        member
            .run(&scripts::agent_tls_reload(home))
            .await
            .map_err(|e| format!("reloading the agent's certificate: {e}"))?;
        how = "certificate reloaded, its apps untouched".into();
    }
    let version = wait_for_agent(kit, &member.host, settings.port).await.map_err(|e| {
        format!("the agent does not answer on {listen} over mutual TLS: {e} (see {home}/agent.log on the host; the controller must reach that port directly, even for a host behind a jump host)")
    })?;
    let upgrade_hint = if outdated {
        "; its binary differs from this pmfleet-agent: `setup --upgrade-agent` replaces it in place (its apps keep running)"
    } else {
        ""
    };
    Ok(if changed.is_empty() && running {
        format!("agent {version} already running on {listen}{upgrade_hint}")
    } else if changed.is_empty() {
        format!("agent {version} started on {listen}{upgrade_hint}")
    } else {
        format!(
            "agent {version} on {listen} (new {}{})",
            changed.join(" and "),
            if how.is_empty() {
                String::new()
            } else {
                format!("; {how}")
            }
        )
    })
}

/// Restarts the running agent (and so its apps) with the installed binary.
async fn restart_agent(member: &Member, home: &str, systemd: bool) -> Result<(), String> {
    member
        .run(&scripts::agent_start(home, systemd, true))
        .await
        .map(drop)
        .map_err(|e| format!("restarting the agent: {e}"))
}

/// `pmfleet-agent upgrade`'s exit code when the running daemon cannot upgrade in place.
const AGENT_TOO_OLD: i32 = 3;

/// Whether the address cluster apps bind to differs between two `issued` records.
fn bind_changed(old: &str, new: &str) -> bool {
    let bind = |s: &str| s.rsplit_once(" bind=").map(|(_, b)| b.to_string());
    bind(old) != bind(new)
}

/// Polls the agent until it answers a ping (it may still be starting).
async fn wait_for_agent(kit: &Kit, host: &str, port: u16) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match kit.client.request(host, port, &Request::Ping, None).await {
            Ok(Response::Pong { version, .. }) => return Ok(version),
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_bind_address_needs_a_restart() {
        let old = "10.0.0.7 10.0.0.7:7677 ab:cd bind=";
        assert!(!bind_changed(old, "10.0.0.7 10.0.0.7:7677 ef:01 bind="));
        assert!(bind_changed(
            old,
            "10.0.0.7 10.0.0.7:7677 ab:cd bind=10.0.0.7"
        ));
    }

    #[test]
    fn listen_addresses() {
        let s = AgentSettings::default();
        assert_eq!(listen_address("127.0.0.3", &s), "127.0.0.3:7677");
        assert_eq!(listen_address("localhost", &s), "127.0.0.1:7677");
        assert_eq!(listen_address("web1.example.com", &s), "0.0.0.0:7677");
        assert_eq!(listen_address("::1", &s), "[::1]:7677");
    }
}
