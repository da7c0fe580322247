//! How both command lines show things to people: aligned text tables, sizes, uptimes and
//! elapsed times. One set, so `pmfleet status` and `pmfleet-agent list` read alike.

use std::time::Duration;

/// Rows under headers, each column as wide as its widest cell (counted in characters), two
/// spaces apart; the last column is not padded and no line ends in spaces.
pub fn table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(headers.to_vec());
    for row in rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    out
}

/// A size in binary units with one decimal: `512 B`, `4.0 KiB`, `50.0 MiB`, `1.5 GiB`.
pub fn bytes(b: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = b as f64;
    if b < 1024 {
        format!("{b} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
    }
}

/// How long something has been up, in its largest whole unit: `5s`, `2m`, `3h`, `4d`.
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Now, RFC 3339, UTC, to the second (`2026-12-01T16:30:00Z`): how every history and audit
/// record, the controller's and the agents', says when.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `s` safe inside HTML text and attribute values (`&`, `<`, `>`, `"`, `'` escaped): the
/// dashboard's pages and the agents' maintenance page.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An elapsed time in seconds with one decimal: `0.4s`, `12.3s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Shortens the cells of the `shrinkable` columns (widest first, never below 6 characters)
/// until [`table`] of `headers` and `rows` is at most `max` characters wide; a shortened cell
/// ends in `…`. What cannot be made to fit is left as narrow as the rule allows.
pub fn fit<const N: usize>(
    headers: &[&str; N],
    rows: &[[String; N]],
    max: usize,
    shrinkable: &[usize],
) -> Vec<[String; N]> {
    const NARROWEST: usize = 6;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * N.saturating_sub(1);
    while total(&widths) > max {
        let widest = shrinkable
            .iter()
            .copied()
            .filter(|&c| widths.get(c).is_some_and(|w| *w > NARROWEST))
            .max_by_key(|&c| widths.get(c).copied().unwrap_or(0));
        match widest.and_then(|c| widths.get_mut(c)) {
            Some(w) => *w -= 1,
            None => break,
        }
    }
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            for (cell, w) in row.iter_mut().zip(&widths) {
                if cell.chars().count() > *w {
                    let kept: String = cell.chars().take(w.saturating_sub(1)).collect();
                    *cell = format!("{kept}…");
                }
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_written_to_the_second_in_utc() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-12-01T16:30:00Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
    }

    #[test]
    fn fit_shortens_the_widest_shrinkable_column_first() {
        let headers = ["HOST", "APP", "STATUS"];
        let rows = [[
            "a-very-long-host-name.example.com".to_string(),
            "api".to_string(),
            "online".to_string(),
        ]];
        let fitted = fit(&headers, &rows, 30, &[0, 1]);
        let text = table(&headers, &fitted);
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
        assert!(fitted[0][0].ends_with('…'), "{fitted:?}");
        assert_eq!(fitted[0][1], "api");
        // Already narrow enough: untouched.
        assert_eq!(fit(&headers, &rows, 100, &[0, 1]), rows.to_vec());
        // Only so narrow: a column is never cut below six characters.
        let tiny = fit(&headers, &rows, 5, &[0]);
        assert_eq!(tiny[0][0].chars().count(), 6);
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "BB"],
            &[
                ["xxx".to_string(), "y".to_string()],
                ["z".to_string(), "".to_string()],
            ],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let t = table(
            &["id", "↺", "status"],
            &[["0".to_string(), "12".to_string(), "online".to_string()]],
        );
        assert_eq!(t, "id  ↺   status\n0   12  online\n");
    }

    #[test]
    fn sizes_read_well() {
        let rows = [
            (0, "0 B"),
            (1023, "1023 B"),
            (4096, "4.0 KiB"),
            (50 * 1024 * 1024, "50.0 MiB"),
            (1536 * 1024 * 1024, "1.5 GiB"),
            (u64::MAX, "17179869184.0 GiB"),
        ];
        for (b, want) in rows {
            assert_eq!(bytes(b), want, "{b}");
        }
    }

    #[test]
    fn uptimes_read_well() {
        let rows = [
            (0, "0s"),
            (5_000, "5s"),
            (59_999, "59s"),
            (60_000, "1m"),
            (125_000, "2m"),
            (7_200_000, "2h"),
            (86_399_999, "23h"),
            (86_400_000, "1d"),
            (4 * 86_400_000 + 5, "4d"),
        ];
        for (ms, want) in rows {
            assert_eq!(uptime(ms), want, "{ms}");
        }
    }

    #[test]
    fn elapsed_seconds_have_one_decimal() {
        assert_eq!(seconds(Duration::from_millis(420)), "0.4s");
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3s");
    }
}
