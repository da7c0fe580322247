//! Hooks that call PM2 (`npm ci && pm2 reload ecosystem.config.js --env production`, the
//! `post-deploy` every `pm2 deploy` setup has): found here, so that loading the file can say
//! what to write instead. With the agent, the hosts skip such a call (the agent runs the apps
//! from the new release once it is current, and a PM2 copy would hold their ports); with
//! `agent: false`, the call belongs in `published`, which runs in `current` after the switch.

use std::collections::BTreeMap;
use std::path::Path;

use super::diagnostic::{FieldPath, Report};
use super::model::{App, DeployEnv};
use super::value::Value;

/// The first PM2 command in `hook` (`pm2 …`, `npx pm2 …`, `/usr/bin/pm2 …`, up to the end of
/// its simple command), if there is one.
pub fn first_pm2_call(hook: &str) -> Option<String> {
    hook.split(['\n', ';', '&', '|', '(', ')', '`'])
        .map(str::trim)
        .find_map(|command| {
            let mut words = command.split_whitespace().skip_while(|w| is_assignment(w));
            let first = words.next()?;
            let first = if matches!(first, "npx" | "exec" | "command" | "sudo") {
                words.next()?
            } else {
                first
            };
            let program = first.rsplit('/').next().unwrap_or(first);
            matches!(program, "pm2" | "pm2-runtime").then(|| command.to_owned())
        })
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Warns about every hook in `hooks` (field, value, command) that calls PM2, saying what
/// pmfleet does instead for an environment with (`agent`) or without the agent.
pub fn check(r: &mut Report, hooks: &[(FieldPath, &Value, String)], agent: bool) {
    for (field, value, command) in hooks {
        let Some(call) = first_pm2_call(command) else {
            continue;
        };
        // `published` is where a PM2 call belongs (and with the agent, an error of its own).
        if field.as_str().ends_with(".published") {
            continue;
        }
        let (message, hint) = if agent {
            (
                format!(
                    "this hook calls PM2 (`{call}`): the pmfleet agent runs this environment's apps, so the hosts skip that call and say so"
                ),
                "remove it: the agent starts or reloads the apps from the new release once it is `current` (docs/migrating-from-pm2.md)",
            )
        } else {
            (
                format!(
                    "this hook calls PM2 (`{call}`) before the new release is `current`, so PM2 would keep running the apps where they were"
                ),
                "move the PM2 call to `published`, which runs in `current` after the switch, or drop `agent: false` and let the agent run the apps",
            )
        };
        r.warning(value, field, message, Some(hint.to_owned()));
    }
}

/// PM2 resolves an app's directory once, when it starts it, and keeps it through every
/// reload: started in a release, it stays there. For each `agent: false` environment whose
/// `published` calls PM2, warns about every app whose `cwd` is not `<path>/current`.
pub fn check_published_cwd(r: &mut Report, apps: &[App], envs: &BTreeMap<String, DeployEnv>) {
    for env in envs.values() {
        let Some(published) = &env.hooks.published else {
            continue;
        };
        if env.agent.is_some() || first_pm2_call(published).is_none() {
            continue;
        }
        let current = format!("{}/current", env.path.trim_end_matches('/'));
        for app in apps {
            if app.cwd.as_deref() == Some(Path::new(&current)) {
                continue;
            }
            r.warning_at(
                None,
                &FieldPath::root().key("deploy").key(&env.name).key("published"),
                format!(
                    "PM2 keeps an app in the directory it first started it in: `{}` would stay on its first release through every `published` reload",
                    app.name
                ),
                Some(format!("give the app `cwd: \"{current}\"`, so that PM2 follows `current`")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pm2_calls_found_in_hooks() {
        let rows: &[(&str, Option<&str>)] = &[
            (
                "npm install && pm2 reload ecosystem.config.js --env production",
                Some("pm2 reload ecosystem.config.js --env production"),
            ),
            (
                "pm2 startOrReload ecosystem.json",
                Some("pm2 startOrReload ecosystem.json"),
            ),
            ("npm ci; npx pm2 restart api", Some("npx pm2 restart api")),
            (
                "/usr/local/bin/pm2 reload all",
                Some("/usr/local/bin/pm2 reload all"),
            ),
            (
                "NODE_ENV=production pm2 start app.js",
                Some("NODE_ENV=production pm2 start app.js"),
            ),
            (
                "npm ci\npm2-runtime start x.json",
                Some("pm2-runtime start x.json"),
            ),
            ("(cd app && pm2 save)", Some("pm2 save")),
            ("npm ci && npm run build", None),
            ("echo pm2 is not used here", None),
            ("ls pm2/", None),
            ("cat pm2.log", None),
            ("", None),
        ];
        for (hook, want) in rows {
            assert_eq!(first_pm2_call(hook).as_deref(), *want, "{hook:?}");
        }
    }

    /// What loading a file says about its PM2 calls: (deploy keys, app keys, severity and
    /// the start of the message, or nothing).
    #[test]
    fn what_loading_says_about_pm2_in_hooks() {
        use crate::ecosystem::{Format, LoadError, parse_str};
        // (is an error, how the message starts)
        type Said = Option<(bool, &'static str)>;
        let rows: &[(&str, &str, Said)] = &[
            // With the agent: the hosts skip the call.
            (
                r#""post-deploy": "npm ci && pm2 reload ecosystem.config.js --env production""#,
                "",
                Some((
                    false,
                    "this hook calls PM2 (`pm2 reload ecosystem.config.js --env production`): the pmfleet agent runs",
                )),
            ),
            (
                r#""post-deploy": ["npm ci", "pm2 startOrReload e.json"]"#,
                "",
                Some((false, "this hook calls PM2")),
            ),
            (
                r#""pre-deploy": "pm2 save""#,
                "",
                Some((false, "this hook calls PM2")),
            ),
            (r#""post-deploy": "npm ci""#, "", None),
            // `published` is for `agent: false` only.
            (
                r#""published": "pm2 reload all""#,
                "",
                Some((true, "`published` is for `agent: false` environments")),
            ),
            // Without the agent: a PM2 call before the switch belongs in `published`.
            (
                r#""agent": false, "post-deploy": "pm2 reload e.json""#,
                "",
                Some((
                    false,
                    "this hook calls PM2 (`pm2 reload e.json`) before the new release is `current`",
                )),
            ),
            (
                r#""agent": false, "published": "pm2 startOrReload e.json""#,
                "",
                Some((
                    false,
                    "PM2 keeps an app in the directory it first started it in: `web`",
                )),
            ),
            (
                r#""agent": false, "published": "pm2 startOrReload e.json""#,
                r#""cwd": "/srv/app/current""#,
                None,
            ),
            (r#""agent": false, "published": "./restart.sh""#, "", None),
        ];
        for (deploy_keys, app_keys, want) in rows {
            let sep = if app_keys.is_empty() { "" } else { ", " };
            let text = format!(
                r#"{{"apps": [{{"name": "web", "script": "s.js"{sep}{app_keys}}}],
                "deploy": {{"production": {{"host": "web1", "repo": "r", "path": "/srv/app", "ref": "main", {deploy_keys}}}}}}}"#
            );
            let said: Vec<(bool, String)> =
                match parse_str(&text, Format::Json, Path::new("e.json")) {
                    Ok(eco) => {
                        let mut said: Vec<(bool, String)> = eco
                            .warnings
                            .iter()
                            .map(|d| (false, d.message.clone()))
                            .collect();
                        for problems in eco.broken_environments.values() {
                            said.extend(problems.iter().map(|d| (d.is_error(), d.message.clone())));
                        }
                        said.retain(|(_, m)| !m.contains("cannot be used"));
                        said
                    }
                    Err(LoadError::Invalid { diagnostics, .. }) => diagnostics
                        .iter()
                        .map(|d| (d.is_error(), d.message.clone()))
                        .collect(),
                    Err(e) => panic!("{deploy_keys}: {e}"),
                };
            match want {
                None => assert!(said.is_empty(), "{deploy_keys} {app_keys}: {said:?}"),
                Some((error, start)) => assert!(
                    said.len() == 1 && said[0].0 == *error && said[0].1.starts_with(start),
                    "{deploy_keys} {app_keys}: {said:?}"
                ),
            }
        }
    }
}
