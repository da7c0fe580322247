//! Which apps a verb's words name, as PM2 reads them: `all`, a numeric id (`stop 0`), an app
//! name, a namespace, or an ecosystem file (its apps); several words act on each in turn
//! (`restart api worker`). A pure decision over what `list` answered, so it is tested by a
//! table; the verbs send one request per app it returns.
//!
//! One difference with PM2, said in the notes it returns: an id names one instance, but
//! pmfleet acts on whole apps, so `stop 3` stops every instance of the app instance 3 belongs
//! to.

use pmfleet_shared::protocol::{ProcessInfo, Target};

/// What the words resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// In the order the words named them, each once.
    pub targets: Vec<Target>,
    /// Lines for the user about how a word was read (an id that stands for a whole app).
    pub notes: Vec<String>,
}

/// Resolves `words` against the instances the agent runs. `file_apps` loads an ecosystem
/// file's app names (after `--only`) for a word that names one.
pub fn resolve(
    words: &[String],
    procs: &[ProcessInfo],
    is_file: impl Fn(&str) -> bool,
    mut file_apps: impl FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Resolved, String> {
    let mut out = Resolved {
        targets: Vec::new(),
        notes: Vec::new(),
    };
    if words.iter().any(|w| w == "all") {
        out.targets.push(Target::All);
        return Ok(out);
    }
    let push = |out: &mut Resolved, name: &str| {
        let t = Target::App(name.to_owned());
        if !out.targets.contains(&t) {
            out.targets.push(t);
        }
    };
    for word in words {
        if let Ok(id) = word.parse::<u32>() {
            let Some(p) = procs.iter().find(|p| p.id == id) else {
                return Err(format!(
                    "no process with id {id} (see `pmfleet-agent list`)"
                ));
            };
            let instances = procs.iter().filter(|q| q.name == p.name).count();
            if instances > 1 {
                out.notes.push(format!(
                    "id {id} is instance {} of `{}`: pmfleet acts on whole apps, so on its {instances} instances",
                    p.instance, p.name
                ));
            }
            push(&mut out, &p.name);
        } else if procs.iter().any(|p| &p.name == word) {
            push(&mut out, word);
        } else if is_file(word) {
            for name in file_apps(word)? {
                push(&mut out, &name);
            }
        } else {
            let mut in_namespace: Vec<&str> = procs
                .iter()
                .filter(|p| &p.namespace == word)
                .map(|p| p.name.as_str())
                .collect();
            in_namespace.dedup();
            if in_namespace.is_empty() {
                // Not known: the agent answers with its own "not found".
                push(&mut out, word);
            }
            for name in in_namespace {
                push(&mut out, name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use pmfleet_shared::protocol::{ExecModeSpec, Status};

    use super::*;

    fn proc(id: u32, name: &str, instance: u32, namespace: &str) -> ProcessInfo {
        ProcessInfo {
            id,
            name: name.into(),
            namespace: namespace.into(),
            mode: ExecModeSpec::Cluster,
            instance,
            pid: Some(1000 + id),
            status: Status::Online,
            uptime_ms: None,
            restarts: 0,
            cpu_percent: None,
            rss_bytes: None,
            release: None,
            sha: None,
            extra: Default::default(),
        }
    }

    fn app(n: &str) -> Target {
        Target::App(n.into())
    }

    #[test]
    fn words_name_apps_as_pm2_reads_them() {
        let procs = [
            proc(0, "api", 0, "web"),
            proc(1, "api", 1, "web"),
            proc(2, "worker", 0, "jobs"),
            proc(3, "mailer", 0, "jobs"),
        ];
        let files = |f: &str| match f {
            "ecosystem.json" => Ok(vec!["worker".to_string(), "cron".to_string()]),
            _ => Err(format!("{f}: no such file")),
        };
        let is_file = |w: &str| w.ends_with(".json");
        // (words, targets, notes)
        let table: Vec<(&[&str], Vec<Target>, usize)> = vec![
            (&["api"], vec![app("api")], 0),
            (&["api", "worker"], vec![app("api"), app("worker")], 0),
            (&["2"], vec![app("worker")], 0),
            (&["1"], vec![app("api")], 1),
            (&["0", "1", "api"], vec![app("api")], 2),
            (&["all"], vec![Target::All], 0),
            (&["api", "all"], vec![Target::All], 0),
            (&["jobs"], vec![app("worker"), app("mailer")], 0),
            (&["web", "api"], vec![app("api")], 0),
            (&["ecosystem.json"], vec![app("worker"), app("cron")], 0),
            (&["nosuch"], vec![app("nosuch")], 0),
        ];
        for (words, targets, notes) in table {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let got = resolve(&words, &procs, is_file, files).unwrap();
            assert_eq!(got.targets, targets, "{words:?}");
            assert_eq!(got.notes.len(), notes, "{words:?}: {:?}", got.notes);
        }
    }

    #[test]
    fn an_unknown_id_or_a_bad_file_is_an_error() {
        let procs = [proc(0, "api", 0, "default")];
        let files = |f: &str| Err(format!("{f}: cannot read"));
        let is_file = |w: &str| w.ends_with(".json");
        let err = resolve(&["7".to_string()], &procs, is_file, files).unwrap_err();
        assert!(err.contains("no process with id 7"), "{err}");
        let err = resolve(&["x.json".to_string()], &procs, is_file, files).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn an_id_of_a_whole_app_needs_no_note() {
        let procs = [proc(5, "solo", 0, "default")];
        let got = resolve(&["5".to_string()], &procs, |_| false, |_| Ok(vec![])).unwrap();
        assert_eq!(got.targets, vec![app("solo")]);
        assert!(got.notes.is_empty());
    }
}
