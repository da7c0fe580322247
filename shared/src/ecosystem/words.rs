//! Splitting an `args: "--port 3000 'a b'"` string into words the way a POSIX shell would
//! (quotes and backslashes, no expansion), as PM2 does for string `args`.

/// Splits `text` into words; an unclosed quote or a trailing backslash is an error.
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unclosed `'` quote".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err("unclosed `\"` quote".to_owned()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unclosed `\"` quote".to_owned()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => current.push(c),
                    None => return Err("a trailing `\\` escapes nothing".to_owned()),
                }
            }
            '\0' => return Err("arguments must not contain a NUL character".to_owned()),
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split("  --port 3000  ").unwrap(), vec!["--port", "3000"]);
        assert_eq!(
            split("'a b' \"c d\" e\\ f").unwrap(),
            vec!["a b", "c d", "e f"]
        );
        assert_eq!(split("--name='x y'").unwrap(), vec!["--name=x y"]);
        assert_eq!(split(r#""a \"q\" \n""#).unwrap(), vec![r#"a "q" \n"#]);
        assert_eq!(split("'' x").unwrap(), vec!["", "x"]);
        assert_eq!(split("$HOME;rm").unwrap(), vec!["$HOME;rm"]);
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn errors() {
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("end\\").is_err());
        assert!(split("a\0b").is_err());
    }
}
