//! The agent's side of a host: probing, installing the binary (checked against its SHA-256),
//! its TLS files and revocation list, the deploy roots it may run releases of, starting and
//! upgrading the daemon.

use crate::shell::Script;

/// Describes the agent side of a host; `$1` is the agent's home. Prints `os=`, `arch=`,
/// `sum=` (SHA-256 of the installed agent binary, if any), `systemd=`, `issued=` (what the
/// installed certificate was issued for), `tls=` (`tls status --json` on one line: the
/// certificate's expiry and serial), `crl=` (SHA-256 of the installed `crl.pem`, if any) and
/// `running=` (whether a daemon holds the home's lock; an agent binary without
/// `daemon-status` is asked through `flock`).
const AGENT_PROBE: &str = host_script!(
    r#"echo "os=$(uname -s)"
echo "arch=$(uname -m)"
b="$p/bin/pmfleet-agent"
if [ -x "$b" ]; then echo "sum=$(sha256sum "$b" | cut -d' ' -f1)"; else echo "sum="; fi
if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ]; then echo "systemd=yes"; else echo "systemd=no"; fi
echo "issued=$(cat "$p/tls/issued-for" 2>/dev/null || true)"
if [ -x "$b" ]; then echo "tls=$(PMFLEET_AGENT_HOME="$p" "$b" tls status --json 2>/dev/null | tr -d '\n' || true)"; else echo "tls="; fi
if [ -f "$p/tls/crl.pem" ]; then echo "crl=$(sha256sum "$p/tls/crl.pem" | cut -d' ' -f1)"; else echo "crl="; fi
s=3; if [ -x "$b" ]; then PMFLEET_AGENT_HOME="$p" "$b" daemon-status >/dev/null 2>&1 && s=0 || s=$?; fi
if [ "$s" = 2 ] && [ -f "$p/agent.lock" ] && command -v flock >/dev/null 2>&1; then flock -n -s "$p/agent.lock" true && s=3 || s=0; fi
if [ "$s" = 0 ]; then echo "running=yes"; else echo "running=no"; fi
"#
);

/// Installs the agent binary from stdin into `<home>/bin`, atomically, once its SHA-256 is
/// `$1`: an upload cut short (or altered) is removed and refused, and the installed binary
/// stays as it was.
const AGENT_UPLOAD: &str = host_script!(
    r#"mkdir -p "$p/bin"
chmod 700 "$p"
n="$p/bin/.pmfleet-agent.new"
cat > "$n"
got=$(sha256sum "$n" | cut -d' ' -f1)
if [ "$got" != "$1" ]; then
  rm -f "$n"
  echo "the agent binary arrived incomplete or altered (SHA-256 $got, expected $1): the installed agent is left as it was; run setup again" >&2
  exit 1
fi
chmod 755 "$n"
mv -f "$n" "$p/bin/pmfleet-agent"
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

/// Registers the deploy root `$1` (`~` expanded here, symlinks resolved) in `<home>/roots`:
/// the only roots whose releases the agent runs when asked over mutual TLS.
const AGENT_ROOTS: &str = host_script!(
    r#"r=$1
case $r in "~") r=$HOME ;; "~/"*) r=$HOME/${r#"~/"} ;; esac
r=$(cd "$r" && pwd -P)
mkdir -p "$p"
chmod 700 "$p"
touch "$p/roots"
chmod 600 "$p/roots"
grep -qxF "$r" "$p/roots" || printf '%s\n' "$r" >> "$p/roots"
"#
);

/// Writes where the agent serves its metrics (`$1`: `off`, `tls` or a loopback `ADDR:PORT`)
/// into `<home>/metrics`, which the daemon follows.
const AGENT_METRICS: &str = host_script!(
    r#"mkdir -p "$p"
chmod 700 "$p"
umask 077
printf '%s\n' "$1" > "$p/.metrics.new"
mv -f "$p/.metrics.new" "$p/metrics"
"#
);

/// Installs the fleet's revocation list `$1` (empty: none) as `<home>/tls/crl.pem`,
/// atomically; with `$2` = 1 the running daemon reads its TLS files again, so the revocations
/// apply to the next connection.
const AGENT_CRL: &str = host_script!(
    r#"[ -d "$p/tls" ] || { echo "no agent identity in $p/tls: run setup first" >&2; exit 1; }
umask 077
if [ -n "$1" ]; then
  printf '%s\n' "$1" > "$p/tls/.crl.pem.new"
  mv -f "$p/tls/.crl.pem.new" "$p/tls/crl.pem"
else
  rm -f "$p/tls/crl.pem"
fi
if [ "$2" = 1 ]; then PMFLEET_AGENT_HOME="$p" exec "$p/bin/pmfleet-agent" tls reload; fi
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
  # Through a login shell, so the unit records the profile's PATH (nvm, asdf) for the apps.
  PMFLEET_AGENT_HOME="$p" "${SHELL:-/bin/sh}" -l -c '"$0" startup --install' "$b"
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

pub fn agent_upload(home: &str, sha256: &str) -> Script {
    Script::new(AGENT_UPLOAD).arg(home).arg(sha256)
}

/// `AGENT_CRL`: install `crl` (PEM, trimmed; empty for none), and with `reload` have the
/// running daemon apply it.
pub fn agent_crl(home: &str, crl: &str, reload: bool) -> Script {
    Script::new(AGENT_CRL)
        .arg(home)
        .arg(crl)
        .arg(if reload { "1" } else { "0" })
}

/// `AGENT_ROOTS`: register the deploy root `root` with the agent of `home`.
pub fn agent_roots(home: &str, root: &str) -> Script {
    Script::new(AGENT_ROOTS).arg(home).arg(root)
}

/// `AGENT_METRICS`: where the agent of `home` serves its metrics.
pub fn agent_metrics(home: &str, listen: &str) -> Script {
    Script::new(AGENT_METRICS).arg(home).arg(listen)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The upload script with `stdin` as what arrived, on a real `sh`: its exit status and
    /// stderr.
    fn upload(home: &std::path::Path, sha256: &str, stdin: &[u8]) -> (bool, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(agent_upload(&home.display().to_string(), sha256).render())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn an_upload_cut_short_leaves_the_previous_agent_binary_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("agent");
        let binary = home.join("bin/pmfleet-agent");
        let old = b"#!/bin/sh\necho old agent\n".to_vec();
        let new: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let sum = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let (ok, err) = upload(&home, &sum(&old), &old);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), old);

        // The connection dropped after half of the new binary: EOF on stdin, the full sum.
        let (ok, err) = upload(&home, &sum(&new), &new[..new.len() / 2]);
        assert!(!ok, "a truncated upload must fail");
        assert!(err.contains("incomplete"), "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), old, "the old binary stays");
        assert!(!home.join("bin/.pmfleet-agent.new").exists());

        let (ok, err) = upload(&home, &sum(&new), &new);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&binary).unwrap(), new);
    }
}
