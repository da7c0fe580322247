//! Timestamps for log lines, in PM2's `log_date_format` notation (moment.js tokens).
//!
//! PM2 formats with moment.js, so ecosystem files carry formats like `YYYY-MM-DD HH:mm:ss Z`.
//! The tokens people use are supported: `YYYY YY M MM D DD H HH h hh m mm s ss SSS Z ZZ A a X x`
//! and `[...]` for literal text; every other character is copied as is. Times are local, as in
//! PM2.
//!
//! The local UTC offset comes from the C library (`localtime_r`), because the `time` crate
//! refuses to read it once a process has threads. It is looked up at most once a minute.

use std::fmt::Write as _;
use std::time::SystemTime;

use time::{OffsetDateTime, UtcOffset};

/// PM2's format when `time: true` is set without `log_date_format`.
pub const DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Year4,
    Year2,
    Month,
    Month2,
    Day,
    Day2,
    Hour,
    Hour2,
    Hour12,
    Hour12_2,
    Minute,
    Minute2,
    Second,
    Second2,
    Millis3,
    /// `+07:00`
    Offset,
    /// `+0700`
    OffsetCompact,
    AmPmUpper,
    AmPmLower,
    UnixSeconds,
    UnixMillis,
}

/// A compiled timestamp format plus the cached local offset.
#[derive(Debug, Clone)]
pub struct Stamp {
    pieces: Vec<Piece>,
    /// (unix minute, offset at that minute)
    offset_cache: Option<(i64, UtcOffset)>,
}

/// Tokens, longest first so `YYYY` wins over `YY` and `SSS` is tried before anything shorter.
const TOKENS: &[(&str, Piece)] = &[
    ("YYYY", Piece::Year4),
    ("SSS", Piece::Millis3),
    ("YY", Piece::Year2),
    ("MM", Piece::Month2),
    ("DD", Piece::Day2),
    ("HH", Piece::Hour2),
    ("hh", Piece::Hour12_2),
    ("mm", Piece::Minute2),
    ("ss", Piece::Second2),
    ("ZZ", Piece::OffsetCompact),
    ("M", Piece::Month),
    ("D", Piece::Day),
    ("H", Piece::Hour),
    ("h", Piece::Hour12),
    ("m", Piece::Minute),
    ("s", Piece::Second),
    ("Z", Piece::Offset),
    ("A", Piece::AmPmUpper),
    ("a", Piece::AmPmLower),
    ("X", Piece::UnixSeconds),
    ("x", Piece::UnixMillis),
];

impl Stamp {
    /// Compiles a moment-style format. Never fails: what is not a token is literal text.
    pub fn new(format: &str) -> Stamp {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        'outer: while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                // `[text]` is literal; an unclosed `[` is literal too.
                if let Some((text, tail)) = after.split_once(']') {
                    literal.push_str(text);
                    rest = tail;
                    continue;
                }
            }
            for (token, piece) in TOKENS {
                if let Some(after) = rest.strip_prefix(token) {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece.clone());
                    rest = after;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                literal.push(c);
            }
            rest = chars.as_str();
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Stamp {
            pieces,
            offset_cache: None,
        }
    }

    /// Appends the current local time, formatted, to `out`.
    pub fn write_now(&mut self, out: &mut Vec<u8>) {
        let now = self.local(OffsetDateTime::from(SystemTime::now()));
        let mut s = String::with_capacity(32);
        self.format(now, &mut s);
        out.extend_from_slice(s.as_bytes());
    }

    /// `unix_ms` (milliseconds since the epoch) as local time, formatted.
    pub fn format_unix_ms(&mut self, unix_ms: u64) -> String {
        let nanos = i128::from(unix_ms) * 1_000_000;
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let t = self.local(t);
        let mut s = String::with_capacity(32);
        self.format(t, &mut s);
        s
    }

    /// `t` in the local offset of its minute.
    fn local(&mut self, t: OffsetDateTime) -> OffsetDateTime {
        let minute = t.unix_timestamp().div_euclid(60);
        let offset = match self.offset_cache {
            Some((m, off)) if m == minute => off,
            _ => {
                let off = local_offset(t.unix_timestamp());
                self.offset_cache = Some((minute, off));
                off
            }
        };
        t.to_offset(offset)
    }

    fn format(&self, t: OffsetDateTime, out: &mut String) {
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let off = t.offset();
        let (sign, oh, om) = {
            let total = off.whole_seconds();
            let sign = if total < 0 { '-' } else { '+' };
            let abs = total.unsigned_abs();
            (sign, abs / 3600, (abs % 3600) / 60)
        };
        for p in &self.pieces {
            // Writing to a String cannot fail.
            let _ = match p {
                Piece::Literal(s) => out.write_str(s),
                Piece::Year4 => write!(out, "{:04}", t.year()),
                Piece::Year2 => write!(out, "{:02}", t.year().rem_euclid(100)),
                Piece::Month => write!(out, "{}", u8::from(t.month())),
                Piece::Month2 => write!(out, "{:02}", u8::from(t.month())),
                Piece::Day => write!(out, "{}", t.day()),
                Piece::Day2 => write!(out, "{:02}", t.day()),
                Piece::Hour => write!(out, "{}", t.hour()),
                Piece::Hour2 => write!(out, "{:02}", t.hour()),
                Piece::Hour12 => write!(out, "{hour12}"),
                Piece::Hour12_2 => write!(out, "{hour12:02}"),
                Piece::Minute => write!(out, "{}", t.minute()),
                Piece::Minute2 => write!(out, "{:02}", t.minute()),
                Piece::Second => write!(out, "{}", t.second()),
                Piece::Second2 => write!(out, "{:02}", t.second()),
                Piece::Millis3 => write!(out, "{:03}", t.millisecond()),
                Piece::Offset => write!(out, "{sign}{oh:02}:{om:02}"),
                Piece::OffsetCompact => write!(out, "{sign}{oh:02}{om:02}"),
                Piece::AmPmUpper => out.write_str(if t.hour() < 12 { "AM" } else { "PM" }),
                Piece::AmPmLower => out.write_str(if t.hour() < 12 { "am" } else { "pm" }),
                Piece::UnixSeconds => write!(out, "{}", t.unix_timestamp()),
                Piece::UnixMillis => write!(out, "{}", t.unix_timestamp_nanos() / 1_000_000),
            };
        }
    }
}

/// The local UTC offset at `unix` seconds, from the system's time zone data (`TZ`,
/// `/etc/localtime`) as chrono reads it; UTC when it cannot tell. (`time`'s own local offset
/// refuses to answer in a multi-threaded process, which the daemon is.)
fn local_offset(unix: i64) -> UtcOffset {
    use chrono::{Offset, TimeZone};
    chrono::Local
        .timestamp_opt(unix, 0)
        .single()
        .and_then(|t| UtcOffset::from_whole_seconds(t.offset().fix().local_minus_utc()).ok())
        .unwrap_or(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn fmt(format: &str, t: OffsetDateTime) -> String {
        let mut s = String::new();
        Stamp::new(format).format(t, &mut s);
        s
    }

    #[test]
    fn common_formats() {
        let t = datetime!(2026-03-07 09:05:04.012 +07:00);
        assert_eq!(fmt(DEFAULT_FORMAT, t), "2026-03-07T09:05:04");
        assert_eq!(
            fmt("YYYY-MM-DD HH:mm:ss Z", t),
            "2026-03-07 09:05:04 +07:00"
        );
        assert_eq!(
            fmt("YYYY-MM-DD HH:mm:ss.SSS ZZ", t),
            "2026-03-07 09:05:04.012 +0700"
        );
        assert_eq!(fmt("D/M/YY h:m:s a", t), "7/3/26 9:5:4 am");
        assert_eq!(fmt("hh A", datetime!(2026-03-07 00:30 UTC)), "12 AM");
        assert_eq!(fmt("hh A", datetime!(2026-03-07 13:30 UTC)), "01 PM");
        assert_eq!(fmt("X", datetime!(1970-01-01 00:01:40 UTC)), "100");
        assert_eq!(fmt("x", datetime!(1970-01-01 00:00:01.5 UTC)), "1500");
        assert_eq!(
            fmt("Z", datetime!(2026-01-01 00:00 -03:30)),
            "-03:30",
            "negative offsets"
        );
    }

    #[test]
    fn literals() {
        let t = datetime!(2026-03-07 09:05:04 UTC);
        assert_eq!(fmt("[at] HH:mm", t), "at 09:05");
        assert_eq!(fmt("[YYYY] YYYY", t), "YYYY 2026");
        // As in moment.js, an unclosed `[` is literal and the letters after it are still tokens.
        assert_eq!(fmt("HH:mm [nope s", t), "09:05 [nope 4");
        assert_eq!(fmt("ünï → HH", t), "ünï → 09");
        assert_eq!(fmt("", t), "");
    }

    #[test]
    fn now_is_local_and_well_formed() {
        let mut out = Vec::new();
        Stamp::new("YYYY-MM-DDTHH:mm:ss.SSSZ").write_now(&mut out);
        let s = String::from_utf8(out).expect("utf-8");
        assert_eq!(s.len(), "2026-03-07T09:05:04.012+07:00".len(), "{s}");
        assert!(s.starts_with("20"), "{s}");
    }
}
