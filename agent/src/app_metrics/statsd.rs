//! The StatsD-style lines an app writes to the agent's metrics socket, one per line:
//! `name:value|c` (a counter: add), `name:value|g` (a gauge: set; `+N`/`-N` move it),
//! `name:value|ms` or `|h` (a timing: its last value). A sample rate (`|@0.5`) scales a
//! counter as StatsD does; tags (`|#k:v`) are ignored. A line that does not read is skipped.

use super::Update;

/// One line read: the metric's name and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub update: Update,
}

/// Read one line; `None` for anything that is not a metric line.
pub fn parse(line: &str) -> Option<Line> {
    let line = line.trim();
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '{' && c != '}')
    {
        return None;
    }
    let mut parts = rest.split('|');
    let raw = parts.next()?.trim();
    let kind = parts.next()?.trim();
    let value: f64 = raw.parse().ok().filter(|v: &f64| v.is_finite())?;
    let mut rate = 1.0;
    for part in parts {
        if let Some(r) = part.strip_prefix('@') {
            rate = r.parse().ok().filter(|r: &f64| *r > 0.0 && *r <= 1.0)?;
        }
    }
    let update = match kind {
        "c" => Update::Add(value / rate),
        "g" if raw.starts_with('+') || raw.starts_with('-') => Update::Add(value),
        "g" | "ms" | "h" => Update::Set(value),
        _ => return None,
    };
    Some(Line {
        name: name.to_string(),
        update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_statsd_reads_them() {
        let add = |n: &str, v| {
            Some(Line {
                name: n.into(),
                update: Update::Add(v),
            })
        };
        let set = |n: &str, v| {
            Some(Line {
                name: n.into(),
                update: Update::Set(v),
            })
        };
        let table = [
            ("jobs_done:1|c", add("jobs_done", 1.0)),
            ("jobs_done:3|c|@0.5", add("jobs_done", 6.0)),
            ("users:42|g", set("users", 42.0)),
            ("users:+2|g", add("users", 2.0)),
            ("users:-2|g", add("users", -2.0)),
            ("latency:12.5|ms", set("latency", 12.5)),
            ("latency:12|h|#region:eu", set("latency", 12.0)),
            ("  spaced : 1 | c  ", add("spaced", 1.0)),
            ("queue.depth:7|g\r", set("queue.depth", 7.0)),
            ("nocolon", None),
            ("x:1", None),
            ("x:abc|c", None),
            ("x:1|s", None),
            (":1|c", None),
            ("x{a}:1|c", None),
            ("x:NaN|g", None),
            ("x:inf|g", None),
            ("x:1|c|@0", None),
            ("x:1|c|@2", None),
        ];
        for (line, want) in table {
            assert_eq!(parse(line), want, "{line:?}");
        }
    }
}
