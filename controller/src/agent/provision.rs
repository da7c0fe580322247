//! The agent on each host, as part of `setup` (idempotent): the binary (checked against its
//! SHA-256 on the host before it is installed), a certificate signed by the fleet CA for the
//! host's name (the key is made on the host; only a CSR travels), the fleet's current
//! revocation list, and a running daemon — a systemd service where systemd runs, else a
//! background daemon that outlives the SSH session. A healthy agent is left as it is.
//!
//! The certificate is issued again when the host's names or the CA changed, when it expires
//! within [`pki::AGENT_RENEW_WITHIN_DAYS`], when the CA revoked it, or when the installed
//! identity does not work (`renewal`). The revocation list is brought whenever the host's
//! differs from the CA's, and every setup has the running daemon read its TLS files again, so
//! the CA's current list is the one in force; [`push_crl`] does only that, for
//! `pmfleet ca push-crl`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmfleet_shared::ecosystem::{AgentSettings, AgentVia, DeployEnv};
use pmfleet_shared::protocol::{Request, Response};
use serde::Deserialize;

use super::client::AgentClient;
use super::route::{Via, loopback_for};
use crate::deploy::error::HostError;
use crate::deploy::fleet::{Fleet, Member, each};
use crate::deploy::report::{HostReport, Status};
use crate::deploy::scripts;
use crate::output::Output;
use crate::pki::{self, Ca, ClientIdentity, IssuedCert, PkiError};
use crate::ssh::Connector;
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

/// What this machine lacks to set up agents; said once for the whole fleet.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error(
        "{0}\n  hint: run `pmfleet ca init` once on this machine, or set `agent: false` in the environment to deploy without the agent"
    )]
    Ca(PkiError),
    #[error(transparent)]
    Identity(PkiError),
    #[error("the controller's TLS identity cannot be used: {0}")]
    Tls(#[from] pmfleet_shared::tls::TlsError),
    #[error(
        "cannot read the agent binary {}: {source}\n  hint: install it next to `pmfleet` (`cargo install-agent` in pmfleet's source tree), or build it (`cargo build-agent`) and point PMFLEET_AGENT_BIN at target/<host>/agent/pmfleet-agent",
        path.display()
    )]
    Binary {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Kit {
    /// Loads the fleet CA and the agent binary; the errors say what to do.
    pub fn load(upgrade: bool) -> Result<Kit, KitError> {
        let dir = pki::default_dir().map_err(KitError::Ca)?;
        let ca = Ca::load(&dir).map_err(KitError::Ca)?;
        let identity = ClientIdentity::from_env_or_dir(&dir).map_err(KitError::Identity)?;
        let client = AgentClient::new(&identity, Duration::from_secs(10))?;
        let path = agent_binary_path();
        let binary = std::fs::read(&path).map_err(|source| KitError::Binary {
            path: path.clone(),
            source,
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

/// The address the agent listens on: with `via: "ssh"`, the host's loopback
/// ([`loopback_for`]); else the host's own address when it is written as one (or
/// `localhost`), else every interface.
pub fn listen_address(host: &str, settings: &AgentSettings) -> String {
    let ip = if settings.via == AgentVia::Ssh && host != "localhost" {
        Some(bracketed(&loopback_for(host)))
    } else {
        host_ip(host)
    };
    format!(
        "{}:{}",
        ip.unwrap_or_else(|| "0.0.0.0".into()),
        settings.port
    )
}

/// The host's address when it is written as one (`127.0.0.1` for `localhost`), bracketed
/// when IPv6.
fn host_ip(host: &str) -> Option<String> {
    if host == "localhost" {
        return Some("127.0.0.1".to_string());
    }
    host.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| bracketed(&ip.to_string()))
}

fn bracketed(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    }
}

/// Makes sure `member` runs a current, certified agent that knows the deploy root `root`
/// (the only roots whose releases it runs when asked over mutual TLS); returns a one-line
/// description.
pub async fn provision(
    kit: &Kit,
    settings: &AgentSettings,
    root: &str,
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
            .run_with_stdin(&scripts::agent_upload(home, &kit.binary_sum), Some(stdin))
            .await
            .map_err(|e| format!("uploading the agent: {e:#}"))?;
        if !captured.success() {
            return Err(format!("uploading the agent: {}", captured.reason()));
        }
        changed.push("binary");
    }

    member
        .run(&scripts::agent_roots(home, root))
        .await
        .map_err(|e| format!("registering the deploy root {root}: {e}"))?;
    member
        .run(&scripts::agent_metrics(home, &settings.metrics.file_text()))
        .await
        .map_err(|e| format!("setting where the agent serves its metrics: {e}"))?;

    let sans = vec![member.host.clone()];
    let listen = listen_address(&member.host, settings);
    let bind_address = if settings.bind_host {
        host_ip(&member.host)
            .map(|ip| ip.trim_matches(['[', ']']).to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let issued = format!(
        "{} {listen} {} bind={bind_address}",
        sans.join(","),
        kit.ca.fingerprint()
    );
    let crl = read_crl(&kit.ca)?;
    let revoked = kit.ca.issued().map_err(|e| e.to_string())?;
    let installed_tls = serde_json::from_str::<InstalledTls>(&field("tls")).ok();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let renew = renewal(
        &field("issued"),
        &issued,
        installed_tls.as_ref(),
        &revoked,
        now,
    );
    if let Some(why) = renew {
        tracing::info!(host = %member.host, "issuing the agent a certificate: {why}");
        let csr = member
            .run(&scripts::agent_csr(home, &sans))
            .await
            .map_err(|e| format!("certificate request: {e}"))?;
        let cert = pki::sign_agent_csr(&kit.ca, &csr.stdout, &sans, pki::DEFAULT_AGENT_DAYS)
            .map_err(|e| format!("signing the agent's certificate: {e}"))?;
        member
            .run(&scripts::agent_tls(
                home,
                &scripts::AgentTlsFiles {
                    cert: cert.trim(),
                    ca: kit.ca.cert_pem().trim(),
                    crl: &crl,
                    listen: &listen,
                    issued: &issued,
                    bind_address: &bind_address,
                },
            ))
            .await
            .map_err(|e| format!("installing the certificate: {e}"))?;
        changed.push("certificate");
    } else if field("crl") != crl_sum(&crl) {
        member
            .run(&scripts::agent_crl(home, &crl, false))
            .await
            .map_err(|e| format!("installing the revocation list: {e}"))?;
        changed.push("revocation list");
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
    } else {
        // Every setup has the running agent read its TLS files again, changed or not: the
        // revocation list on the host is then surely the one in force.
        member
            .run(&scripts::agent_tls_reload(home))
            .await
            .map_err(|e| format!("reloading the agent's TLS files: {e}"))?;
        if !changed.is_empty() {
            how = format!("{} reloaded, its apps untouched", changed.join(" and "));
        }
    }
    let via = Via::for_member(settings, &member.host, &member.conn);
    let version = wait_for_agent(kit, &member.host, settings.port, &via).await.map_err(|e| {
        let path = match via {
            Via::Direct => "the controller must reach that port directly, even for a host behind a jump host, or set `agent.via: \"ssh\"`",
            Via::Ssh { .. } => "reached through the SSH connection to the host",
        };
        format!("the agent does not answer on {listen} over mutual TLS: {e} (see {home}/agent.log on the host; {path})")
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

/// What `pmfleet-agent tls status --json` says of the installed certificate (the fields setup
/// looks at).
#[derive(Debug, Clone, Default, Deserialize)]
struct InstalledTls {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    not_after_unix: Option<i64>,
    #[serde(default)]
    serial: Option<String>,
}

/// Why the agent needs a new certificate, or `None` when the installed one is good: issued
/// for other names, another CA or another address (`installed` vs `wanted`, the
/// `issued-for` records), expiring within [`pki::AGENT_RENEW_WITHIN_DAYS`] of `now`, revoked
/// by the CA, or not working.
fn renewal(
    installed: &str,
    wanted: &str,
    tls: Option<&InstalledTls>,
    issued: &[IssuedCert],
    now: i64,
) -> Option<String> {
    if installed != wanted {
        return Some("issued for other names, another address or another CA".into());
    }
    let Some(tls) = tls.filter(|t| t.ok) else {
        return Some("the installed identity does not work".into());
    };
    if let Some(days) = tls
        .not_after_unix
        .map(|t| pmfleet_shared::tls::days_left(t, now))
        .filter(|days| *days < pki::AGENT_RENEW_WITHIN_DAYS)
    {
        return Some(format!("it expires in {days} day(s)"));
    }
    let revoked = tls.serial.as_deref().is_some_and(|serial| {
        issued
            .iter()
            .any(|c| c.revoked() && c.serial.eq_ignore_ascii_case(serial))
    });
    revoked.then(|| "the fleet CA revoked it".into())
}

/// The CA's `crl.pem`, trimmed (empty when there is none yet).
fn read_crl(ca: &Ca) -> Result<String, String> {
    let path = ca.dir().join(pki::CRL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The SHA-256 the probe prints for `crl` once installed (as the scripts write it: followed by
/// a newline), or empty for none.
fn crl_sum(crl: &str) -> String {
    if crl.is_empty() {
        String::new()
    } else {
        sha256_hex(format!("{crl}\n").as_bytes())
    }
}

/// `pmfleet ca push-crl`: bring the CA's current revocation list to the agent of every host of
/// `env` and have each running agent apply it, nothing else.
pub async fn push_crl(
    ca: &Ca,
    env: &DeployEnv,
    connector: &Connector,
    out: &Arc<Output>,
) -> Vec<HostReport> {
    let Some(settings) = &env.agent else {
        return Vec::new();
    };
    let crl = match read_crl(ca) {
        Ok(crl) => crl,
        Err(message) => {
            return env
                .hosts
                .iter()
                .map(|h| {
                    HostReport::new(
                        &crate::deploy::fleet::label(h),
                        Status::Failed,
                        message.clone(),
                    )
                })
                .collect();
        }
    };
    let fleet = Fleet::connect(env, connector, out).await;
    let mut reports = fleet.not_connected.clone();
    let results = each(&fleet.members, |m| {
        let (crl, home, out) = (crl.clone(), settings.home.clone(), out.clone());
        async move {
            let started = Instant::now();
            out.step(&m.label, "revocation list");
            let result = async {
                let probe = m.run(&scripts::agent_probe(&home)).await?;
                let running = probe.stdout.lines().any(|l| l.trim() == "running=yes");
                m.run(&scripts::agent_crl(&home, &crl, running)).await?;
                Ok::<_, HostError>(if running {
                    "revocation list installed and applied by the running agent"
                } else {
                    "revocation list installed (the agent is not running: it applies it when it starts)"
                })
            }
            .await;
            let shown = match &result {
                Ok(message) => message.to_string(),
                Err(e) => format!("agent: {e}"),
            };
            out.done(&m.label, result.is_ok(), &shown);
            let status = match &result {
                Ok(_) => Status::Ok,
                Err(e) => e.status(),
            };
            let message = shown;
            let mut report = HostReport::new(&m.label, status, message);
            report.elapsed = started.elapsed();
            report
        }
    })
    .await;
    reports.extend(results);
    reports
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
async fn wait_for_agent(kit: &Kit, host: &str, port: u16, via: &Via) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match kit
            .client
            .request(host, port, via, &Request::Ping, None)
            .await
        {
            Ok(Response::Pong { version, .. }) => return Ok(version),
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(e) if e.is_version_mismatch() => {
                return Err(format!(
                    "{e}: the agent binary on the host is of another pmfleet; `setup --upgrade-agent` replaces it"
                ));
            }
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
    fn certificates_are_issued_again_when_they_must_be() {
        let day = 86_400;
        let now = 1_800_000_000;
        let good = |days: i64| InstalledTls {
            ok: true,
            not_after_unix: Some(now + days * day),
            serial: Some("0aff".into()),
        };
        let record = |serial: &str, revoked: bool| IssuedCert {
            serial: serial.into(),
            kind: pki::CertKind::Agent,
            name: "web1".into(),
            sans: vec!["web1".into()],
            issued_at: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            revoked_at: revoked.then(|| "2026-06-01T00:00:00Z".into()),
            role: None,
        };
        let broken = InstalledTls::default();
        let kept = [record("0aff", false), record("0b00", true)];
        let revoked = [record("0AFF", true)];
        // (installed record, installed identity, CA index, renew because …)
        type Row<'a> = (
            &'a str,
            Option<&'a InstalledTls>,
            &'a [IssuedCert],
            Option<&'a str>,
        );
        let table: [Row; 8] = [
            ("a", Some(&good(365)), &kept, None),
            ("a", Some(&good(30)), &kept, None),
            ("a", Some(&good(29)), &kept, Some("expires in 29 day(s)")),
            ("a", Some(&good(-3)), &kept, Some("expires in -3 day(s)")),
            ("b", Some(&good(365)), &kept, Some("other names")),
            ("a", Some(&good(365)), &revoked, Some("revoked")),
            ("a", Some(&broken), &kept, Some("does not work")),
            ("a", None, &kept, Some("does not work")),
        ];
        for (i, (installed, tls, issued, want)) in table.into_iter().enumerate() {
            let got = renewal(installed, "a", tls, issued, now);
            match (want, &got) {
                (None, None) => {}
                (Some(want), Some(why)) => assert!(why.contains(want), "row {i}: {why}"),
                _ => panic!("row {i}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn the_revocation_list_sum_is_of_what_the_script_writes() {
        assert_eq!(crl_sum(""), "");
        assert_eq!(crl_sum("x"), sha256_hex(b"x\n"));
    }

    #[test]
    fn listen_addresses() {
        let s = AgentSettings::default();
        assert_eq!(listen_address("127.0.0.3", &s), "127.0.0.3:7677");
        assert_eq!(listen_address("localhost", &s), "127.0.0.1:7677");
        assert_eq!(listen_address("web1.example.com", &s), "0.0.0.0:7677");
        assert_eq!(listen_address("::1", &s), "[::1]:7677");
    }

    #[test]
    fn an_agent_reached_through_ssh_listens_on_loopback_only() {
        let s = AgentSettings {
            via: AgentVia::Ssh,
            ..AgentSettings::default()
        };
        for (host, want) in [
            ("web1.example.com", "127.0.0.1:7677"),
            ("10.0.0.5", "127.0.0.1:7677"),
            ("2001:db8::5", "127.0.0.1:7677"),
            ("127.0.0.3", "127.0.0.3:7677"),
            ("::1", "[::1]:7677"),
            ("localhost", "127.0.0.1:7677"),
        ] {
            assert_eq!(listen_address(host, &s), want, "{host}");
        }
    }
}
