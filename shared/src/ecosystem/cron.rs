//! Cron patterns, for `cron_restart`: five fields (minute hour day-of-month month weekday), or
//! six with seconds first (as PM2 accepts), or a nickname (`@hourly`, `@daily` …).
//!
//! Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a list of
//! those separated by commas. Months and weekdays may be names (`jan`, `mon`); weekday 7 is
//! Sunday, like 0. As in Vixie cron, when both the day of the month and the weekday are
//! restricted, a day matching either one matches.
//!
//! [`CronSchedule::matches`] is pure: the caller brings the calendar time (the agent uses its
//! local time), and [`CronSchedule::next_after`] finds the next second a pattern fires at.
//!
//! The `croner` crate (a port of the library PM2 uses) does the parsing for real, the matching
//! and the search for the next run. The field checks in front of it are kept because they say
//! which field is wrong and what it may hold, which croner's errors do not.

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    cron: Cron,
    /// Fires only at second 0 of a minute.
    minute_aligned: bool,
}

/// One instant as a calendar shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarTime {
    pub second: u32,
    pub minute: u32,
    pub hour: u32,
    /// 1–31.
    pub day: u32,
    /// 1–12.
    pub month: u32,
    /// 0 (Sunday) – 6.
    pub weekday: u32,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// What one field may hold.
struct FieldKind {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const fn kind(name: &'static str, min: u32, max: u32, names: &'static [&'static str]) -> FieldKind {
    FieldKind {
        name,
        min,
        max,
        names,
    }
}

const SECOND: FieldKind = kind("second", 0, 59, &[]);
const MINUTE: FieldKind = kind("minute", 0, 59, &[]);
const HOUR: FieldKind = kind("hour", 0, 23, &[]);
const DAY: FieldKind = kind("day of the month", 1, 31, &[]);
const MONTH: FieldKind = kind("month", 1, 12, &MONTHS);
/// 0 and 7 are both Sunday.
const WEEKDAY: FieldKind = kind("weekday", 0, 7, &WEEKDAYS);

impl CronSchedule {
    /// Parse a pattern; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<CronSchedule, String> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            other if other.starts_with('@') => {
                return Err(format!(
                    "`{text}` is not a cron nickname (@yearly, @monthly, @weekly, @daily, @hourly)"
                ));
            }
            _ => text.to_string(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, minute, hour, day, month, weekday) = match fields.as_slice() {
            [minute, hour, day, month, weekday] => ("0", *minute, *hour, *day, *month, *weekday),
            [second, minute, hour, day, month, weekday] => {
                (*second, *minute, *hour, *day, *month, *weekday)
            }
            other => {
                return Err(format!(
                    "`{text}` has {} field(s); a cron pattern has five (minute hour day month weekday) or six (seconds first)",
                    other.len()
                ));
            }
        };
        // Every field checked here first, so an error names its field.
        let seconds_set = field(seconds, &SECOND)?;
        for (text, kind) in [
            (minute, &MINUTE),
            (hour, &HOUR),
            (day, &DAY),
            (month, &MONTH),
            (weekday, &WEEKDAY),
        ] {
            field(text, kind)?;
        }
        let six = format!("{seconds} {minute} {hour} {day} {month} {weekday}");
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build()
            .parse(&six)
            .map_err(|e| format!("`{text}`: {e}"))?;
        Ok(CronSchedule {
            cron,
            minute_aligned: seconds_set == 1,
        })
    }

    /// Whether the pattern fires at `t`.
    pub fn matches(&self, t: &CalendarTime) -> bool {
        let p = &self.cron.pattern;
        if t.weekday > 6 {
            return false;
        }
        let weekday = croner::Weekday::from_days_from_sunday(t.weekday);
        // A leap year, so that 29 February is a day the calendar can show.
        let day = p.day_match(2000, t.month, t.day, weekday);
        [
            p.second_match(t.second),
            p.minute_match(t.minute),
            p.hour_match(t.hour),
            p.month_match(t.month),
            day,
        ]
        .into_iter()
        .all(|m| m.unwrap_or(false))
    }

    /// Whether it fires only at second 0 of a minute (five fields, or a seconds field of `0`).
    pub fn minute_aligned(&self) -> bool {
        self.minute_aligned
    }

    /// The first second after `after` at which the pattern fires, in `after`'s time zone
    /// (daylight saving time included); `None` for a pattern that never fires (30 February).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, kind: &FieldKind) -> Result<u64, String> {
    let bad = |why: String| format!("{} field `{text}`: {why}", kind.name);
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    bad(format!("`{step}` is not a step (a whole number above 0)"))
                })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (kind.min, kind.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, kind).map_err(&bad)?, value(b, kind).map_err(&bad)?)
        } else {
            let v = value(range, kind).map_err(&bad)?;
            // `a/n` runs from a to the end, as in Vixie cron.
            (v, if step > 1 { kind.max } else { v })
        };
        if from > to {
            return Err(bad(format!("the range {from}-{to} runs backwards")));
        }
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn value(text: &str, kind: &FieldKind) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = kind.names.iter().position(|n| *n == lower) {
        // Months are named from 1 (`jan`), weekdays from 0 (`sun`).
        let first = if kind.min == 1 { 1 } else { 0 };
        return Ok(u32::try_from(i).unwrap_or(0) + first);
    }
    match text.parse::<u32>() {
        Ok(v) if (kind.min..=kind.max).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is out of range ({}–{})", kind.min, kind.max)),
        Err(_) if kind.names.is_empty() => Err(format!("`{text}` is not a number")),
        Err(_) => Err(format!(
            "`{text}` is neither a number nor a name ({})",
            kind.names.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(month: u32, day: u32, weekday: u32, hour: u32, minute: u32, second: u32) -> CalendarTime {
        CalendarTime {
            second,
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    #[test]
    fn five_fields_fire_at_second_zero() {
        let s = CronSchedule::parse("30 3 * * *").unwrap();
        assert!(s.matches(&at(6, 15, 2, 3, 30, 0)));
        assert!(!s.matches(&at(6, 15, 2, 3, 30, 1)));
        assert!(!s.matches(&at(6, 15, 2, 4, 30, 0)));
        assert!(s.minute_aligned());
    }

    #[test]
    fn six_fields_name_the_seconds() {
        let s = CronSchedule::parse("*/15 * * * * *").unwrap();
        assert!(!s.minute_aligned());
        for second in 0..60 {
            assert_eq!(s.matches(&at(1, 1, 0, 0, 0, second)), second % 15 == 0);
        }
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        let s = CronSchedule::parse("0 9-17/4,23 * jan-mar mon-fri").unwrap();
        for hour in 0..24 {
            assert_eq!(
                s.matches(&at(2, 10, 3, hour, 0, 0)),
                [9, 13, 17, 23].contains(&hour),
                "{hour}"
            );
        }
        assert!(!s.matches(&at(4, 10, 3, 9, 0, 0)), "April");
        assert!(!s.matches(&at(2, 10, 0, 9, 0, 0)), "Sunday");
        let sunday = CronSchedule::parse("0 0 * * 7").unwrap();
        assert!(sunday.matches(&at(5, 5, 0, 0, 0, 0)));
        let from = CronSchedule::parse("10/20 * * * *").unwrap();
        assert!(from.matches(&at(1, 1, 1, 1, 50, 0)) && !from.matches(&at(1, 1, 1, 1, 0, 0)));
    }

    #[test]
    fn day_and_weekday_both_restricted_match_either() {
        let s = CronSchedule::parse("0 0 1 * mon").unwrap();
        assert!(s.matches(&at(3, 1, 4, 0, 0, 0)), "the 1st, a Thursday");
        assert!(s.matches(&at(3, 6, 1, 0, 0, 0)), "a Monday");
        assert!(!s.matches(&at(3, 7, 2, 0, 0, 0)));
        let only_day = CronSchedule::parse("0 0 1 * *").unwrap();
        assert!(!only_day.matches(&at(3, 6, 1, 0, 0, 0)));
    }

    #[test]
    fn nicknames() {
        assert_eq!(
            CronSchedule::parse("@daily").unwrap(),
            CronSchedule::parse("0 0 * * *").unwrap()
        );
        assert_eq!(
            CronSchedule::parse("@hourly").unwrap(),
            CronSchedule::parse("0 * * * *").unwrap()
        );
        assert!(CronSchedule::parse("@fortnightly").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        for (pattern, says) in [
            ("61 * * * *", "minute field `61`: 61 is out of range"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of the month field"),
            ("* * * 13 *", "month field"),
            ("* * * * funday", "weekday field"),
            ("*/0 * * * *", "not a step"),
            ("5-1 * * * *", "runs backwards"),
            ("* * * *", "has 4 field(s)"),
        ] {
            let err = CronSchedule::parse(pattern).unwrap_err();
            assert!(err.contains(says), "{pattern}: {err}");
        }
    }
}
