//! Where the ecosystem file names a secret (`"DB_PASSWORD": "secret:DB_PASSWORD"`): in
//! `deploy.<env>.env`, in an app's `env` or `env_<env>`, in a notification URL. Checked before
//! anything touches a host, so a name no secrets file declares stops the deploy at once.
//!
//! A hook's environment is split here too: plain values may go on the hook's command line as
//! before; the values of secrets must not, and go to the host on the hook's stdin.

use pmfleet_shared::ecosystem::{DeployEnv, Ecosystem};
use pmfleet_shared::secrets::reference;

use super::Resolved;

/// `NAME=value` pairs, in order.
pub type EnvPairs = Vec<(String, String)>;

/// One place the file names a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The field path, e.g. `apps[0].env.DB_PASSWORD`.
    pub field: String,
    pub name: String,
}

/// Every reference environment `env` makes: its `env` block, each app's `env` and
/// `env_<env>`, and the notification URLs it uses.
pub fn references(eco: &Ecosystem, env: &DeployEnv) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut add = |field: String, value: &str| {
        if let Some(name) = reference(value) {
            out.push(Reference {
                field,
                name: name.to_owned(),
            });
        }
    };
    for (key, value) in &env.env {
        add(format!("deploy.{}.env.{key}", env.name), value);
    }
    for (i, app) in eco.apps.iter().enumerate() {
        for (key, value) in &app.env {
            add(format!("apps[{i}].env.{key}"), value);
        }
        if let Some(block) = app.env_by_name.get(&env.name) {
            for (key, value) in block {
                add(format!("apps[{i}].env_{}.{key}", env.name), value);
            }
        }
    }
    for (where_, target) in crate::notify::targets_of(eco, env) {
        add(format!("{where_}.url"), &target.url);
    }
    out
}

/// The references whose secret `resolved` lacks, one sentence each.
pub fn missing(references: &[Reference], declared: &[String]) -> Vec<String> {
    references
        .iter()
        .filter(|r| !declared.contains(&r.name))
        .map(|r| {
            format!(
                "{} names secret `{}`, which neither .pmfleet/secrets nor .pmfleet/secrets.<env> next to the ecosystem file declares",
                r.field, r.name
            )
        })
        .collect()
}

/// A hook's environment split in two: the pairs that may be passed as arguments, and the
/// secrets (a `secret:NAME` value replaced by the value) that go on stdin.
pub fn split_hook_env(env: &[(String, String)], secrets: &Resolved) -> (EnvPairs, EnvPairs) {
    let mut plain = Vec::new();
    let mut hidden = Vec::new();
    for (key, value) in env {
        match reference(value).and_then(|name| secrets.get(name)) {
            Some(secret) => hidden.push((key.clone(), secret.to_owned())),
            None => plain.push((key.clone(), value.clone())),
        }
    }
    (plain, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_gets_secret_values_apart_from_the_rest() {
        let secrets = Resolved::from_values(
            "p",
            [("DB".to_string(), "split-secret-value".to_string())].into(),
        );
        let env = vec![
            ("NODE_ENV".to_string(), "production".to_string()),
            ("DB_PASSWORD".to_string(), "secret:DB".to_string()),
        ];
        let (plain, hidden) = split_hook_env(&env, &secrets);
        assert_eq!(plain, [("NODE_ENV".to_string(), "production".to_string())]);
        assert_eq!(
            hidden,
            [("DB_PASSWORD".to_string(), "split-secret-value".to_string())]
        );
    }

    #[test]
    fn references_in_every_env_block_and_the_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecosystem.json");
        std::fs::write(
            &path,
            r#"{"apps": [{"name": "api", "script": "a.js",
                          "env": {"A": "secret:ONE", "P": "plain"},
                          "env_production": {"B": "secret:TWO"},
                          "env_staging": {"C": "secret:THREE"}}],
                "deploy": {"production": {"host": "h", "repo": "r", "path": "/p", "ref": "main",
                                           "env": {"D": "secret:ONE"}}}}"#,
        )
        .unwrap();
        let eco = pmfleet_shared::ecosystem::load(&path).unwrap();
        let env = eco.environment("production").unwrap();
        let refs = references(&eco, env);
        let got: Vec<(&str, &str)> = refs
            .iter()
            .map(|r| (r.field.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("deploy.production.env.D", "ONE"),
                ("apps[0].env.A", "ONE"),
                ("apps[0].env_production.B", "TWO"),
            ]
        );
        let missing = missing(&refs, &["ONE".to_string()]);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("apps[0].env_production.B names secret `TWO`"));
    }
}
