//! A small JSON reader that keeps the line and column of every value and key.
//!
//! serde_json reports where a syntax error is but forgets where each value came from once it
//! is parsed, and validation needs both. The grammar is strict RFC 8259 JSON; the usual
//! slips (trailing commas, comments, single quotes, bare keys) get an error that names them.

use super::value::{Entry, Kind, Pos, SyntaxError, Value};

/// Deeper nesting than this is refused instead of risking the stack.
const MAX_DEPTH: usize = 128;

/// Reads one JSON document.
pub(crate) fn parse(text: &str) -> Result<Value, SyntaxError> {
    let mut reader = Reader::new(text);
    reader.skip_bom();
    reader.skip_ws()?;
    let value = reader.value(0)?;
    reader.skip_ws()?;
    match reader.peek() {
        None => Ok(value),
        Some(c) => Err(reader.error_here(
            format!(
                "unexpected {} after the end of the document",
                describe_char(c)
            ),
            Some("a JSON file holds exactly one object".to_owned()),
        )),
    }
}

struct Reader {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Reader {
    fn new(text: &str) -> Reader {
        Reader {
            chars: text.chars().collect(),
            i: 0,
            line: 1,
            col: 1,
        }
    }

    fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn skip_bom(&mut self) {
        if self.peek() == Some('\u{feff}') {
            self.i += 1;
        }
    }

    fn error_at(&self, pos: Pos, message: String, hint: Option<String>) -> SyntaxError {
        SyntaxError { pos, message, hint }
    }

    fn error_here(&self, message: String, hint: Option<String>) -> SyntaxError {
        self.error_at(self.pos(), message, hint)
    }

    fn skip_ws(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' => {
                    self.bump();
                }
                '/' if matches!(self.peek_at(1), Some('/' | '*')) => {
                    return Err(self.error_here(
                        "comments are not allowed in JSON".to_owned(),
                        Some(
                            "remove the comment, or write the file as ecosystem.config.js or YAML"
                                .to_owned(),
                        ),
                    ));
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let pos = self.pos();
        match self.peek() {
            None => {
                Err(self.error_here("unexpected end of file, expected a value".to_owned(), None))
            }
            Some('{') => self.object(depth),
            Some('[') => self.array(depth),
            Some('"') => Ok(Value::new(Kind::Str(self.string()?), Some(pos))),
            Some('-' | '0'..='9') => self.number(),
            Some('\'') => Err(self.error_here(
                "strings in JSON use double quotes".to_owned(),
                Some("replace the single quotes with double quotes".to_owned()),
            )),
            Some(c) if c.is_alphabetic() => {
                let word = self.word();
                match word.as_str() {
                    "true" => Ok(Value::new(Kind::Bool(true), Some(pos))),
                    "false" => Ok(Value::new(Kind::Bool(false), Some(pos))),
                    "null" => Ok(Value::new(Kind::Null, Some(pos))),
                    _ => Err(self.error_at(
                        pos,
                        format!("unexpected word `{word}`, expected a value"),
                        Some("strings in JSON are written in double quotes".to_owned()),
                    )),
                }
            }
            Some(c) => Err(self.error_here(
                format!("unexpected {}, expected a value", describe_char(c)),
                None,
            )),
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '$' {
                word.push(c);
                self.bump();
            } else {
                break;
            }
        }
        word
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            Err(self.error_here(format!("nesting deeper than {MAX_DEPTH} levels"), None))
        } else {
            Ok(depth + 1)
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        let pos = self.pos();
        self.bump(); // {
        let mut entries = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some('}') {
            self.bump();
            return Ok(Value::new(Kind::Map(entries), Some(pos)));
        }
        loop {
            self.skip_ws()?;
            let key_pos = self.pos();
            let key = match self.peek() {
                Some('"') => self.string()?,
                Some('}') => {
                    return Err(self.error_here(
                        "trailing comma before `}`".to_owned(),
                        Some("JSON allows no comma after the last member; remove it".to_owned()),
                    ));
                }
                Some('\'') => {
                    return Err(self.error_here(
                        "keys in JSON use double quotes".to_owned(),
                        Some("replace the single quotes with double quotes".to_owned()),
                    ));
                }
                Some(c) if c.is_alphabetic() || c == '_' || c == '$' => {
                    let word = self.word();
                    return Err(self.error_at(
                        key_pos,
                        format!("object keys in JSON must be quoted, found `{word}`"),
                        Some(format!("write it as \"{word}\"")),
                    ));
                }
                None => {
                    return Err(
                        self.error_here("unexpected end of file inside an object".to_owned(), None)
                    );
                }
                Some(c) => {
                    return Err(self.error_here(
                        format!(
                            "unexpected {}, expected a key in double quotes",
                            describe_char(c)
                        ),
                        None,
                    ));
                }
            };
            self.skip_ws()?;
            match self.peek() {
                Some(':') => {
                    self.bump();
                }
                None => {
                    return Err(
                        self.error_here("unexpected end of file, expected `:`".to_owned(), None)
                    );
                }
                Some(c) => {
                    return Err(self.error_here(
                        format!(
                            "expected `:` after the key \"{key}\", found {}",
                            describe_char(c)
                        ),
                        None,
                    ));
                }
            }
            self.skip_ws()?;
            let value = self.value(depth)?;
            entries.push(Entry {
                key,
                key_pos: Some(key_pos),
                value,
            });
            self.skip_ws()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Value::new(Kind::Map(entries), Some(pos)));
                }
                None => {
                    return Err(self.error_at(
                        pos,
                        "this object is never closed with `}`".to_owned(),
                        None,
                    ));
                }
                Some(c) => {
                    return Err(self.error_here(
                        format!(
                            "expected `,` or `}}` after an object member, found {}",
                            describe_char(c)
                        ),
                        Some("is a comma missing at the end of the previous line?".to_owned()),
                    ));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let depth = self.enter(depth)?;
        let pos = self.pos();
        self.bump(); // [
        let mut items = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(']') {
            self.bump();
            return Ok(Value::new(Kind::Seq(items), Some(pos)));
        }
        loop {
            self.skip_ws()?;
            if self.peek() == Some(']') {
                return Err(self.error_here(
                    "trailing comma before `]`".to_owned(),
                    Some("JSON allows no comma after the last element; remove it".to_owned()),
                ));
            }
            items.push(self.value(depth)?);
            self.skip_ws()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Value::new(Kind::Seq(items), Some(pos)));
                }
                None => {
                    return Err(self.error_at(
                        pos,
                        "this array is never closed with `]`".to_owned(),
                        None,
                    ));
                }
                Some(c) => {
                    return Err(self.error_here(
                        format!(
                            "expected `,` or `]` after an array element, found {}",
                            describe_char(c)
                        ),
                        Some("is a comma missing between two elements?".to_owned()),
                    ));
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump(); // "
        let mut out = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None => {
                    return Err(self.error_at(
                        start,
                        "this string is never closed".to_owned(),
                        None,
                    ));
                }
                Some('"') => return Ok(out),
                Some('\\') => {
                    let escape = self.bump();
                    match escape {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('/') => out.push('/'),
                        Some('b') => out.push('\u{8}'),
                        Some('f') => out.push('\u{c}'),
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('u') => out.push(self.unicode_escape(here)?),
                        Some(c) => {
                            return Err(self.error_at(
                                here,
                                format!("invalid escape `\\{c}` in a string"),
                                None,
                            ));
                        }
                        None => {
                            return Err(self.error_at(
                                start,
                                "this string is never closed".to_owned(),
                                None,
                            ));
                        }
                    }
                }
                Some('\n') => {
                    return Err(self.error_at(
                        here,
                        "line break inside a string".to_owned(),
                        Some(
                            "close the string with `\"` on the same line, or write `\\n`"
                                .to_owned(),
                        ),
                    ));
                }
                Some(c) if (c as u32) < 0x20 => {
                    return Err(self.error_at(
                        here,
                        format!("control character U+{:04X} inside a string", c as u32),
                        Some("escape it, e.g. `\\t` for a tab".to_owned()),
                    ));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex4(&mut self, at: Pos) -> Result<u32, SyntaxError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let digit = self.bump().and_then(|c| c.to_digit(16));
            match digit {
                Some(d) => n = n * 16 + d,
                None => {
                    return Err(self.error_at(
                        at,
                        "`\\u` must be followed by four hex digits".to_owned(),
                        None,
                    ));
                }
            }
        }
        Ok(n)
    }

    fn unicode_escape(&mut self, at: Pos) -> Result<char, SyntaxError> {
        let first = self.hex4(at)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.peek() == Some('\\') && self.peek_at(1) == Some('u') {
                self.bump();
                self.bump();
                let second = self.hex4(at)?;
                if !(0xDC00..0xE000).contains(&second) {
                    return Err(self.error_at(
                        at,
                        "invalid UTF-16 surrogate pair".to_owned(),
                        None,
                    ));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            } else {
                return Err(self.error_at(at, "lone UTF-16 surrogate".to_owned(), None));
            }
        } else {
            first
        };
        char::from_u32(code)
            .ok_or_else(|| self.error_at(at, "invalid unicode escape".to_owned(), None))
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let pos = self.pos();
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.bump();
        }
        let int_start = self.pos();
        let int_digits = take_digits(self, &mut text);
        if int_digits == 0 {
            return Err(self.error_at(pos, "a number needs digits after `-`".to_owned(), None));
        }
        if int_digits > 1 && text.trim_start_matches('-').starts_with('0') {
            return Err(self.error_at(
                int_start,
                "numbers in JSON cannot start with 0".to_owned(),
                Some("write the number without leading zeros, or quote it as a string".to_owned()),
            ));
        }
        let mut is_float = false;
        if self.peek() == Some('.') {
            is_float = true;
            text.push('.');
            self.bump();
            if take_digits(self, &mut text) == 0 {
                return Err(
                    self.error_here("expected digits after the decimal point".to_owned(), None)
                );
            }
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            is_float = true;
            text.push(e);
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            if take_digits(self, &mut text) == 0 {
                return Err(self.error_here("expected digits in the exponent".to_owned(), None));
            }
        }
        if let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '.') {
            return Err(self.error_here(
                format!("unexpected {} in a number", describe_char(c)),
                Some("quote the value if it is meant as a string (e.g. \"150M\")".to_owned()),
            ));
        }
        if !is_float && let Ok(i) = text.parse::<i64>() {
            return Ok(Value::new(Kind::Int(i), Some(pos)));
        }
        match text.parse::<f64>() {
            Ok(x) => Ok(Value::new(Kind::Float(x), Some(pos))),
            Err(_) => Err(self.error_at(pos, format!("invalid number `{text}`"), None)),
        }
    }
}

/// Moves every ASCII digit at the cursor into `text`; how many there were.
fn take_digits(r: &mut Reader, text: &mut String) -> usize {
    let mut n = 0;
    while let Some(c) = r.peek().filter(char::is_ascii_digit) {
        text.push(c);
        r.bump();
        n += 1;
    }
    n
}

fn describe_char(c: char) -> String {
    match c {
        '\n' => "line break".to_owned(),
        c if c.is_control() => format!("character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> SyntaxError {
        parse(text).unwrap_err()
    }

    #[test]
    fn values_remember_positions() {
        let v =
            parse("{\n  \"a\": [1, -2.5, \"x\"],\n  \"b\": {\"c\": null, \"d\": true}\n}").unwrap();
        assert_eq!(v.pos, Some(Pos::new(1, 1)));
        let a = v.get("a").unwrap();
        assert_eq!(a.key_pos, Some(Pos::new(2, 3)));
        assert_eq!(a.value.pos, Some(Pos::new(2, 8)));
        match &a.value.kind {
            Kind::Seq(items) => {
                assert_eq!(items[0].kind, Kind::Int(1));
                assert_eq!(items[1].kind, Kind::Float(-2.5));
                assert_eq!(items[1].pos, Some(Pos::new(2, 12)));
                assert_eq!(items[2].kind, Kind::Str("x".into()));
            }
            other => panic!("{other:?}"),
        }
        let b = v.get("b").unwrap();
        assert_eq!(b.value.get("d").unwrap().value.kind, Kind::Bool(true));
    }

    #[test]
    fn escapes_are_decoded() {
        let v = parse(r#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(v.kind, Kind::Str("a\"b\\c/d\né😀".into()));
    }

    #[test]
    fn duplicate_keys_are_kept_for_validation() {
        let v = parse(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(v.as_map().unwrap().len(), 2);
    }

    #[test]
    fn large_integers_become_floats() {
        let v = parse("123456789012345678901234").unwrap();
        assert!(matches!(v.kind, Kind::Float(_)));
    }

    #[test]
    fn trailing_comma_is_named() {
        let e = err("{\n  \"a\": 1,\n}");
        assert_eq!(e.pos, Pos::new(3, 1));
        assert!(e.message.contains("trailing comma"), "{e:?}");
        let e = err("[1, 2, ]");
        assert_eq!(e.pos, Pos::new(1, 8));
    }

    #[test]
    fn missing_comma_points_at_the_next_key() {
        let e = err("{\n  \"a\": 1\n  \"b\": 2\n}");
        assert_eq!(e.pos, Pos::new(3, 3));
        assert!(e.message.contains("expected `,` or `}`"), "{e:?}");
    }

    #[test]
    fn comments_single_quotes_and_bare_keys() {
        assert!(err("{ // hi\n}").message.contains("comments"));
        assert!(err("{'a': 1}").message.contains("double quotes"));
        let e = err("{apps: []}");
        assert_eq!(e.pos, Pos::new(1, 2));
        assert!(e.message.contains("must be quoted"));
    }

    #[test]
    fn unterminated_things_point_at_their_start() {
        assert_eq!(err("{\"a\": \"abc").pos, Pos::new(1, 7));
        assert_eq!(err("{\"a\": [1").pos, Pos::new(1, 7));
        assert_eq!(err("").pos, Pos::new(1, 1));
    }

    #[test]
    fn bad_numbers() {
        assert!(err("012").message.contains("cannot start with 0"));
        assert!(err("150M").message.contains("in a number"));
        assert!(err("-").message.contains("digits"));
        assert!(err("1.").message.contains("decimal point"));
    }

    #[test]
    fn garbage_after_the_document() {
        let e = err("{} {}");
        assert_eq!(e.pos, Pos::new(1, 4));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(MAX_DEPTH + 5);
        assert!(err(&text).message.contains("nesting"));
    }

    #[test]
    fn control_characters_and_line_breaks_in_strings() {
        assert!(err("\"a\nb\"").message.contains("line break"));
        assert!(err("\"a\u{1}b\"").message.contains("control character"));
    }
}
