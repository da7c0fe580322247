//! The agent's side of a host: probing, installing the binary, its TLS files, starting and
//! upgrading the daemon.

use crate::shell::Script;

/// Describes the agent side of a host; `$1` is the agent's home. Prints `os=`, `arch=`,
/// `sum=` (SHA-256 of the installed agent binary, if any), `systemd=`, `issued=` (what the
/// installed certificate was issued for) and `running=` (whether a daemon holds the home's
/// lock; an agent binary without `daemon-status` is asked through `flock`).
const AGENT_PROBE: &str = host_script!(
    r#"echo "os=$(uname -s)"
echo "arch=$(uname -m)"
b="$p/bin/pmfleet-agent"
if [ -x "$b" ]; then echo "sum=$(sha256sum "$b" | cut -d' ' -f1)"; else echo "sum="; fi
if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ]; then echo "systemd=yes"; else echo "systemd=no"; fi
echo "issued=$(cat "$p/tls/issued-for" 2>/dev/null || true)"
s=3; if [ -x "$b" ]; then PMFLEET_AGENT_HOME="$p" "$b" daemon-status >/dev/null 2>&1 && s=0 || s=$?; fi
if [ "$s" = 2 ] && [ -f "$p/agent.lock" ] && command -v flock >/dev/null 2>&1; then flock -n -s "$p/agent.lock" true && s=3 || s=0; fi
if [ "$s" = 0 ]; then echo "running=yes"; else echo "running=no"; fi
"#
);

/// Installs the agent binary from stdin into `<home>/bin`, atomically.
const AGENT_UPLOAD: &str = host_script!(
    r#"mkdir -p "$p/bin"
chmod 700 "$p"
cat > "$p/bin/.pmfleet-agent.new"
chmod 755 "$p/bin/.pmfleet-agent.new"
mv -f "$p/bin/.pmfleet-agent.new" "$p/bin/pmfleet-agent"
"#
);

/// Has the agent make its key (kept on the host) and print a CSR for the names that follow.
const AGENT_CSR: &str = host_script!(
    r#"for n; do set -- "$@" --san "$n"; shift; done
PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls request "$@"
"#
);

/// Installs the signed certificate `$1`, the fleet CA `$2`, the revocation list `$3` (may be
/// empty), the listen address `$4`, the record `$5` of what was issued, and the address `$6`
/// cluster-mode apps bind to (empty: every interface).
const AGENT_TLS: &str = host_script!(
    r#"umask 077
mkdir -p "$p/tls"
printf '%s\n' "$1" > "$p/tls/agent.pem"
printf '%s\n' "$2" > "$p/tls/ca.pem"
if [ -n "$3" ]; then printf '%s\n' "$3" > "$p/tls/crl.pem"; else rm -f "$p/tls/crl.pem"; fi
printf '%s\n' "$4" > "$p/tls/listen"
printf '%s\n' "$5" > "$p/tls/issued-for"
if [ -n "$6" ]; then printf '%s\n' "$6" > "$p/bind-address"; else rm -f "$p/bind-address"; fi
"#
);

/// Starts the agent daemon (`$1` = `systemd`: as a system service; else in the background,
/// detached from this SSH session, through a login shell so the profile's PATH reaches the
/// apps). `$2` = 1 restarts a running daemon first (it restores its apps when it starts):
/// `stop-daemon` signals only the process holding the home's lock.
const AGENT_START: &str = host_script!(
    r#"b="$p/bin/pmfleet-agent"
if [ "$2" = 1 ]; then PMFLEET_AGENT_HOME="$p" "$b" stop-daemon > /dev/null; fi
if [ "$1" = systemd ]; then
  PMFLEET_AGENT_HOME="$p" "$b" startup --install
  systemctl restart pmfleet-agent
else
  PMFLEET_AGENT_HOME="$p" "${SHELL:-/bin/sh}" -l -c '"$0" ping' "$b" > /dev/null
fi
"#
);

/// Has the running daemon become the newly installed binary in place: same pid, apps kept
/// running. Exit code 3: the running daemon is too old to do that.
const AGENT_UPGRADE: &str = host_script!(
    r#"PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" upgrade
"#
);

/// Has the running daemon read its TLS files again (a new certificate and key).
const AGENT_TLS_RELOAD: &str = host_script!(
    r#"PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls reload
"#
);

pub fn agent_probe(home: &str) -> Script {
    Script::new(AGENT_PROBE).arg(home)
}

pub fn agent_upload(home: &str) -> Script {
    Script::new(AGENT_UPLOAD).arg(home)
}

pub fn agent_csr(home: &str, sans: &[String]) -> Script {
    Script::new(AGENT_CSR).arg(home).args(sans.iter().cloned())
}

/// What [`agent_tls`] installs on a host.
pub struct AgentTlsFiles<'a> {
    pub cert: &'a str,
    pub ca: &'a str,
    pub crl: &'a str,
    pub listen: &'a str,
    pub issued: &'a str,
    pub bind_address: &'a str,
}

pub fn agent_tls(home: &str, files: &AgentTlsFiles<'_>) -> Script {
    Script::new(AGENT_TLS).arg(home).args([
        files.cert,
        files.ca,
        files.crl,
        files.listen,
        files.issued,
        files.bind_address,
    ])
}

pub fn agent_upgrade(home: &str) -> Script {
    Script::new(AGENT_UPGRADE).arg(home)
}

pub fn agent_tls_reload(home: &str) -> Script {
    Script::new(AGENT_TLS_RELOAD).arg(home)
}

pub fn agent_start(home: &str, systemd: bool, restart: bool) -> Script {
    Script::new(AGENT_START)
        .arg(home)
        .arg(if systemd { "systemd" } else { "background" })
        .arg(if restart { "1" } else { "0" })
}
