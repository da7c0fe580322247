//! The raw, format-independent tree every reader produces: JSON-like values that remember where
//! they were written. Validation walks this tree, so a problem can point at the exact line and
//! column in JSON and YAML; values that came out of `node` carry no position.

use std::fmt;

/// A 1-based line and column (in characters) in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn new(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A file that is not well-formed JSON or YAML: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub kind: Kind,
    /// Where the value starts; `None` when the format gives no position (JavaScript).
    pub pos: Option<Pos>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    /// Entries in the order written. Duplicates are kept so validation can report them.
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    /// Where the key is written (unknown keys are reported there).
    pub key_pos: Option<Pos>,
    pub value: Value,
}

impl Value {
    pub fn new(kind: Kind, pos: Option<Pos>) -> Value {
        Value { kind, pos }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The first entry named `key`, if this is a mapping that has one.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// Drops every position, as if the tree had been read from `node`'s output.
    pub fn strip_positions(&mut self) {
        self.pos = None;
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(Value::strip_positions),
            Kind::Map(entries) => {
                for entry in entries {
                    entry.key_pos = None;
                    entry.value.strip_positions();
                }
            }
            _ => {}
        }
    }

    /// The value as JavaScript's `JSON.stringify` writes it (PM2 turns an object in `env` into
    /// this text).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match &self.kind {
            Kind::Null => out.push_str("null"),
            Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Kind::Int(i) => out.push_str(&i.to_string()),
            Kind::Float(x) if x.is_finite() => out.push_str(&x.to_string()),
            Kind::Float(_) => out.push_str("null"),
            Kind::Str(s) => json_string(s, out),
            Kind::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Kind::Map(entries) => {
                out.push('{');
                for (i, entry) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(&entry.key, out);
                    out.push(':');
                    entry.value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// How the value reads in a "found …" message: the value itself for scalars, the type
    /// for collections.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_owned(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(x) => x.to_string(),
            Kind::Str(s) => quote_short(s),
            Kind::Seq(_) => "an array".to_owned(),
            Kind::Map(_) => "an object".to_owned(),
        }
    }
}

/// `s` as a JSON string, escaped as `JSON.stringify` escapes it.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` in double quotes with control characters escaped, cut after 60 characters so a
/// message stays on one line.
pub(crate) fn quote_short(s: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::with_capacity(s.len().min(MAX) + 2);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_strings_and_names_collections() {
        let s = Value::new(Kind::Str("a\nb".into()), None);
        assert_eq!(s.describe(), r#""a\nb""#);
        assert_eq!(Value::new(Kind::Seq(vec![]), None).describe(), "an array");
        assert_eq!(Value::new(Kind::Map(vec![]), None).describe(), "an object");
        assert_eq!(Value::new(Kind::Int(-3), None).describe(), "-3");
    }

    #[test]
    fn json_text_is_what_json_stringify_writes() {
        let v = crate::ecosystem::json::parse(
            r#"{a: [1, 1.5, true, null, 'q"\\'], "b c": {}, n: NaN}"#,
        )
        .unwrap();
        assert_eq!(
            v.to_json(),
            r#"{"a":[1,1.5,true,null,"q\"\\"],"b c":{},"n":null}"#
        );
        assert_eq!(
            Value::new(Kind::Str("a\nb\u{1}".into()), None).to_json(),
            r#""a\nb\u0001""#
        );
    }

    #[test]
    fn long_strings_are_cut() {
        let long = "x".repeat(100);
        let q = quote_short(&long);
        assert!(q.chars().count() < 70);
        assert!(q.ends_with("…\""));
    }

    #[test]
    fn strip_positions_reaches_keys_and_children() {
        let mut v = Value::new(
            Kind::Map(vec![Entry {
                key: "a".into(),
                key_pos: Some(Pos::new(1, 2)),
                value: Value::new(
                    Kind::Seq(vec![Value::new(Kind::Null, Some(Pos::new(1, 6)))]),
                    Some(Pos::new(1, 5)),
                ),
            }]),
            Some(Pos::new(1, 1)),
        );
        v.strip_positions();
        assert_eq!(v.pos, None);
        let entry = &v.as_map().unwrap()[0];
        assert_eq!(entry.key_pos, None);
        assert_eq!(entry.value.pos, None);
        match &entry.value.kind {
            Kind::Seq(items) => assert_eq!(items[0].pos, None),
            _ => panic!("not a sequence"),
        }
    }
}
