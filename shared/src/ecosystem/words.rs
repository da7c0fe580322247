//! Splitting an `args: "--port 3000 'a b'"` string into words exactly as PM2 does, so that a
//! string in a PM2 file means the same argument list here.
//!
//! PM2 (`Config._valid` in `lib/tools/Config.js`) matches
//! `[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"([^"]*)"|'([^']*)'|\S+` over the string, takes the
//! quotes off a word that is quoted as a whole, and drops empty words. That is not a shell:
//! backslashes are ordinary characters, `name="a b"` keeps its quotes, an unbalanced quote is
//! part of a word, and `#` starts nothing. Hand-written (five alternatives, no regex crate) and
//! table-tested against what PM2 7 does with the same strings.

/// PM2's words of `text`. Only a NUL is refused: no argument can carry one.
pub fn split_args(text: &str) -> Result<Vec<String>, String> {
    if text.contains('\0') {
        return Err("arguments must not contain a NUL character".to_owned());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if is_space(c) {
            i += 1;
            continue;
        }
        let end = quoted_assignment(&chars, i)
            .or_else(|| quoted(&chars, i))
            .unwrap_or_else(|| {
                let mut j = i;
                while chars.get(j).is_some_and(|c| !is_space(*c)) {
                    j += 1;
                }
                j
            });
        let word: String = chars.get(i..end).unwrap_or_default().iter().collect();
        let word = unquote(&word);
        if !word.trim().is_empty() {
            words.push(word.to_owned());
        }
        i = end.max(i + 1);
    }
    Ok(words)
}

/// JavaScript's `\s`.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// `[^\s"'=]+="[^"]*"` or its `'` twin at `i`: the end of the match.
fn quoted_assignment(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    while chars
        .get(j)
        .is_some_and(|c| !is_space(*c) && !matches!(c, '"' | '\'' | '='))
    {
        j += 1;
    }
    if j == i || chars.get(j) != Some(&'=') {
        return None;
    }
    let quote = *chars.get(j + 1).filter(|c| matches!(c, '"' | '\''))?;
    closing(chars, j + 2, quote)
}

/// `"[^"]*"` or `'[^']*'` at `i`: the end of the match.
fn quoted(chars: &[char], i: usize) -> Option<usize> {
    let quote = *chars.get(i).filter(|c| matches!(c, '"' | '\''))?;
    closing(chars, i + 1, quote)
}

/// The index after the first `quote` at or after `from`.
fn closing(chars: &[char], from: usize, quote: char) -> Option<usize> {
    let rest = chars.get(from..)?;
    rest.iter().position(|c| *c == quote).map(|k| from + k + 1)
}

/// A word quoted as a whole loses its quotes (`"a b"` → `a b`, and a lone `"` → nothing).
fn unquote(word: &str) -> &str {
    for quote in ['"', '\''] {
        if word.starts_with(quote) && word.ends_with(quote) {
            let inner = word
                .get(1..word.len().saturating_sub(1))
                .unwrap_or_default();
            return if word.len() == 1 { "" } else { inner };
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        split_args(text).unwrap()
    }

    /// Each string with the words PM2 7 passes for it (checked with `pm2 start` + `pm2 jlist`).
    #[test]
    fn the_words_pm2_makes() {
        let table: &[(&str, &[&str])] = &[
            ("  --port 3000  ", &["--port", "3000"]),
            ("'a b' \"c d\" e", &["a b", "c d", "e"]),
            ("--name='x y'", &["--name='x y'"]),
            ("--title=\"a b\" next", &["--title=\"a b\"", "next"]),
            ("a\\ b", &["a\\", "b"]),
            ("it's fine", &["it's", "fine"]),
            ("\"a b\"c", &["a b", "c"]),
            ("a\"b c\"", &["a\"b", "c\""]),
            ("'' x \"\" '", &["x"]),
            ("--color #fff --verbose", &["--color", "#fff", "--verbose"]),
            ("$HOME;rm", &["$HOME;rm"]),
            ("k='open", &["k='open"]),
            ("'a\nb' c", &["a\nb", "c"]),
            ("", &[]),
        ];
        for (text, want) in table {
            assert_eq!(words(text), *want, "{text:?}");
        }
    }

    #[test]
    fn a_nul_is_refused() {
        assert!(split_args("a\0b").unwrap_err().contains("NUL"));
    }
}
