//! Reads YAML into the spanned value tree, from saphyr's event stream.
//!
//! Working from events rather than saphyr's loaded tree keeps duplicate keys (so they can be
//! reported), the position of every key, and lets scalars resolve by the YAML 1.2 core schema.
//! Anchors and aliases work, and so do `<<` merge keys, which js-yaml (PM2's reader) accepts.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::value::{Entry, Kind, Pos, SyntaxError, Value};

/// Refuse documents that nest deeper than this, or that expand aliases into more nodes than
/// this ("billion laughs").
const MAX_DEPTH: usize = 128;
const MAX_NODES: usize = 100_000;

/// Reads the first YAML document of `text`. An empty file gives `null`.
pub(crate) fn parse(text: &str) -> Result<Value, SyntaxError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            let mut pos = Pos::new(m.line(), m.col() + 1);
            // saphyr marks the start of the scalar; point at the tab itself.
            if e.info().contains("tab")
                && let Some(tab) = position_of_next(text, m.index(), '\t')
            {
                pos = tab;
            }
            syntax_error(pos, e.info())
        })?;
        if builder.on_event(event, span)? {
            break;
        }
    }
    Ok(builder
        .root
        .unwrap_or_else(|| Value::new(Kind::Null, Some(Pos::new(1, 1)))))
}

/// The line:column of the first `wanted` at or after character index `from`.
fn position_of_next(text: &str, from: usize, wanted: char) -> Option<Pos> {
    let (mut line, mut col) = (1, 1);
    for (i, c) in text.chars().enumerate() {
        if i >= from && c == wanted {
            return Some(Pos::new(line, col));
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn syntax_error(pos: Pos, info: &str) -> SyntaxError {
    let hint = if info.contains("tab") {
        Some("YAML indents with spaces, not tabs".to_owned())
    } else if info.contains("mapping values are not allowed") {
        Some("a value that contains `: ` must be quoted".to_owned())
    } else if info.contains("did not find expected key") || info.contains("bad indentation") {
        Some("this line is not indented like the keys above it: keys of one mapping start in the same column".to_owned())
    } else {
        None
    };
    SyntaxError {
        pos,
        message: format!("invalid YAML: {info}"),
        hint,
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
}

enum Frame {
    Seq {
        items: Vec<Value>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        key: Option<(String, Pos)>,
        pos: Pos,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    nodes: usize,
}

impl Builder {
    /// Handles one event; `Ok(true)` at the end of the stream.
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<bool, SyntaxError> {
        let pos = pos_of(&span);
        match event {
            Event::DocumentStart(_) => {
                if self.root.is_some() {
                    return Err(SyntaxError {
                        pos,
                        message: "more than one YAML document in the file".to_owned(),
                        hint: Some(
                            "an ecosystem file holds a single document; remove the extra `---`"
                                .to_owned(),
                        ),
                    });
                }
            }
            Event::StreamEnd => return Ok(true),
            Event::DocumentEnd | Event::StreamStart | Event::Nothing => {}
            Event::Alias(id) => {
                let value = match self.anchors.get(&id) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "alias to an unknown anchor".to_owned(),
                            hint: None,
                        });
                    }
                };
                self.nodes += count_nodes(&value);
                if self.nodes > MAX_NODES {
                    return Err(SyntaxError {
                        pos,
                        message: "aliases expand to too many nodes".to_owned(),
                        hint: None,
                    });
                }
                self.finish(
                    Value {
                        pos: Some(pos),
                        ..value
                    },
                    pos,
                )?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.nodes += 1;
                // A mapping key keeps its text exactly as written (`8080: x` is the key "8080").
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = self.stack.last_mut()
                {
                    *key = Some((text.into_owned(), pos));
                    return Ok(false);
                }
                let value = Value::new(scalar(text, style, tag.as_ref(), pos)?, Some(pos));
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.finish(value, pos)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    pos,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, pos, anchor }) => {
                        (Value::new(Kind::Seq(items), Some(pos)), anchor)
                    }
                    Some(Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    }) => (
                        Value::new(Kind::Map(merge_keys(entries)), Some(pos)),
                        anchor,
                    ),
                    None => return Ok(false),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.finish(value, pos)?;
            }
        }
        Ok(false)
    }

    /// Checks that a collection may start here: not as a mapping key, not too deep.
    fn open(&mut self, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                hint: None,
            });
        }
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return Err(SyntaxError {
                pos,
                message: "a mapping key must be a plain value, not a list or a mapping".to_owned(),
                hint: None,
            });
        }
        Ok(())
    }

    /// Hands a complete value to its parent (or makes it the document's root).
    fn finish(&mut self, value: Value, pos: Pos) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((key, key_pos)) => entries.push(Entry {
                    key,
                    key_pos: Some(key_pos),
                    value,
                }),
                None => {
                    return Err(SyntaxError {
                        pos,
                        message: "a mapping key must be a plain value".to_owned(),
                        hint: None,
                    });
                }
            },
        }
        Ok(())
    }
}

fn scalar(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    pos: Pos,
) -> Result<Kind, SyntaxError> {
    let tag_text = tag.map(|t| format!("{}{}", t.handle, t.suffix));
    match Scalar::parse_from_cow_and_metadata(text, style, tag) {
        Some(Scalar::Null) => Ok(Kind::Null),
        Some(Scalar::Boolean(b)) => Ok(Kind::Bool(b)),
        Some(Scalar::Integer(i)) => Ok(Kind::Int(i)),
        Some(Scalar::FloatingPoint(x)) => Ok(Kind::Float(x.0)),
        Some(Scalar::String(s)) => Ok(Kind::Str(s.into_owned())),
        None => Err(SyntaxError {
            pos,
            message: format!(
                "the value does not match its tag `{}`",
                tag_text.unwrap_or_default()
            ),
            hint: None,
        }),
    }
}

/// Applies `<<: *base` (or `<<: [*a, *b]`): keys written in the mapping win over merged ones,
/// earlier merge sources win over later ones.
fn merge_keys(entries: Vec<Entry>) -> Vec<Entry> {
    if !entries.iter().any(|e| e.key == "<<") {
        return entries;
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.key == "<<" && matches!(&e.value.kind, Kind::Map(_) | Kind::Seq(_)));
    for merge in merges {
        let sources = match merge.value.kind {
            Kind::Map(entries) => vec![entries],
            Kind::Seq(items) => items
                .into_iter()
                .filter_map(|v| match v.kind {
                    Kind::Map(entries) => Some(entries),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for source in sources {
            for entry in source {
                if !own.iter().any(|e| e.key == entry.key) {
                    own.push(entry);
                }
            }
        }
    }
    own
}

fn count_nodes(value: &Value) -> usize {
    1 + match &value.kind {
        Kind::Seq(items) => items.iter().map(count_nodes).sum(),
        Kind::Map(entries) => entries.iter().map(|e| 1 + count_nodes(&e.value)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_mapping_with_positions() {
        let v = parse(
            "apps:\n  - name: api\n    instances: 4\ndeploy:\n  production:\n    port: \"22\"\n",
        )
        .unwrap();
        let apps = v.get("apps").unwrap();
        assert_eq!(apps.key_pos, Some(Pos::new(1, 1)));
        let Kind::Seq(items) = &apps.value.kind else {
            panic!()
        };
        let inst = items[0].get("instances").unwrap();
        assert_eq!(inst.key_pos, Some(Pos::new(3, 5)));
        assert_eq!(inst.value.pos, Some(Pos::new(3, 16)));
        assert_eq!(inst.value.kind, Kind::Int(4));
        let port = v
            .get("deploy")
            .unwrap()
            .value
            .get("production")
            .unwrap()
            .value
            .get("port")
            .unwrap();
        assert_eq!(port.value.kind, Kind::Str("22".into()));
    }

    #[test]
    fn core_schema_scalars() {
        let v = parse("a: yes\nb: true\nc: ~\nd: 1.5\ne: 0x10\nf: '12'\ng:\n").unwrap();
        let kind = |k: &str| v.get(k).unwrap().value.kind.clone();
        assert_eq!(kind("a"), Kind::Str("yes".into()));
        assert_eq!(kind("b"), Kind::Bool(true));
        assert_eq!(kind("c"), Kind::Null);
        assert_eq!(kind("d"), Kind::Float(1.5));
        assert_eq!(kind("e"), Kind::Int(16));
        assert_eq!(kind("f"), Kind::Str("12".into()));
        assert_eq!(kind("g"), Kind::Null);
    }

    #[test]
    fn json_is_yaml() {
        let v = parse("{\"apps\": [{\"script\": \"a.js\"}]}").unwrap();
        assert!(v.get("apps").is_some());
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &base\n  user: deploy\n  port: 22\nproduction:\n  <<: *base\n  port: 2222\n  hosts: [*base]\n";
        let v = parse(text).unwrap();
        let prod = &v.get("production").unwrap().value;
        assert_eq!(prod.get("port").unwrap().value.kind, Kind::Int(2222));
        assert_eq!(
            prod.get("user").unwrap().value.kind,
            Kind::Str("deploy".into())
        );
        assert!(prod.get("<<").is_none());
        assert_eq!(
            prod.as_map()
                .unwrap()
                .iter()
                .filter(|e| e.key == "port")
                .count(),
            1
        );
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let v = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(v.as_map().unwrap().len(), 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("apps:\n  - name: a\n   bad: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        assert!(e.message.starts_with("invalid YAML"), "{e:?}");
        let e = parse("a: 1\n\tb: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos::new(2, 1), "{e:?}");
    }

    #[test]
    fn empty_file_is_null() {
        assert_eq!(parse("").unwrap().kind, Kind::Null);
        assert_eq!(parse("# only a comment\n").unwrap().kind, Kind::Null);
    }

    #[test]
    fn second_document_is_refused() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("more than one"), "{e:?}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("too many"), "{e:?}");
    }
}
