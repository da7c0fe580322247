//! The keys of one object: which ones pmfleet reads, under which spellings, and what happens to
//! the others — PM2's way throughout, so that a file PM2 runs is never refused for its keys.
//!
//! - A key may be written under several spellings (PM2's aliases and camelCase forms: `output`
//!   for `out_file`, `maxMemoryRestart` for `max_memory_restart`). Given together, the one PM2
//!   would use wins — the first in PM2's order whose value is "truthy" in JavaScript's sense,
//!   as `Config.validateJSON` picks it — and the others get a warning.
//! - An unknown key is a warning with "did you mean" (PM2 ignores it); a PM2 key pmfleet does
//!   not implement is a warning saying what pmfleet does instead.
//! - The same spelling twice: in JSON the last one counts (as JavaScript reads an object
//!   literal), with a warning; in YAML it is an error (js-yaml, PM2's reader, refuses it).

use std::collections::HashMap;

use super::diagnostic::{FieldPath, Report, suggestion_hint};
use super::value::{Entry, Kind, Value};

/// One key an object accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDef {
    /// pmfleet's name for it (what messages and docs use).
    pub name: &'static str,
    /// Every spelling, in PM2's order of precedence; empty means `name` and its camelCase
    /// form, which PM2 accepts for every key.
    pub spellings: &'static [&'static str],
}

impl KeyDef {
    pub const fn new(name: &'static str) -> KeyDef {
        KeyDef {
            name,
            spellings: &[],
        }
    }

    /// A key with other spellings: `spellings` lists all of them (with `name`) in PM2's order.
    pub const fn spelled(name: &'static str, spellings: &'static [&'static str]) -> KeyDef {
        KeyDef { name, spellings }
    }

    /// Where `key` stands in PM2's order, if it is a spelling of this key.
    fn rank(&self, key: &str) -> Option<usize> {
        if self.spellings.is_empty() {
            if key == self.name {
                Some(0)
            } else {
                (camel_case(self.name) == key).then_some(1)
            }
        } else {
            self.spellings.iter().position(|s| *s == key)
        }
    }

    fn all_spellings(&self) -> Vec<String> {
        if self.spellings.is_empty() {
            let mut out = vec![self.name.to_owned()];
            let camel = camel_case(self.name);
            if camel != self.name {
                out.push(camel);
            }
            out
        } else {
            self.spellings.iter().map(|s| (*s).to_owned()).collect()
        }
    }
}

/// PM2's camelCase alias of a key (`Config.schema`): `max_memory_restart` →
/// `maxMemoryRestart`; a one-letter part keeps its case.
pub(crate) fn camel_case(key: &str) -> String {
    key.split('_')
        .enumerate()
        .map(|(i, part)| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) if i > 0 && part.chars().count() > 1 => {
                    first.to_uppercase().chain(chars).collect::<String>()
                }
                _ => part.to_owned(),
            }
        })
        .collect()
}

/// What an object accepts: the keys pmfleet reads, and the PM2 keys it knows but does not
/// implement (with a note on what pmfleet does instead).
#[derive(Debug)]
pub(crate) struct Schema {
    pub keys: &'static [KeyDef],
    pub unimplemented: &'static [(&'static str, &'static str)],
}

impl Schema {
    fn find(&self, key: &str) -> Option<(&KeyDef, usize)> {
        self.keys
            .iter()
            .find_map(|k| k.rank(key).map(|rank| (k, rank)))
    }

    fn unimplemented(&self, key: &str) -> Option<(&'static str, &'static str)> {
        self.unimplemented
            .iter()
            .find(|(name, _)| *name == key || camel_case(name) == key)
            .copied()
    }

    fn all_names(&self) -> Vec<String> {
        self.keys.iter().flat_map(KeyDef::all_spellings).collect()
    }
}

/// The keys of one object that count, after aliases and unknown keys were dealt with.
#[derive(Debug)]
pub(crate) struct Selected<'v> {
    /// `(pmfleet's name, the entry that counts)`, in the order written.
    pub entries: Vec<(&'static str, &'v Entry)>,
}

impl Selected<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| *n == name)
    }
}

/// Sorts the keys of an object (see the module documentation). Problems are reported at each
/// key written under `f`.
pub(crate) fn select<'v>(
    r: &mut Report,
    schema: &Schema,
    entries: impl IntoIterator<Item = &'v Entry>,
    f: &FieldPath,
) -> Selected<'v> {
    // By pmfleet's name: (PM2 rank, index written, entry), every spelling seen.
    let mut groups: HashMap<&'static str, Vec<(usize, usize, &'v Entry)>> = HashMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let field = f.key(&entry.key);
        let Some((def, rank)) = schema.find(&entry.key) else {
            unknown_key(r, schema, entry, &field);
            continue;
        };
        let group = groups.entry(def.name).or_default();
        if let Some((_, _, first)) = group.iter().find(|(_, _, e)| e.key == entry.key) {
            let at = first
                .key_pos
                .map(|p| format!(" (first at {p})"))
                .unwrap_or_default();
            r.error_at(
                entry.key_pos,
                &field,
                format!("`{}` is given twice{at}", entry.key),
                Some("keep one of them".to_owned()),
            );
            continue;
        }
        if group.is_empty() {
            order.push(def.name);
        }
        group.push((rank, index, entry));
    }
    let mut chosen: Vec<(usize, &'static str, &'v Entry)> = Vec::new();
    for name in order {
        let Some(mut group) = groups.remove(name) else {
            continue;
        };
        group.sort_by_key(|(rank, _, _)| *rank);
        let pick = group
            .iter()
            .position(|(_, _, e)| truthy(&e.value))
            .unwrap_or(0);
        let Some(&(_, index, winner)) = group.get(pick) else {
            continue;
        };
        for (i, (_, _, other)) in group.iter().enumerate() {
            if i == pick {
                continue;
            }
            let message = if i > pick {
                format!(
                    "`{}` and `{}` are the same setting; PM2 uses `{}`, so `{}` is ignored",
                    other.key, winner.key, winner.key, other.key
                )
            } else {
                format!(
                    "`{}` and `{}` are the same setting; PM2 reads `{}` first but skips its empty, false or zero value and uses `{}`, so `{}` is ignored",
                    other.key, winner.key, other.key, winner.key, other.key
                )
            };
            r.warning_at(
                other.key_pos,
                &f.key(&other.key),
                message,
                Some("keep one of them".to_owned()),
            );
        }
        chosen.push((index, name, winner));
    }
    chosen.sort_by_key(|(index, _, _)| *index);
    Selected {
        entries: chosen.into_iter().map(|(_, n, e)| (n, e)).collect(),
    }
}

/// JavaScript's truthiness, which decides between two spellings of a key in PM2.
pub(crate) fn truthy(v: &Value) -> bool {
    match &v.kind {
        Kind::Null => false,
        Kind::Bool(b) => *b,
        Kind::Int(i) => *i != 0,
        Kind::Float(x) => *x != 0.0 && !x.is_nan(),
        Kind::Str(s) => !s.is_empty(),
        Kind::Seq(_) | Kind::Map(_) => true,
    }
}

/// A key the schema does not read: a warning in every case, naming what pmfleet does instead
/// for a PM2 key it does not implement, with "did you mean" for anything else.
pub(crate) fn unknown_key(r: &mut Report, schema: &Schema, entry: &Entry, field: &FieldPath) {
    if let Some((name, note)) = schema.unimplemented(&entry.key) {
        r.warning_at(
            entry.key_pos,
            field,
            format!("`{name}` is a PM2 setting that pmfleet does not implement; it is ignored"),
            (!note.is_empty()).then(|| note.to_owned()),
        );
        return;
    }
    let names = schema.all_names();
    let hint = suggestion_hint(&entry.key, names.iter().map(String::as_str))
        .or_else(|| suggestion_hint(&entry.key, schema.unimplemented.iter().map(|(n, _)| *n)));
    r.warning_at(
        entry.key_pos,
        field,
        format!(
            "unknown key `{}` is ignored (as PM2 ignores it)",
            entry.key.escape_debug()
        ),
        hint,
    );
}

/// JSON only: where an object gives the same key twice, the last one counts, as when PM2
/// evaluates the file; the earlier ones are dropped with a warning.
pub(crate) fn last_key_wins(r: &mut Report, v: &mut Value, f: &FieldPath) {
    match &mut v.kind {
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                last_key_wins(r, item, &f.index(i));
            }
        }
        Kind::Map(entries) => {
            let mut keep = vec![true; entries.len()];
            for (i, entry) in entries.iter().enumerate() {
                let later = entries
                    .iter()
                    .skip(i + 1)
                    .find(|other| other.key == entry.key);
                if let Some(later) = later {
                    if let Some(slot) = keep.get_mut(i) {
                        *slot = false;
                    }
                    let at = later
                        .key_pos
                        .map(|p| format!(" (again at {p})"))
                        .unwrap_or_default();
                    r.warning_at(
                        entry.key_pos,
                        &f.key(&entry.key),
                        format!(
                            "`{}` is given twice{at}; the last one counts, as when PM2 reads the file",
                            entry.key
                        ),
                        Some("remove one of them".to_owned()),
                    );
                }
            }
            let mut flags = keep.into_iter();
            entries.retain(|_| flags.next().unwrap_or(true));
            for entry in entries.iter_mut() {
                let field = f.key(&entry.key);
                last_key_wins(r, &mut entry.value, &field);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecosystem::json;
    use std::path::Path;

    static SCHEMA: Schema = Schema {
        keys: &[
            KeyDef::spelled(
                "out_file",
                &["out_file", "out_log", "output", "out", "outFile"],
            ),
            KeyDef::new("max_memory_restart"),
            KeyDef::new("name"),
        ],
        unimplemented: &[("pid_file", "no pid files")],
    };

    fn run(text: &str) -> (Vec<(String, String)>, Vec<crate::ecosystem::Diagnostic>) {
        let v = json::parse(text).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        let picked: Vec<(String, String)> =
            select(&mut r, &SCHEMA, v.as_map().unwrap(), &FieldPath::root())
                .entries
                .iter()
                .map(|(n, e)| ((*n).to_owned(), e.key.clone()))
                .collect();
        (picked, r.into_diagnostics())
    }

    #[test]
    fn camel_case_is_pm2s() {
        assert_eq!(camel_case("max_memory_restart"), "maxMemoryRestart");
        assert_eq!(
            camel_case("exp_backoff_restart_delay"),
            "expBackoffRestartDelay"
        );
        assert_eq!(camel_case("name"), "name");
        assert_eq!(camel_case("a_b_cd"), "abCd");
    }

    #[test]
    fn spellings_given_together_follow_pm2s_order_and_truthiness() {
        let table: &[(&str, &str)] = &[
            (r#"{"out": "a", "output": "b"}"#, "output"),
            (r#"{"output": "b", "out_file": "c"}"#, "out_file"),
            (r#"{"out_file": "", "out": "a"}"#, "out"),
            (r#"{"outFile": "z", "out_log": "l"}"#, "out_log"),
            (r#"{"out_file": "", "out": null}"#, "out_file"),
        ];
        for (text, want) in table {
            let (picked, diags) = run(text);
            assert_eq!(
                picked,
                vec![("out_file".to_owned(), (*want).to_owned())],
                "{text}"
            );
            assert_eq!(diags.len(), 1, "{text}: {diags:?}");
            assert!(!diags[0].is_error());
            assert!(
                diags[0].message.contains("are the same setting"),
                "{diags:?}"
            );
        }
        let (picked, diags) = run(r#"{"maxMemoryRestart": "1G", "name": "x"}"#);
        assert_eq!(
            picked[0],
            (
                "max_memory_restart".to_owned(),
                "maxMemoryRestart".to_owned()
            )
        );
        assert!(diags.is_empty());
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let (picked, diags) = run(r#"{"nmae": "x", "pidFile": "p", "zzz": 1}"#);
        assert!(picked.is_empty());
        assert_eq!(diags.len(), 3);
        assert!(diags.iter().all(|d| !d.is_error()));
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `name`?"));
        assert!(diags[1].message.contains("`pid_file` is a PM2 setting"));
        assert_eq!(diags[2].hint, None);
    }

    #[test]
    fn json_duplicates_keep_the_last() {
        let mut v = json::parse(r#"{"a": 1, "b": {"c": 1, "c": 2}, "a": 3}"#).unwrap();
        let mut r = Report::new(Path::new("e.json"));
        last_key_wins(&mut r, &mut v, &FieldPath::root());
        assert_eq!(v.get("a").unwrap().value.kind, Kind::Int(3));
        assert_eq!(v.as_map().unwrap().len(), 2);
        let b = &v.get("b").unwrap().value;
        assert_eq!(b.get("c").unwrap().value.kind, Kind::Int(2));
        let d = r.into_diagnostics();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].field, "a");
        assert!(d[0].message.contains("again at 1:33"), "{d:?}");
        assert_eq!(d[1].field, "b.c");
    }
}
