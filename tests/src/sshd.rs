//! Real OpenSSH sshd hosts for tests.
