//! Splitting an `args: "--port 3000 'a b'"` string into words the way a POSIX shell would
//! (quotes and backslashes, no expansion), as PM2 does for string `args`.
//!
//! The `shlex` crate does the splitting. Around it, two things it does not say: a NUL, which
//! no argument can carry, and a `#` that starts a word, which a shell (and `shlex`) reads as a
//! comment: the rest of the line would vanish silently, so it is refused with a hint instead.

/// Splits `text` into words; an unclosed quote or a trailing backslash is an error, and so are
/// a NUL and a comment.
pub(crate) fn split(text: &str) -> Result<Vec<String>, String> {
    if text.contains('\0') {
        return Err("arguments must not contain a NUL character".to_owned());
    }
    let mut lexer = shlex::Shlex::new(text);
    let words: Vec<String> = lexer.by_ref().collect();
    if lexer.had_error {
        return Err(
            "an unclosed `'` or `\"` quote, or a trailing `\\` that escapes nothing".to_owned(),
        );
    }
    let kept = words.iter().map(|w| w.matches('#').count()).sum::<usize>();
    if kept != text.matches('#').count() {
        return Err(
            "a word starting with `#` starts a comment, which would drop the rest of the line: quote it (`'#fff'`)"
                .to_owned(),
        );
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

    #[test]
    fn a_hash_inside_a_word_or_quoted_is_kept_and_a_comment_is_refused() {
        assert_eq!(
            split("--color=#fff a#b").unwrap(),
            vec!["--color=#fff", "a#b"]
        );
        assert_eq!(split("'#fff' \\#x").unwrap(), vec!["#fff", "#x"]);
        let err = split("--color #fff --verbose").unwrap_err();
        assert!(err.contains("comment"), "{err}");
        assert!(split("'open").unwrap_err().contains("unclosed"));
        assert!(split("end\\").unwrap_err().contains("trailing"));
    }
}
