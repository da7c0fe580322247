//! Secrets reaching an instance: its spec names them (`secret:NAME` values, with the deploy
//! root's secrets file), and they are read from that file as the instance starts — at every
//! start, so a restart after a crash, a reload or a restored daemon gets what the last deploy
//! wrote, and neither the spec nor the state file ever holds a value.

use std::collections::BTreeMap;

use pmfleet_shared::protocol::AppSpec;
use pmfleet_shared::secrets::{self, SecretsFile};

/// Replaces the secret references in `env` (an instance's environment for `spec`) by their
/// values. Nothing to do without references or without a secrets file; a file that cannot be
/// read or lacks a name fails the spawn, saying which (never a value).
pub(super) fn fill(spec: &AppSpec, env: &mut BTreeMap<String, String>) -> std::io::Result<()> {
    let Some(path) = &spec.secrets_file else {
        return Ok(());
    };
    if !secrets::has_references(env) {
        return Ok(());
    }
    let failed = |e: secrets::SecretsError| std::io::Error::other(e.to_string());
    let file = SecretsFile::read(path).map_err(failed)?;
    secrets::resolve_references(env, &file, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn spec(file: Option<std::path::PathBuf>) -> AppSpec {
        let app = pmfleet_shared::ecosystem::App::from_script("/bin/sh");
        let mut s = super::super::spec::resolve(&app, "/".as_ref(), &Default::default(), None)
            .expect("a script app resolves");
        s.secrets_file = file;
        s
    }

    #[test]
    fn references_are_filled_from_the_file_only_when_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        let file = SecretsFile {
            env_name: "production".into(),
            values: [("DB".to_string(), "pw-123456".to_string())].into(),
        };
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = || -> BTreeMap<String, String> {
            [("DB_PASSWORD".to_string(), "secret:DB".to_string())].into()
        };

        let mut by_hand = env();
        fill(&spec(None), &mut by_hand).unwrap();
        assert_eq!(by_hand["DB_PASSWORD"], "secret:DB");

        let mut deployed = env();
        fill(&spec(Some(path.clone())), &mut deployed).unwrap();
        assert_eq!(deployed["DB_PASSWORD"], "pw-123456");

        let mut missing: BTreeMap<String, String> =
            [("X".to_string(), "secret:OTHER".to_string())].into();
        let err = fill(&spec(Some(path.clone())), &mut missing).unwrap_err();
        assert!(err.to_string().contains("secret `OTHER`"), "{err}");

        let gone = dir.path().join("nope");
        let err = fill(&spec(Some(gone)), &mut env()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
