//! The dashboard's charts: lines over time drawn as inline SVG by the server (no chart
//! library in the browser, nothing for the page's Content-Security-Policy to allow).

use std::fmt::Write as _;

/// One line: its legend and its (Unix seconds, value) points, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels on the left, and for the legend at the bottom.
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 10.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// Where `(t, v)` lands in a chart spanning `t0..=t1` and `0..=top`.
pub fn place(t: i64, v: f64, t0: i64, t1: i64, top: f64) -> (f64, f64) {
    let span = (t1 - t0).max(1) as f64;
    let x = LEFT + (t - t0) as f64 / span * (WIDTH - LEFT - 10.0);
    let share = if top > 0.0 {
        (v / top).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let y = TOP + (1.0 - share) * (HEIGHT - TOP - BOTTOM);
    (x.round(), y.round())
}

/// An SVG chart of `series`, its axis labelled with `label` (e.g. a byte size).
pub fn svg(title: &str, series: &[Series], label: impl Fn(f64) -> String) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let t0 = all.clone().map(|p| p.0).min().unwrap_or(0);
    let t1 = all.clone().map(|p| p.0).max().unwrap_or(0);
    let top = all.map(|p| p.1).fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><text x="4" y="{}" class="axis">{}</text><text x="4" y="{}" class="axis">0</text>"#,
        super::pages::escape(title),
        TOP + 10.0,
        super::pages::escape(&label(top)),
        HEIGHT - BOTTOM,
    );
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#999"/>"##,
        HEIGHT - BOTTOM,
        WIDTH - 10.0,
        HEIGHT - BOTTOM
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("#000");
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| {
                let (x, y) = place(*t, *v, t0, t1, top);
                format!("{x},{y}")
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" fill="{colour}" class="legend">{}</text>"#,
            points.join(" "),
            LEFT + (i as f64 % 4.0) * 140.0,
            HEIGHT - 8.0,
            super::pages::escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_plot() {
        let table = [
            ((0, 0.0), (70.0, 150.0)),
            ((100, 10.0), (630.0, 10.0)),
            ((50, 5.0), (350.0, 80.0)),
            ((50, 20.0), (350.0, 10.0)),
            ((50, -1.0), (350.0, 150.0)),
        ];
        for ((t, v), want) in table {
            assert_eq!(place(t, v, 0, 100, 10.0), want, "{t} {v}");
        }
        // One point in time, or nothing but zeros: still inside.
        assert_eq!(place(5, 0.0, 5, 5, 0.0), (70.0, 150.0));
    }

    #[test]
    fn a_chart_has_a_line_and_a_legend_per_series() {
        let series = vec![
            Series {
                name: "web1 api[0]".into(),
                points: vec![(0, 1.0), (10, 2.0)],
            },
            Series {
                name: "<b>".into(),
                points: vec![(5, 4.0)],
            },
        ];
        let svg = svg("cpu", &series, |v| format!("{v}%"));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(
            svg.contains("web1 api[0]") && svg.contains("&lt;b&gt;"),
            "{svg}"
        );
        assert!(svg.contains(">4%<"), "the top value labels the axis: {svg}");
        assert!(svg.contains(r#"points="70,115 630,80""#), "{svg}");
    }
}
