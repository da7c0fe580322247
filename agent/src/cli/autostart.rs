//! `autostart: false` in an ecosystem file: the apps PM2 adds to its list without starting
//! them. The checked ecosystem model has no such field (its loader warns that the key is
//! ignored), so the CLI reads the value itself, and only when that warning says the file has
//! the key: JSON with serde_json (or, for the JavaScript-like JSON PM2 accepts, by letting
//! node evaluate it as PM2 does), YAML with saphyr, JavaScript through node. The raw apps are
//! matched to the checked ones by their position in the file.

use std::path::Path;
use std::process::{Command, Stdio};

use pmfleet_shared::ecosystem::{Ecosystem, Format};
use serde_json::Value;

/// The names of the apps whose `autostart` is false (`false`, `0` or `"false"`).
pub fn disabled(eco: &Ecosystem) -> Result<Vec<String>, String> {
    let mentioned = eco
        .warnings
        .iter()
        .any(|w| w.field.ends_with(".autostart") || w.field == "autostart");
    if !mentioned {
        return Ok(Vec::new());
    }
    let raw = raw_apps(&eco.source)?;
    Ok(eco
        .apps
        .iter()
        .zip(&raw)
        .filter(|(app, raw)| {
            raw.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| n == app.name)
                && raw.get("autostart").is_some_and(is_false)
        })
        .map(|(app, _)| app.name.clone())
        .collect())
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Bool(false)) || v.as_i64() == Some(0) || v.as_str() == Some("false")
}

/// The app objects of the file, in order, in any of the shapes PM2 reads: `apps` as a list
/// or one object, a top-level list, or one app object.
fn raw_apps(path: &Path) -> Result<Vec<Value>, String> {
    let root = match Format::from_path(path) {
        Some(Format::JavaScript) => with_node(path, false)?,
        Some(Format::Yaml) => yaml(path)?,
        _ => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) => with_node(path, true)?,
            }
        }
    };
    let apps = match root {
        Value::Object(mut top) => match top.remove("apps") {
            Some(Value::Array(apps)) => apps,
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => Vec::new(),
            None => vec![Value::Object(top)],
        },
        Value::Array(apps) => apps,
        _ => Vec::new(),
    };
    Ok(apps)
}

fn yaml(path: &Path) -> Result<Value, String> {
    use saphyr::{LoadableYamlNode, Yaml};
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let docs = Yaml::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(docs.first().map(yaml_to_json).unwrap_or(Value::Null))
}

fn yaml_to_json(y: &saphyr::Yaml) -> Value {
    use saphyr::{Scalar, Yaml};
    match y {
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), yaml_to_json(v))))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// What node makes of the file: a module's export, or (`expression`) the file's text as a
/// JavaScript expression, as PM2 reads a `.json` file.
fn with_node(path: &Path, expression: bool) -> Result<Value, String> {
    const MODULE: &str = "const f = require('node:url').pathToFileURL(process.argv[1]).href; \
        import(f).then(async (m) => { let c = m && m.default !== undefined ? m.default : m; \
        c = await c; process.stdout.write(JSON.stringify(c)); })";
    const EXPRESSION: &str = "const t = require('node:fs').readFileSync(process.argv[1], 'utf8'); \
        process.stdout.write(JSON.stringify(eval('(' + t + ')')))";
    let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg("-e")
        .arg(if expression { EXPRESSION } else { MODULE })
        .arg(&absolute)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run node to read {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("node could not read {}", path.display()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> (tempfile::TempDir, Ecosystem) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("a.js"), "").unwrap();
        let eco = pmfleet_shared::ecosystem::load(&path).unwrap();
        (dir, eco)
    }

    #[test]
    fn autostart_false_is_read_from_json_and_yaml() {
        let (_d, eco) = load(
            "apps.json",
            r#"{"apps": [{"name": "on", "script": "a.js"},
                         {"name": "off", "script": "a.js", "autostart": false},
                         {"name": "yes", "script": "a.js", "autostart": true}]}"#,
        );
        assert_eq!(disabled(&eco).unwrap(), ["off"]);
        let (_d, eco) = load(
            "apps.yml",
            "apps:\n  - name: off\n    script: a.js\n    autostart: false\n  - name: on\n    script: a.js\n",
        );
        assert_eq!(disabled(&eco).unwrap(), ["off"]);
    }

    #[test]
    fn a_file_without_the_key_is_not_read_again() {
        let (dir, eco) = load(
            "apps.json",
            r#"{"apps": [{"name": "on", "script": "a.js"}]}"#,
        );
        // Gone: reading it again would fail, so an empty answer proves it was not read.
        std::fs::remove_file(dir.path().join("apps.json")).unwrap();
        assert_eq!(disabled(&eco).unwrap(), Vec::<String>::new());
    }
}
