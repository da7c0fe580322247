//! Writing the deploy root's secrets file, `<root>/.pmfleet/secrets`: the values come on
//! stdin (never as an argument, so never on a command line), into a temporary file created
//! 0600 under `umask 077` and renamed over the old one — the file is never readable by
//! anyone but the deploy user, and never half-written.

use crate::shell::Script;

/// Reads the new file from stdin; `$1` (after the root) is the run that must hold the lock.
const WRITE_SECRETS: &str = owned_script!(
    r#"umask 077
d="$p/.pmfleet"; mkdir -p "$d"
t="$d/secrets.tmp.$$"
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod 600 "$t"
mv -f "$t" "$d/secrets"
trap - EXIT
"#
);

/// `WRITE_SECRETS` for run `run`; stream the file's bytes into its stdin.
pub fn write_secrets(root: &str, run: &str) -> Script {
    Script::new(WRITE_SECRETS).arg(root).arg(run)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::deploy::scripts::testing::Host;

    fn write(host: &Host, run: &str, bytes: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(write_secrets(&host.root(), run).render())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn the_secrets_file_is_written_0600_from_stdin_by_the_lock_holder_only() {
        let host = Host::set_up();
        host.lock_for("run-1");
        let out = write(&host, "run-1", b"{\"env_name\":\"p\",\"values\":{}}");
        assert!(out.status.success(), "{out:?}");
        let path = host.path().join(".pmfleet/secrets");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"env_name\":\"p\",\"values\":{}}"
        );

        // A run that lost its lock writes nothing.
        let out = write(&host, "run-2", b"other");
        assert_eq!(
            out.status.code(),
            Some(crate::deploy::scripts::LOCK_LOST_STATUS)
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"env_name\":\"p\",\"values\":{}}"
        );
        let left: Vec<_> = std::fs::read_dir(host.path().join(".pmfleet"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
