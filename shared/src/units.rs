//! Durations and sizes as people write them: `500ms`, `2s`, `5m`, `1h`; `512K`, `150M`, `1G`.
//! One parser for each, used by the ecosystem file and by both command lines, with checked
//! arithmetic (a value too large is an error, never a wrapped number).
//!
//! What digits alone mean depends on where they are written, and the caller says which
//! ([`Bare`]):
//! - in the ecosystem file, milliseconds, as PM2 reads `min_uptime`, `restart_delay`,
//!   `kill_timeout`, `listen_timeout` (PM2's schema: "a NUMBER - milliseconds, `[NUMBER]h`,
//!   `[NUMBER]m` or `[NUMBER]s`"); pmfleet also takes `ms`;
//! - in a command-line flag that takes a duration (`--lock-wait`, `--timeout`,
//!   `--connect-timeout`), seconds, as `sleep`, `timeout` and most CLIs read them.
//!
//! A size's digits alone are bytes everywhere; `K`, `M` and `G` are powers of 1024, as in PM2's
//! `max_memory_restart` (an optional `B` and any case: `200mb`, `512k`).

use std::time::Duration;

/// What a number written without a unit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    Millis,
    Seconds,
}

/// Why a duration or a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("`{text}` is not {what}: write e.g. {examples}")]
    NotANumber {
        text: String,
        what: &'static str,
        examples: &'static str,
    },
    #[error("`{text}` has an unknown unit `{unit}`: use {units}")]
    UnknownUnit {
        text: String,
        unit: String,
        units: &'static str,
    },
    #[error("`{text}` is too large")]
    TooLarge { text: String },
}

const DURATION_UNITS: &str = "ms, s, m or h";
const SIZE_UNITS: &str = "K, M or G (powers of 1024), or none for bytes";

/// A duration: digits, then optionally `ms`, `s`, `m` or `h` (spaces around allowed).
pub fn parse_duration(text: &str, bare: Bare) -> Result<Duration, UnitError> {
    let (n, unit) = split(text, "a duration", "30s, 5m or 1h")?;
    let ms_per_unit: u64 = match unit {
        "" if bare == Bare::Millis => 1,
        "" => 1_000,
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(unknown(text, other, DURATION_UNITS)),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| too_large(text))
}

/// A size in bytes: digits, then optionally `K`, `M` or `G` (and a `B`), any case.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (n, unit) = split(text, "a size", "512K, 200M or 1G")?;
    let upper = unit.to_ascii_uppercase();
    let factor: u64 = match upper.strip_suffix('B').unwrap_or(&upper) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(unknown(text, unit, SIZE_UNITS)),
    };
    n.checked_mul(factor).ok_or_else(|| too_large(text))
}

/// The leading digits as a number, and the (trimmed) rest.
fn split<'a>(
    text: &'a str,
    what: &'static str,
    examples: &'static str,
) -> Result<(u64, &'a str), UnitError> {
    let trimmed = text.trim();
    let end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(end);
    if digits.is_empty() {
        return Err(UnitError::NotANumber {
            text: text.to_string(),
            what,
            examples,
        });
    }
    let n = digits.parse::<u64>().map_err(|_| too_large(text))?;
    Ok((n, unit.trim()))
}

fn unknown(text: &str, unit: &str, units: &'static str) -> UnitError {
    UnitError::UnknownUnit {
        text: text.to_string(),
        unit: unit.to_string(),
        units,
    }
}

fn too_large(text: &str) -> UnitError {
    UnitError::TooLarge {
        text: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |n| Ok(Duration::from_millis(n));
        let rows: &[(&str, Bare, Result<Duration, ()>)] = &[
            ("700", Bare::Millis, ms(700)),
            ("700", Bare::Seconds, ms(700_000)),
            ("0", Bare::Seconds, ms(0)),
            ("500ms", Bare::Millis, ms(500)),
            ("500ms", Bare::Seconds, ms(500)),
            ("2s", Bare::Millis, ms(2_000)),
            ("30s", Bare::Seconds, ms(30_000)),
            ("1m", Bare::Millis, ms(60_000)),
            ("5m", Bare::Seconds, ms(300_000)),
            ("1h", Bare::Millis, ms(3_600_000)),
            (" 15s ", Bare::Seconds, ms(15_000)),
            ("15 s", Bare::Seconds, ms(15_000)),
            ("2 days", Bare::Millis, Err(())),
            ("1d", Bare::Seconds, Err(())),
            ("2S", Bare::Millis, Err(())),
            ("s", Bare::Seconds, Err(())),
            ("", Bare::Seconds, Err(())),
            ("soon", Bare::Seconds, Err(())),
            ("-1", Bare::Millis, Err(())),
            ("1.5s", Bare::Seconds, Err(())),
            ("99999999999999999999", Bare::Millis, Err(())),
            ("18446744073709551615h", Bare::Millis, Err(())),
            ("18446744073709551615", Bare::Seconds, Err(())),
            ("18446744073709551615", Bare::Millis, ms(u64::MAX)),
        ];
        for (text, bare, want) in rows {
            assert_eq!(
                parse_duration(text, *bare).map_err(drop),
                *want,
                "{text:?} {bare:?}"
            );
        }
    }

    #[test]
    fn sizes() {
        let rows: &[(&str, Result<u64, ()>)] = &[
            ("1048576", Ok(1_048_576)),
            ("0", Ok(0)),
            ("512K", Ok(512 << 10)),
            ("512k", Ok(512 << 10)),
            ("150M", Ok(150 << 20)),
            ("200mb", Ok(200 << 20)),
            ("100MB", Ok(100 << 20)),
            ("1G", Ok(1 << 30)),
            ("1gB", Ok(1 << 30)),
            (" 64 M ", Ok(64 << 20)),
            ("1T", Err(())),
            ("M", Err(())),
            ("lots", Err(())),
            ("", Err(())),
            ("1.5G", Err(())),
            ("-1M", Err(())),
            ("99999999999999999999G", Err(())),
            ("17179869184G", Err(())),
        ];
        for (text, want) in rows {
            assert_eq!(parse_size(text).map_err(drop), *want, "{text:?}");
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        assert_eq!(
            parse_duration("soon", Bare::Seconds)
                .unwrap_err()
                .to_string(),
            "`soon` is not a duration: write e.g. 30s, 5m or 1h"
        );
        assert_eq!(
            parse_duration("3d", Bare::Seconds).unwrap_err().to_string(),
            "`3d` has an unknown unit `d`: use ms, s, m or h"
        );
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "`lots` is not a size: write e.g. 512K, 200M or 1G"
        );
        assert_eq!(
            parse_size("99999999999999999999G").unwrap_err().to_string(),
            "`99999999999999999999G` is too large"
        );
    }
}
