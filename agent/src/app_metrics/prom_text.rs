//! Reading the samples out of an app's Prometheus text exposition: each line
//! `name{labels} value [timestamp]` becomes (`name{labels}`, value), comments and lines that
//! do not read skipped. Labels are kept as the app wrote them (they reach the agent's own
//! exposition after its `host`, `app` and `app_instance` labels).

/// The samples of `text`, in order, at most `max`.
pub fn samples(text: &str, max: usize) -> Vec<(String, f64)> {
    text.lines().filter_map(sample).take(max).collect()
}

fn sample(line: &str) -> Option<(String, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line.get(open..)?.find('}')?;
            (line.get(..=close)?, line.get(close + 1..)?)
        }
        None => line.split_once(char::is_whitespace)?,
    };
    let name = series.split('{').next()?;
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let series = series.strip_suffix("{}").unwrap_or(series);
    Some((series.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_an_exposition() {
        let text = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 12\n\
                    queue_depth{queue=\"mail\",x=\"a b\"} 3 1700000000000\n\
                    empty_labels{} 1\nbad line\nlatency_seconds +Inf\n9bad 1\nnovalue{a=\"b\"}\n";
        assert_eq!(
            samples(text, 10),
            vec![
                ("jobs_total".to_string(), 12.0),
                ("queue_depth{queue=\"mail\",x=\"a b\"}".to_string(), 3.0),
                ("empty_labels".to_string(), 1.0),
                ("latency_seconds".to_string(), f64::INFINITY),
            ]
        );
        assert_eq!(samples(text, 1).len(), 1);
    }
}
