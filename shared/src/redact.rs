//! The values a process must never print, and the one function that masks them in any text.
//!
//! The controller registers every secret value it resolves ([`register`]) before anything can
//! print it; every printed line, error, `--json` event and panic message then passes through
//! [`redact`], which replaces each value — as written, JSON-escaped, and each line of a
//! multi-line value — by `[secret NAME]`. The registry is process-wide on purpose: a secret
//! must be masked wherever it could surface, including a panic far from the code that
//! resolved it.

use std::borrow::Cow;
use std::sync::RwLock;

/// Values shorter than this are not masked (they would mask ordinary text: `1`, `yes`);
/// [`register`] says so, so the caller can warn.
pub const MIN_MASKED_LEN: usize = 4;

/// (text to find, what replaces it), longest first.
static MASKS: RwLock<Vec<(String, String)>> = RwLock::new(Vec::new());

/// Whether [`register`] masks `value`.
pub fn maskable(value: &str) -> bool {
    value.trim().chars().count() >= MIN_MASKED_LEN
}

/// Masks `value` (secret `name`) in everything [`redact`] sees from now on. Returns false,
/// masking nothing, when the value is too short to be masked ([`MIN_MASKED_LEN`]).
pub fn register(name: &str, value: &str) -> bool {
    if !maskable(value) {
        return false;
    }
    let mask = format!("[secret {name}]");
    let mut forms: Vec<String> = vec![value.to_owned()];
    // As it appears inside a JSON string.
    if let Ok(json) = serde_json::to_string(value)
        && let Some(inner) = json.get(1..json.len().saturating_sub(1))
    {
        forms.push(inner.to_owned());
    }
    // Output is shown line by line: each line of a multi-line value (a PEM key) on its own.
    if value.contains('\n') {
        forms.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|l| maskable(l))
                .map(str::to_owned),
        );
    }
    let mut masks = MASKS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !masks.iter().any(|(f, _)| *f == form) {
            masks.push((form, mask.clone()));
        }
    }
    masks.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
    true
}

/// `text` with every registered value masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let masks = MASKS.read().unwrap_or_else(|e| e.into_inner());
    if masks.is_empty() || !masks.iter().any(|(form, _)| text.contains(form.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for (form, mask) in masks.iter() {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), mask);
        }
    }
    Cow::Owned(out)
}

/// Whether any value is registered.
pub fn active() -> bool {
    !MASKS.read().unwrap_or_else(|e| e.into_inner()).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the registry is process-wide, and tests run in parallel.
    #[test]
    fn registered_values_are_masked_in_every_form() {
        assert!(!register("SHORT", "abc"));
        assert!(register("DB_PASSWORD", "hunter2-xyz"));
        assert!(register(
            "PEM",
            "-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----"
        ));
        assert!(register("QUOTED", "a\"b\\c-d"));
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(
            redact("password=hunter2-xyz!"),
            "password=[secret DB_PASSWORD]!"
        );
        assert_eq!(redact("line: AAAAsecretline"), "line: [secret PEM]");
        let json = serde_json::json!({"line": "x a\"b\\c-d y"}).to_string();
        assert!(!redact(&json).contains("a\\\"b"), "{}", redact(&json));
        assert!(redact(&json).contains("[secret QUOTED]"));
        assert_eq!(redact("abc"), "abc");
        assert!(active());
    }
}
