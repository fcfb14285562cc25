//! A Gantt chart of a run as a standalone SVG: one lane for the real shell and one per
//! speculation slot, one bar per unit instance, coloured by outcome, with a time axis, a legend
//! and a tooltip (`<title>`) per bar. Pure: no I/O.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Where an instance ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lane {
    /// The real shell.
    Shell,
    /// Speculation slot k (0-based).
    Slot(usize),
}

/// What became of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A speculation whose effects were committed.
    Committed,
    /// A speculation thrown away (discarded or killed).
    Discarded,
    /// Run by the shell itself.
    Direct,
}

/// One instance on the chart. Times are seconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub lane: Lane,
    pub start: f64,
    pub end: f64,
    pub outcome: Outcome,
    /// Short name drawn in the bar, e.g. `u3[1]`.
    pub label: String,
    /// The unit's source text.
    pub text: String,
    /// Why it was discarded, or any other note.
    pub why: Option<String>,
}

// Layout, in SVG user units (pixels).
const WIDTH: f64 = 1200.0;
const LEFT: f64 = 74.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 40.0;
const AXIS: f64 = 34.0;
const LEGEND: f64 = 30.0;
const LABEL_FONT: f64 = 11.0;
/// Generous width of one character of the bar labels (sans-serif, `LABEL_FONT` px).
const CHAR_W: f64 = 6.8;
/// Longest unit text put in a tooltip.
const MAX_TEXT: usize = 2000;

/// The colour of an outcome, from the Okabe–Ito palette (distinct under the common
/// colour-vision deficiencies). Discarded bars are also hatched, so they differ in grey too.
pub fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Committed => "#009E73",
        Outcome::Discarded => "#E69F00",
        Outcome::Direct => "#0072B2",
    }
}

/// The fill of a bar, and the colour of a label drawn on it.
fn colours(o: Outcome) -> (&'static str, &'static str) {
    match o {
        Outcome::Committed => (colour(o), "#000000"),
        Outcome::Discarded => ("url(#hatch)", "#000000"),
        Outcome::Direct => (colour(o), "#FFFFFF"),
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Committed => "committed",
        Outcome::Discarded => "discarded",
        Outcome::Direct => "run by the shell",
    }
}

/// Lane index from the top: the shell first, then slot 0, 1, …
fn row(lane: Lane) -> usize {
    match lane {
        Lane::Shell => 0,
        Lane::Slot(k) => k + 1,
    }
}

/// Height of one lane: roomy for a few lanes, thinner for many.
fn lane_height(lanes: usize) -> f64 {
    (320.0 / lanes as f64).clamp(12.0, 30.0).floor()
}

fn finite_or(x: f64, d: f64) -> f64 {
    if x.is_finite() { x } else { d }
}

/// Text made safe for XML character data and attribute values: markup characters escaped,
/// characters XML 1.0 forbids (most control characters) shown as `\xNN`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving about `want` intervals over `total`.
fn tick_step(total: f64, want: f64) -> f64 {
    let raw = total / want;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let nice = if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * p
}

/// An axis label: milliseconds when the axis is under a second long, seconds otherwise, with
/// as many decimals as `step` needs.
fn fmt_tick(t: f64, step: f64, total: f64) -> String {
    let (v, s, unit) = if total < 1.0 {
        (t * 1000.0, step * 1000.0, "ms")
    } else {
        (t, step, "s")
    };
    let decimals = if s >= 0.999 {
        0
    } else {
        (-(s * 1.001).log10().floor()) as usize
    };
    format!("{v:.decimals$} {unit}")
}

/// A time or duration for a tooltip.
fn fmt_secs(d: f64) -> String {
    if d < 1.0 {
        format!("{:.1} ms", d * 1000.0)
    } else {
        format!("{d:.3} s")
    }
}

/// The chart as a standalone SVG document. `slots` lanes of speculation are drawn (more if a
/// bar names a higher slot); `total_secs` is the length of the time axis (the latest bar end
/// if it is not positive).
pub fn svg(bars: &[Bar], slots: usize, total_secs: f64, title: &str) -> String {
    let max_slot = bars
        .iter()
        .filter_map(|b| match b.lane {
            Lane::Slot(k) => Some(k + 1),
            Lane::Shell => None,
        })
        .max()
        .unwrap_or(0);
    let lanes = 1 + slots.max(max_slot);
    let latest = bars
        .iter()
        .map(|b| finite_or(b.end, 0.0))
        .fold(0.0, f64::max);
    let total = if total_secs.is_finite() && total_secs > 0.0 {
        total_secs
    } else if latest > 0.0 {
        latest
    } else {
        1.0
    };
    let lane_h = lane_height(lanes);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = lane_h * lanes as f64;
    let height = TOP + plot_h + AXIS + LEGEND;
    let x_of = |t: f64| LEFT + (finite_or(t, 0.0).clamp(0.0, total) / total) * plot_w;

    let mut s = String::with_capacity(400 + bars.len() * 300);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        s,
        r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="{}"/><rect width="2" height="6" fill="#FFFFFF" fill-opacity="0.55"/></pattern></defs>"##,
        colour(Outcome::Discarded)
    );
    let _ = writeln!(
        s,
        r##"<rect width="{WIDTH}" height="{height}" fill="#FFFFFF"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="24" font-size="15" font-weight="bold" fill="#222222">{}</text>"##,
        escape(&cut(title, 150))
    );

    // Lanes: alternate shading and a name on the left.
    for i in 0..lanes {
        let y = TOP + lane_h * i as f64;
        let fill = if i % 2 == 0 { "#F2F2F2" } else { "#FFFFFF" };
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{lane_h}" fill="{fill}"/>"#
        );
        let name = if i == 0 {
            "shell".to_string()
        } else {
            format!("slot {}", i - 1)
        };
        // With very many lanes, name every few.
        let every = (14.0 / lane_h).ceil() as usize;
        if i == 0 || (i - 1) % every.max(1) == 0 {
            let fs = (lane_h - 2.0).min(12.0);
            let weight = if i == 0 { "bold" } else { "normal" };
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{:.1}" font-size="{fs}" font-weight="{weight}" text-anchor="end" fill="#333333">{name}</text>"##,
                LEFT - 8.0,
                y + lane_h / 2.0 + fs * 0.35
            );
        }
    }

    // Time axis: grid lines across the lanes, ticks and labels below.
    let step = tick_step(total, (plot_w / 110.0).max(2.0));
    let axis_y = TOP + plot_h;
    let n_ticks = (total / step + 1e-9).floor() as usize;
    for k in 0..=n_ticks {
        let t = step * k as f64;
        let x = x_of(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="{TOP}" x2="{x:.2}" y2="{:.2}" stroke="#CCCCCC" stroke-width="1"/>"##,
            axis_y + 5.0
        );
        let _ = writeln!(
            s,
            r##"<text x="{x:.2}" y="{:.2}" font-size="11" text-anchor="middle" fill="#333333">{}</text>"##,
            axis_y + 18.0,
            fmt_tick(t, step, total)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#666666" stroke-width="1"/>"##,
        LEFT + plot_w
    );

    // Bars.
    let pad = (lane_h * 0.15).clamp(1.0, 4.0);
    for b in bars {
        let x0 = x_of(b.start);
        let x1 = x_of(b.end).max(x0);
        let w = x1 - x0;
        // A 1 px gap between neighbours when there is room; at least 1 px wide.
        let w = if w > 3.0 { w - 1.0 } else { w.max(1.0) };
        let y = TOP + lane_h * row(b.lane) as f64 + pad;
        let h = lane_h - 2.0 * pad;
        let (fill, ink) = colours(b.outcome);
        let mut tip = format!(
            "{} — {}\n{} – {} ({})",
            cut(&b.label, 100),
            outcome_name(b.outcome),
            fmt_secs(finite_or(b.start, 0.0)),
            fmt_secs(finite_or(b.end, 0.0)),
            fmt_secs(finite_or(b.end - b.start, 0.0).max(0.0))
        );
        if let Some(why) = &b.why {
            let _ = write!(tip, "\nwhy: {}", cut(why, 500));
        }
        let _ = write!(tip, "\n{}", cut(&b.text, MAX_TEXT));
        let rx = if w > 6.0 { 2 } else { 0 };
        let class = match b.outcome {
            Outcome::Committed => "committed",
            Outcome::Discarded => "discarded",
            Outcome::Direct => "direct",
        };
        let _ = write!(
            s,
            r#"<g class="bar {class}"><title>{}</title><rect x="{x0:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" rx="{rx}" fill="{fill}"/>"#,
            escape(&tip)
        );
        let label_w = b.label.chars().count() as f64 * CHAR_W + 6.0;
        if !b.label.is_empty() && w >= label_w && h >= LABEL_FONT {
            let _ = write!(
                s,
                r#"<text x="{:.2}" y="{:.2}" font-size="{LABEL_FONT}" fill="{ink}" pointer-events="none">{}</text>"#,
                x0 + 3.0,
                y + h / 2.0 + LABEL_FONT * 0.35,
                escape(&b.label)
            );
        }
        s.push_str("</g>\n");
    }

    // Legend, with counts.
    let ly = axis_y + AXIS + 4.0;
    let mut lx = LEFT;
    for o in [Outcome::Committed, Outcome::Discarded, Outcome::Direct] {
        let n = bars.iter().filter(|b| b.outcome == o).count();
        let (fill, _) = colours(o);
        let text = format!("{} ({n})", outcome_name(o));
        let _ = writeln!(
            s,
            r##"<rect x="{lx}" y="{}" width="14" height="14" rx="2" fill="{fill}"/><text x="{}" y="{}" font-size="12" fill="#333333">{}</text>"##,
            ly - 11.0,
            lx + 20.0,
            ly,
            escape(&text)
        );
        lx += 20.0 + text.chars().count() as f64 * 7.2 + 24.0;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(lane: Lane, start: f64, end: f64, outcome: Outcome, label: &str) -> Bar {
        Bar {
            lane,
            start,
            end,
            outcome,
            label: label.into(),
            text: format!("echo {label}"),
            why: None,
        }
    }

    /// Checks that `s` is well-formed XML as far as this module writes it: balanced,
    /// properly nested elements, quoted attributes, known entities only, no raw `<`/`&` in
    /// text, no forbidden characters. Returns the element names in document order.
    fn check_xml(s: &str) -> Vec<String> {
        let mut stack: Vec<String> = vec![];
        let mut names = vec![];
        let mut rest = s;
        let check_text = |t: &str| {
            assert!(!t.contains('<'), "raw < in {t:?}");
            let mut parts = t.split('&');
            parts.next();
            for p in parts {
                let ent = p.split(';').next().unwrap();
                assert!(p.contains(';'), "unterminated entity in {t:?}");
                let ok = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
                    || ent
                        .strip_prefix('#')
                        .is_some_and(|n| n.parse::<u32>().is_ok());
                assert!(ok, "unknown entity &{ent}; in {t:?}");
            }
            for c in t.chars() {
                assert!(
                    matches!(c, '\t' | '\n' | '\r') || (c as u32) >= 0x20,
                    "forbidden char {c:?}"
                );
            }
        };
        while let Some(i) = rest.find('<') {
            check_text(&rest[..i]);
            let end = rest[i..].find('>').expect("unclosed tag") + i;
            let tag = &rest[i + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().expect("close without open");
                assert_eq!(open, name.trim(), "misnested tags");
                continue;
            }
            let selfclose = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag
                .split_whitespace()
                .next()
                .expect("empty tag")
                .to_string();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad name {name}"
            );
            // Attributes: name="value" pairs, values checked as text.
            let mut attrs = tag[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs.find("=\"").expect("attribute without =\"");
                let an = &attrs[..eq];
                assert!(
                    an.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                    "bad attribute name {an:?}"
                );
                let v_end = attrs[eq + 2..].find('"').expect("unterminated value") + eq + 2;
                check_text(&attrs[eq + 2..v_end]);
                attrs = attrs[v_end + 1..].trim_start();
            }
            names.push(name.clone());
            if !selfclose {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        names
    }

    /// The `(x, y, width)` of every bar rectangle, in order.
    fn bar_rects(s: &str) -> Vec<(f64, f64, f64)> {
        let attr = |t: &str, a: &str| -> f64 {
            let k = format!(" {a}=\"");
            let i = t.find(&k).unwrap() + k.len();
            t[i..i + t[i..].find('"').unwrap()].parse().unwrap()
        };
        s.split("<g class=\"bar ")
            .skip(1)
            .map(|g| {
                let r = &g[g.find("<rect").unwrap()..];
                let r = &r[..r.find("/>").unwrap()];
                (attr(r, "x"), attr(r, "y"), attr(r, "width"))
            })
            .collect()
    }

    #[test]
    fn one_bar_is_well_formed_and_labelled() {
        let s = svg(
            &[bar(Lane::Shell, 0.0, 0.4, Outcome::Direct, "u0")],
            4,
            0.5,
            "one",
        );
        let names = check_xml(&s);
        assert_eq!(names.iter().filter(|n| *n == "title").count(), 1);
        assert!(s.contains(">u0</text>"), "label drawn");
        assert!(s.contains(">shell</text>") && s.contains(">slot 3</text>"));
        assert!(!s.contains(">slot 4</text>"));
        assert!(s.contains("run by the shell (1)") && s.contains("committed (0)"));
        // Under a second: the axis counts milliseconds.
        assert!(s.contains(">100 ms</text>"), "{s}");
    }

    #[test]
    fn bars_sit_in_their_lanes_and_times() {
        let bars = [
            bar(Lane::Slot(1), 0.5, 1.0, Outcome::Committed, "u1[0]"),
            bar(Lane::Shell, 1.0, 2.0, Outcome::Direct, "u2"),
            bar(Lane::Slot(0), 0.0, 0.5, Outcome::Discarded, "u3"),
        ];
        let s = svg(&bars, 2, 2.0, "lanes");
        check_xml(&s);
        let lane_h = lane_height(3);
        let plot_w = WIDTH - LEFT - RIGHT;
        let pad = (lane_h * 0.15).clamp(1.0, 4.0);
        let r = bar_rects(&s);
        assert_eq!(r.len(), 3);
        let close = |a: f64, b: f64| (a - b).abs() < 0.02;
        // Slot 1 is the third lane; 0.5..1.0 of 2 s is the second quarter.
        assert!(close(r[0].0, LEFT + plot_w * 0.25), "{r:?}");
        assert!(close(r[0].1, TOP + 2.0 * lane_h + pad), "{r:?}");
        assert!(close(r[0].2, plot_w * 0.25 - 1.0), "{r:?}");
        assert!(close(r[1].0, LEFT + plot_w * 0.5) && close(r[1].1, TOP + pad));
        assert!(close(r[2].0, LEFT) && close(r[2].1, TOP + lane_h + pad));
        assert!(s.contains(r#"class="bar discarded""#) && s.contains("url(#hatch)"));
        // Three distinct fills.
        let (a, b, c) = (
            colours(Outcome::Committed).0,
            colours(Outcome::Discarded).0,
            colours(Outcome::Direct).0,
        );
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn tooltips_and_labels_are_escaped() {
        let mut b = bar(Lane::Slot(0), 0.0, 1.0, Outcome::Discarded, "<u&1>");
        b.text = "cat <in >out && echo \"it's\" \u{1}\u{fffd}\n".into();
        b.why = Some("read \"a\" & 'b' <changed>".into());
        let s = svg(&[b], 1, 1.0, "t <&\"'>");
        check_xml(&s);
        assert!(
            s.contains("cat &lt;in &gt;out &amp;&amp; echo &quot;it&apos;s&quot; \\x01\u{fffd}")
        );
        assert!(s.contains("why: read &quot;a&quot; &amp; &apos;b&apos; &lt;changed&gt;"));
        assert!(s.contains("&lt;u&amp;1&gt;"));
        assert!(s.contains("t &lt;&amp;&quot;&apos;&gt;"));
        assert!(s.contains("0.0 ms – 1.000 s (1.000 s)"), "{s}");
    }

    #[test]
    fn many_bars_are_thin_and_unlabelled() {
        let mut bars = vec![];
        for i in 0..2000 {
            let lane = if i % 9 == 0 {
                Lane::Shell
            } else {
                Lane::Slot(i % 8)
            };
            let t = i as f64 * 0.005;
            let outcome = [Outcome::Committed, Outcome::Discarded, Outcome::Direct][i % 3];
            bars.push(bar(lane, t, t + 0.004, outcome, &format!("u{i}")));
        }
        let s = svg(&bars, 8, 10.0, "many");
        let names = check_xml(&s);
        assert_eq!(names.iter().filter(|n| *n == "title").count(), 2000);
        let r = bar_rects(&s);
        assert_eq!(r.len(), 2000);
        assert!(r.iter().all(|&(_, _, w)| (1.0..2.0).contains(&w)), "thin");
        assert!(!s.contains(">u1</text>"), "no label in a thin bar");
        // Over a second: the axis counts seconds.
        assert!(
            s.contains(">2 s</text>") && !s.contains(" ms</text>"),
            "{s}"
        );
    }

    #[test]
    fn odd_input_still_draws() {
        let bars = [
            bar(Lane::Slot(5), f64::NAN, 3.0, Outcome::Committed, "nan"),
            bar(Lane::Shell, 2.0, 1.0, Outcome::Direct, "backwards"),
        ];
        let s = svg(&bars, 0, 0.0, "");
        check_xml(&s);
        // Slot 5 gets its lanes; the axis spans the latest end.
        assert!(s.contains(">slot 5</text>"));
        assert!(bar_rects(&s).iter().all(|&(x, _, w)| x >= LEFT && w >= 1.0));
        let long = "x".repeat(10 * MAX_TEXT);
        let mut b = bar(Lane::Shell, 0.0, 1.0, Outcome::Direct, "u");
        b.text = long;
        assert!(svg(&[b], 1, 1.0, "").len() < 3 * MAX_TEXT + 5000);
    }

    #[test]
    fn ticks_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(tick_step(1.0, 10.0), 0.1));
        assert!(close(tick_step(0.4, 10.0), 0.05));
        assert!(close(tick_step(12.0, 10.0), 1.0));
        assert!(close(tick_step(40.0, 10.0), 5.0));
        assert!(close(tick_step(0.003, 10.0), 0.0002));
        assert_eq!(fmt_tick(0.25, 0.05, 0.35), "250 ms");
        assert_eq!(fmt_tick(0.0125, 0.0005, 0.02), "12.5 ms");
        assert_eq!(fmt_tick(0.0006, 0.0002, 0.003), "0.6 ms");
        assert_eq!(fmt_tick(1.5, 0.5, 4.0), "1.5 s");
        assert_eq!(fmt_tick(7.0, 1.0, 12.0), "7 s");
        assert_eq!(fmt_tick(0.0, 0.2, 1.5), "0.0 s");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_secs(2.5), "2.500 s");
    }
}
