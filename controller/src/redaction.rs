//! The controller's two outlets that do not go through [`crate::output`]: its log lines
//! (`PMFLEET_LOG`, on stderr) and a panic's message. Both are masked with
//! [`pmfleet_shared::redact`] like everything else pmfleet prints.

use std::io::Write;

use pmfleet_shared::redact::redact;

/// Stderr, with registered secrets masked in every write (tracing writes one event per
/// write).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStderr;

impl Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedStderr
    }
}

/// A panic prints its message and place with every registered secret masked (the default
/// hook would print the message as it is).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("pmfleet panicked{place}: {}", redact(&message));
    }));
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// Set (in small letters: not one of pmfleet's variables) for the copy of this test that
    /// panics.
    const CHILD: &str = "pmfleet_redaction_panic_child";

    #[test]
    fn a_panic_message_never_shows_a_secret() {
        let value = "panic-sentinel-7f3a9c";
        if std::env::var_os(CHILD).is_some() {
            pmfleet_shared::redact::register("DB_PASSWORD", value);
            super::install_panic_hook();
            panic!("could not connect with {value}");
        }
        let out = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "redaction::tests::a_panic_message_never_shows_a_secret",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run the panicking copy");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "the copy panicked:\n{all}");
        assert!(
            all.contains("pmfleet panicked at")
                && all.contains("could not connect with [secret DB_PASSWORD]"),
            "{all}"
        );
        assert!(!all.contains(value), "{all}");
    }
}
