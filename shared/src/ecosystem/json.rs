//! A small reader for `.json` ecosystem files that keeps the line and column of every value and
//! key.
//!
//! PM2 reads a `.json` ecosystem file by evaluating it as a JavaScript expression, so files
//! that real teams keep have comments, unquoted keys, single-quoted strings and trailing
//! commas. This reader takes what JSON5 takes (a subset of JavaScript that covers those:
//! `//` and `/* */` comments, identifier keys, `'…'` strings and their escapes, trailing
//! commas, hexadecimal numbers, leading `+` and `.`, `Infinity`, `NaN`) plus JavaScript's
//! `undefined` (a key set to it is dropped, as `JSON.stringify` drops it), and gives every other
//! JavaScript construct an error that says to write the file as `ecosystem.config.js`.
//!
//! Hand-written rather than the `json5` or `json-five` crates because validation needs the
//! position of every key and value, which neither keeps through parsing.

use super::value::{Entry, Kind, Pos, SyntaxError, Value};

/// Deeper nesting than this is refused instead of risking the stack.
const MAX_DEPTH: usize = 128;

/// Reads one document.
pub(crate) fn parse(text: &str) -> Result<Value, SyntaxError> {
    let mut reader = Reader::new(text);
    reader.skip_bom();
    reader.skip_ws()?;
    let value = match reader.value(0)? {
        Some(value) => value,
        None => Value::new(Kind::Null, Some(Pos::new(1, 1))),
    };
    reader.skip_ws()?;
    match reader.peek() {
        None => Ok(value),
        Some(c) => Err(reader.error_here(
            format!(
                "unexpected {} after the end of the document",
                describe_char(c)
            ),
            Some(AS_JAVASCRIPT.to_owned()),
        )),
    }
}

/// The hint for JavaScript that is more than a JSON5 literal.
const AS_JAVASCRIPT: &str = "a .json file holds one object literal; for code (variables, `require`, expressions) write the file as ecosystem.config.js";

struct Reader {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

/// What can start an identifier (ECMAScript's IdentifierStart, without escapes).
fn ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn ident_part(c: char) -> bool {
    ident_start(c) || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}'
}

/// JSON5's white space: JSON's four, plus the ones JavaScript allows.
fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{a0}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
    ) || (c.is_whitespace() && !c.is_control())
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
        if c == '\n' || (c == '\r' && self.peek() != Some('\n')) {
            self.line += 1;
            self.col = 1;
        } else if c != '\r' {
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

    /// White space and comments.
    fn skip_ws(&mut self) -> Result<(), SyntaxError> {
        while let Some(c) = self.peek() {
            if is_space(c) {
                self.bump();
            } else if c == '/' && self.peek_at(1) == Some('/') {
                while let Some(c) = self.peek() {
                    if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') {
                        break;
                    }
                    self.bump();
                }
            } else if c == '/' && self.peek_at(1) == Some('*') {
                let start = self.pos();
                self.bump();
                self.bump();
                loop {
                    match self.bump() {
                        None => {
                            return Err(self.error_at(
                                start,
                                "this comment is never closed with `*/`".to_owned(),
                                None,
                            ));
                        }
                        Some('*') if self.peek() == Some('/') => {
                            self.bump();
                            break;
                        }
                        Some(_) => {}
                    }
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    /// One value; `None` for `undefined` (which an object drops and an array reads as null,
    /// as `JSON.stringify` does).
    fn value(&mut self, depth: usize) -> Result<Option<Value>, SyntaxError> {
        let pos = self.pos();
        let kind = match self.peek() {
            None => {
                return Err(
                    self.error_here("unexpected end of file, expected a value".to_owned(), None)
                );
            }
            Some('{') => return self.object(depth).map(Some),
            Some('[') => return self.array(depth).map(Some),
            Some(q @ ('"' | '\'')) => Kind::Str(self.string(q)?),
            Some('-' | '+' | '.' | '0'..='9') => return self.number().map(Some),
            Some('`') => {
                return Err(self.error_here(
                    "template strings are JavaScript, not JSON".to_owned(),
                    Some("use '…' or \"…\", or write the file as ecosystem.config.js".to_owned()),
                ));
            }
            Some(c) if ident_start(c) => {
                let word = self.word();
                match word.as_str() {
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    "null" => Kind::Null,
                    "undefined" => return Ok(None),
                    "Infinity" => Kind::Float(f64::INFINITY),
                    "NaN" => Kind::Float(f64::NAN),
                    _ => {
                        return Err(self.error_at(
                            pos,
                            format!("unexpected word `{word}`, expected a value"),
                            Some(format!(
                                "quote it if it is a string (\"{word}\"); {AS_JAVASCRIPT}"
                            )),
                        ));
                    }
                }
            }
            Some(c) => {
                return Err(self.error_here(
                    format!("unexpected {}, expected a value", describe_char(c)),
                    None,
                ));
            }
        };
        Ok(Some(Value::new(kind, Some(pos))))
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if ident_part(c) {
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
        loop {
            self.skip_ws()?;
            let key_pos = self.pos();
            let key = match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(Value::new(Kind::Map(entries), Some(pos)));
                }
                Some(q @ ('"' | '\'')) => self.string(q)?,
                Some(c) if ident_start(c) => self.word(),
                None => {
                    return Err(self.error_at(
                        pos,
                        "this object is never closed with `}`".to_owned(),
                        None,
                    ));
                }
                Some(c) => {
                    return Err(self.error_here(
                        format!("unexpected {}, expected a key", describe_char(c)),
                        Some(
                            "write the key as a name (`script`) or in quotes (\"post-deploy\")"
                                .to_owned(),
                        ),
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
            if let Some(value) = self.value(depth)? {
                entries.push(Entry {
                    key,
                    key_pos: Some(key_pos),
                    value,
                });
            }
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
        loop {
            self.skip_ws()?;
            if self.peek() == Some(']') {
                self.bump();
                return Ok(Value::new(Kind::Seq(items), Some(pos)));
            }
            if self.peek() == Some(',') {
                return Err(self.error_here(
                    "an empty element (two commas in a row)".to_owned(),
                    Some("remove the extra comma".to_owned()),
                ));
            }
            let item_pos = self.pos();
            let item = self.value(depth)?;
            items.push(item.unwrap_or_else(|| Value::new(Kind::Null, Some(item_pos))));
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

    /// A string in `quote`s (`"` or `'`), with JavaScript's escapes.
    fn string(&mut self, quote: char) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump(); // the quote
        let mut out = String::new();
        let unclosed =
            |r: &Reader| r.error_at(start, "this string is never closed".to_owned(), None);
        loop {
            let here = self.pos();
            match self.bump() {
                None => return Err(unclosed(self)),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    None => return Err(unclosed(self)),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('v') => out.push('\u{b}'),
                    Some('0') if !self.peek().is_some_and(|c| c.is_ascii_digit()) => out.push('\0'),
                    Some('x') => out.push(self.hex_escape(here, 2)?),
                    Some('u') => out.push(self.unicode_escape(here)?),
                    // A line continuation: the backslash and the line break are dropped.
                    Some('\n' | '\u{2028}' | '\u{2029}') => {}
                    Some('\r') => {
                        if self.peek() == Some('\n') {
                            self.bump();
                        }
                    }
                    Some(c) if c.is_ascii_digit() => {
                        return Err(self.error_at(
                            here,
                            format!("octal escape `\\{c}` in a string"),
                            Some(
                                "write the character itself, or `\\u` with four hex digits"
                                    .to_owned(),
                            ),
                        ));
                    }
                    // Any other character stands for itself (`\'`, `\"`, `\\`, `\/`, `\a`).
                    Some(c) => out.push(c),
                },
                Some('\n' | '\r') => {
                    return Err(self.error_at(
                        here,
                        "line break inside a string".to_owned(),
                        Some(
                            "close the string on the same line, write `\\n`, or end the line with `\\` to continue it"
                                .to_owned(),
                        ),
                    ));
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn hex_digits(&mut self, at: Pos, n: usize) -> Result<u32, SyntaxError> {
        let mut value = 0u32;
        for _ in 0..n {
            match self.bump().and_then(|c| c.to_digit(16)) {
                Some(d) => value = value * 16 + d,
                None => {
                    return Err(self.error_at(
                        at,
                        format!("this escape needs {n} hex digits"),
                        None,
                    ));
                }
            }
        }
        Ok(value)
    }

    fn hex_escape(&mut self, at: Pos, n: usize) -> Result<char, SyntaxError> {
        let code = self.hex_digits(at, n)?;
        char::from_u32(code).ok_or_else(|| self.error_at(at, "invalid escape".to_owned(), None))
    }

    fn unicode_escape(&mut self, at: Pos) -> Result<char, SyntaxError> {
        let first = self.hex_digits(at, 4)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.peek() == Some('\\') && self.peek_at(1) == Some('u') {
                self.bump();
                self.bump();
                let second = self.hex_digits(at, 4)?;
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

    /// A number as JSON5 writes them: an optional sign, decimal (also `.5` and `5.`), or
    /// hexadecimal, or `Infinity`/`NaN`.
    fn number(&mut self) -> Result<Value, SyntaxError> {
        let pos = self.pos();
        let mut negative = false;
        if let Some(sign @ ('-' | '+')) = self.peek() {
            negative = sign == '-';
            self.bump();
        }
        if self.peek().is_some_and(ident_start) {
            let word = self.word();
            let x = match word.as_str() {
                "Infinity" => f64::INFINITY,
                "NaN" => f64::NAN,
                _ => {
                    return Err(self.error_at(
                        pos,
                        format!("unexpected `{word}` after a sign, expected a number"),
                        None,
                    ));
                }
            };
            let x = if negative { -x } else { x };
            return Ok(Value::new(Kind::Float(x), Some(pos)));
        }
        if self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let mut digits = String::new();
            while let Some(c) = self.peek().filter(char::is_ascii_hexdigit) {
                digits.push(c);
                self.bump();
            }
            self.no_letter_after_number()?;
            let magnitude = i64::from_str_radix(&digits, 16)
                .map_err(|_| self.error_at(pos, "invalid hexadecimal number".to_owned(), None))?;
            let value = if negative { -magnitude } else { magnitude };
            return Ok(Value::new(Kind::Int(value), Some(pos)));
        }
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        let int_start = self.pos();
        let int_digits = take_digits(self, &mut text);
        if int_digits > 1 && text.trim_start_matches('-').starts_with('0') {
            return Err(self.error_at(
                int_start,
                "numbers cannot start with 0".to_owned(),
                Some("write the number without leading zeros, or quote it as a string".to_owned()),
            ));
        }
        let mut is_float = false;
        let mut frac_digits = 0;
        if self.peek() == Some('.') {
            is_float = true;
            text.push('.');
            self.bump();
            frac_digits = take_digits(self, &mut text);
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(self.error_at(pos, "a number needs digits".to_owned(), None));
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
        self.no_letter_after_number()?;
        if !is_float && let Ok(i) = text.parse::<i64>() {
            return Ok(Value::new(Kind::Int(i), Some(pos)));
        }
        // Rust reads "5." and ".5" as well as JavaScript does.
        match text.parse::<f64>() {
            Ok(x) => Ok(Value::new(Kind::Float(x), Some(pos))),
            Err(_) => Err(self.error_at(pos, format!("invalid number `{text}`"), None)),
        }
    }

    fn no_letter_after_number(&self) -> Result<(), SyntaxError> {
        match self
            .peek()
            .filter(|c| c.is_alphanumeric() || *c == '.' || *c == '_')
        {
            Some(c) => Err(self.error_here(
                format!("unexpected {} in a number", describe_char(c)),
                Some("quote the value if it is meant as a string (e.g. \"150M\")".to_owned()),
            )),
            None => Ok(()),
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

    fn kind(text: &str) -> Kind {
        parse(text).unwrap().kind
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
        assert_eq!(kind(r"'it\'s \x41\v\0'"), Kind::Str("it's A\u{b}\0".into()));
        assert_eq!(kind("'one \\\ntwo'"), Kind::Str("one two".into()));
        assert_eq!(kind(r#"'\q'"#), Kind::Str("q".into()));
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
    fn what_pm2_reads_in_a_json_file() {
        let text = "// the apps\n{\n  apps: [{ name: 'api', script: \"a.js\", /* two */ instances: 2, },],\n  $x: +1, y_1: .5, z: 5., h: 0x1F, i: -Infinity, n: NaN, u: undefined,\n}\n";
        let v = parse(text).unwrap();
        let apps = v.get("apps").unwrap();
        assert_eq!(apps.key_pos, Some(Pos::new(3, 3)));
        let Kind::Seq(items) = &apps.value.kind else {
            panic!("{apps:?}")
        };
        assert_eq!(items.len(), 1);
        let name = items[0].get("name").unwrap();
        assert_eq!(name.value.kind, Kind::Str("api".into()));
        assert_eq!(name.value.pos, Some(Pos::new(3, 18)));
        let instances = items[0].get("instances").unwrap();
        assert_eq!(instances.key_pos, Some(Pos::new(3, 51)));
        assert_eq!(v.get("$x").unwrap().value.kind, Kind::Int(1));
        assert_eq!(v.get("y_1").unwrap().value.kind, Kind::Float(0.5));
        assert_eq!(v.get("z").unwrap().value.kind, Kind::Float(5.0));
        assert_eq!(v.get("h").unwrap().value.kind, Kind::Int(31));
        assert_eq!(
            v.get("i").unwrap().value.kind,
            Kind::Float(f64::NEG_INFINITY)
        );
        assert!(v.get("u").is_none(), "a key set to undefined is dropped");
        assert_eq!(
            kind("[1, undefined]"),
            Kind::Seq(vec![
                Value::new(Kind::Int(1), Some(Pos::new(1, 2))),
                Value::new(Kind::Null, Some(Pos::new(1, 5))),
            ])
        );
    }

    #[test]
    fn comments_anywhere() {
        let v = parse("/* head */ { /* k */ a /* c */ : // v\n 1 /* after */ }\n// tail").unwrap();
        assert_eq!(v.get("a").unwrap().value.kind, Kind::Int(1));
        assert_eq!(err("{ /* open").pos, Pos::new(1, 3));
        assert!(err("// only a comment\n").message.contains("end of file"));
    }

    #[test]
    fn missing_comma_points_at_the_next_key() {
        let e = err("{\n  \"a\": 1\n  \"b\": 2\n}");
        assert_eq!(e.pos, Pos::new(3, 3));
        assert!(e.message.contains("expected `,` or `}`"), "{e:?}");
        let e = err("{\n  a: 1\n  b: 2\n}");
        assert_eq!(e.pos, Pos::new(3, 3));
    }

    #[test]
    fn javascript_beyond_literals_says_what_to_do() {
        let e = err("{ a: process.env.HOME }");
        assert_eq!(e.pos, Pos::new(1, 6));
        assert!(e.message.contains("unexpected word `process`"), "{e:?}");
        assert!(e.hint.unwrap().contains("ecosystem.config.js"));
        assert!(err("{ a: `x` }").message.contains("template"));
        assert!(err("module.exports = {}").message.contains("`module`"));
        assert!(err("[1,,2]").message.contains("empty element"));
        assert!(err("{ 'a' 1 }").message.contains("expected `:`"));
        assert!(err("{ 1: 'a' }").message.contains("expected a key"));
    }

    #[test]
    fn unterminated_things_point_at_their_start() {
        assert_eq!(err("{\"a\": \"abc").pos, Pos::new(1, 7));
        assert_eq!(err("{\"a\": [1").pos, Pos::new(1, 7));
        assert_eq!(err("{'a': 'abc").pos, Pos::new(1, 7));
        assert_eq!(err("{a: 1").pos, Pos::new(1, 1));
    }

    #[test]
    fn bad_numbers() {
        assert!(err("012").message.contains("cannot start with 0"));
        assert!(err("150M").message.contains("in a number"));
        assert!(err("-").message.contains("digits"));
        assert!(err("+x").message.contains("after a sign"));
        assert!(err("1e").message.contains("exponent"));
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
    fn line_breaks_in_strings_and_octal_escapes() {
        assert!(err("\"a\nb\"").message.contains("line break"));
        assert!(err("'a\nb'").message.contains("line break"));
        assert!(err(r"'\12'").message.contains("octal"));
        assert_eq!(kind("\"a\u{1}b\""), Kind::Str("a\u{1}b".into()));
    }

    #[test]
    fn positions_count_crlf_once() {
        let v = parse("{\r\n  a: 1,\r\n  b: 2\r\n}").unwrap();
        assert_eq!(v.get("b").unwrap().key_pos, Some(Pos::new(3, 3)));
    }
}
