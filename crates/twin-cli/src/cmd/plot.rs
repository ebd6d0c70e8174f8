//! ROC and DET plots as self-contained SVG (hand-written: two kinds of line chart do not
//! need a plotting library). Text only; `eval` writes the files.

use std::fmt::Write as _;

use twin_core::evaluation::probit;

/// One curve: the ROC of one kind of negatives.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// Rates at ascending thresholds (`twin_core::evaluation::Roc`).
    pub far: Vec<f64>,
    pub frr: Vec<f64>,
    pub eer: f64,
    /// (FAR, FRR) at the model's calibrated operating points.
    pub operating_points: Vec<(f64, f64)>,
}

/// What both plots show.
#[derive(Debug, Clone)]
pub struct Plot {
    pub title: String,
    pub subtitle: String,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 668.0;
const LEFT: f64 = 84.0;
const TOP: f64 = 78.0;
const SIDE: f64 = 520.0;

/// Where an EER label goes relative to its dot.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Below and to the right, moved further down by this many pixels.
    BelowRight(f64),
    AboveLeft,
}

/// Maps a value on an axis to a pixel offset in 0..=SIDE.
struct Axis {
    lo: f64,
    hi: f64,
}

impl Axis {
    fn at(&self, v: f64) -> f64 {
        (v - self.lo) / (self.hi - self.lo) * SIDE
    }
}

/// The plot frame: axes, transforms and the SVG being written.
struct Canvas {
    svg: String,
    x: Axis,
    y: Axis,
}

impl Canvas {
    fn new(plot: &Plot, x: Axis, y: Axis) -> Self {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="#ffffff"/>
<title>{title}</title>
<text x="{cx}" y="30" text-anchor="middle" font-size="18" font-weight="bold" fill="#222">{title}</text>
<text x="{cx}" y="52" text-anchor="middle" font-size="12" fill="#555">{subtitle}</text>
<defs><clipPath id="plot-area"><rect x="{LEFT}" y="{TOP}" width="{SIDE}" height="{SIDE}"/></clipPath></defs>
"##,
            title = escape(&plot.title),
            subtitle = escape(&plot.subtitle),
            cx = LEFT + SIDE / 2.0,
        );
        Self { svg, x, y }
    }

    /// Pixel position of (x, y) in axis units.
    fn px(&self, x: f64, y: f64) -> (f64, f64) {
        (LEFT + self.x.at(x), TOP + SIDE - self.y.at(y))
    }

    /// Grid lines at `ticks` (axis units, label) on both axes, labelled where the labels
    /// do not crowd each other; the frame and the axis titles.
    fn grid(&mut self, ticks: &[(f64, String)], x_title: &str, y_title: &str) {
        let bottom = TOP + SIDE;
        let (mut last_x, mut last_y) = (f64::NEG_INFINITY, f64::INFINITY);
        for (v, label) in ticks {
            let (x, y) = self.px(*v, *v);
            let _ = writeln!(
                self.svg,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#e3e3e3"/><line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#e3e3e3"/>"##,
                right = LEFT + SIDE,
            );
            // Labels are about 40 px wide and 12 px high.
            if x - last_x >= 42.0 {
                last_x = x;
                let _ = writeln!(
                    self.svg,
                    r##"<text x="{x:.1}" y="{ty:.1}" text-anchor="middle" font-size="12" fill="#444">{label}</text>"##,
                    ty = bottom + 18.0,
                );
            }
            if last_y - y >= 16.0 {
                last_y = y;
                let _ = writeln!(
                    self.svg,
                    r##"<text x="{tx:.1}" y="{yt:.1}" text-anchor="end" font-size="12" fill="#444">{label}</text>"##,
                    tx = LEFT - 8.0,
                    yt = y + 4.0,
                );
            }
        }
        let _ = writeln!(
            self.svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{SIDE}" height="{SIDE}" fill="none" stroke="#333"/>
<text x="{cx}" y="{xt}" text-anchor="middle" font-size="14" fill="#222">{x_title}</text>
<text x="22" y="{cy}" text-anchor="middle" font-size="14" fill="#222" transform="rotate(-90 22 {cy})">{y_title}</text>"##,
            cx = LEFT + SIDE / 2.0,
            cy = TOP + SIDE / 2.0,
            xt = bottom + 44.0,
        );
    }

    /// A dashed reference line between two points in axis units.
    fn reference(&mut self, from: (f64, f64), to: (f64, f64)) {
        let (x1, y1) = self.px(from.0, from.1);
        let (x2, y2) = self.px(to.0, to.1);
        let _ = writeln!(
            self.svg,
            r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#999" stroke-dasharray="5 4" clip-path="url(#plot-area)"/>"##
        );
    }

    /// A curve through `points` (axis units), thinned to one point per half pixel so a
    /// million-pair ROC stays a small file.
    fn curve(&mut self, points: impl Iterator<Item = (f64, f64)>, color: &str) {
        let mut kept: Vec<(f64, f64)> = Vec::new();
        let mut pending = None;
        for (x, y) in points {
            let p = self.px(x, y);
            match kept.last() {
                Some(last) if (p.0 - last.0).abs() < 0.5 && (p.1 - last.1).abs() < 0.5 => {
                    pending = Some(p);
                }
                _ => {
                    kept.push(p);
                    pending = None;
                }
            }
        }
        kept.extend(pending);
        let mut path = String::new();
        for (i, (x, y)) in kept.iter().enumerate() {
            let _ = write!(path, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
        }
        let _ = writeln!(
            self.svg,
            r##"<path d="{path}" fill="none" stroke="{color}" stroke-width="2.2" stroke-linejoin="round" clip-path="url(#plot-area)"/>"##
        );
    }

    /// A filled dot with a label beside it (the EER); `place` says where the label goes
    /// relative to the dot. Returns the label's baseline position.
    fn dot(&mut self, at: (f64, f64), color: &str, label: &str, place: Place) -> (f64, f64) {
        let (x, y) = self.px(at.0, at.1);
        let (x, y) = (x.clamp(LEFT, LEFT + SIDE), y.clamp(TOP, TOP + SIDE));
        let (tx, ty, anchor) = match place {
            Place::BelowRight(dy) => (x + 8.0, y + 18.0 + dy, "start"),
            Place::AboveLeft => (x - 8.0, y - 9.0, "end"),
        };
        let _ = writeln!(
            self.svg,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{color}" stroke="#fff" stroke-width="1.5"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" font-size="12" font-weight="bold" fill="{color}" stroke="#fff" stroke-width="3" paint-order="stroke">{label}</text>"##
        );
        (tx, ty)
    }

    /// Hollow squares (calibrated operating points).
    fn squares(&mut self, points: &[(f64, f64)], color: &str) {
        for &(vx, vy) in points {
            let (x, y) = self.px(vx, vy);
            if (LEFT..=LEFT + SIDE).contains(&x) && (TOP..=TOP + SIDE).contains(&y) {
                let _ = writeln!(
                    self.svg,
                    r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#fff" stroke="{color}" stroke-width="2"/>"##,
                    x - 4.5,
                    y - 4.5
                );
            }
        }
    }

    /// The legend box in a corner of the plot: one line per series, then the markers.
    fn legend(&mut self, series: &[Series], top: bool) {
        let has_points = series.iter().any(|s| !s.operating_points.is_empty());
        let rows = series.len() + 1 + usize::from(has_points);
        let height = 22.0 * rows as f64 + 10.0;
        let width = 330.0;
        let x = LEFT + SIDE - width - 10.0;
        let y = if top {
            TOP + 10.0
        } else {
            TOP + SIDE - height - 10.0
        };
        let _ = writeln!(
            self.svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{width}" height="{height:.1}" fill="#fff" fill-opacity="0.92" stroke="#bbb"/>"##
        );
        let mut row = y + 21.0;
        for s in series {
            let _ = writeln!(
                self.svg,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.2"/><text x="{:.1}" y="{row:.1}" font-size="12" fill="#222">{label}</text>"##,
                x + 10.0,
                row - 4.0,
                x + 36.0,
                row - 4.0,
                x + 44.0,
                color = s.color,
                label = escape(&s.label),
            );
            row += 22.0;
        }
        let color = series.first().map_or("#333", |s| s.color);
        let _ = writeln!(
            self.svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{color}"/><text x="{:.1}" y="{row:.1}" font-size="12" fill="#222">equal error rate (EER)</text>"##,
            x + 23.0,
            row - 4.0,
            x + 44.0,
        );
        if has_points {
            row += 22.0;
            let _ = writeln!(
                self.svg,
                r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#fff" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{row:.1}" font-size="12" fill="#222">the model's calibrated thresholds</text>"##,
                x + 18.5,
                row - 8.5,
                x + 44.0,
            );
        }
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

/// ROC: true-accept rate (1 − FRR) against FAR, linear axes, chance diagonal.
pub fn roc_svg(plot: &Plot) -> String {
    let mut c = Canvas::new(plot, Axis { lo: 0.0, hi: 1.0 }, Axis { lo: 0.0, hi: 1.0 });
    let ticks: Vec<(f64, String)> = (0..=5)
        .map(|i| {
            let v = f64::from(i) / 5.0;
            (v, percent(v))
        })
        .collect();
    c.grid(
        &ticks,
        "false accept rate (FAR): forgeries accepted",
        "true accept rate (1 − FRR): genuine accepted",
    );
    c.reference((0.0, 0.0), (1.0, 1.0));
    for s in &plot.series {
        c.curve(
            s.far.iter().zip(&s.frr).map(|(&a, &r)| (a, 1.0 - r)),
            s.color,
        );
    }
    for s in &plot.series {
        let points: Vec<(f64, f64)> = s
            .operating_points
            .iter()
            .map(|&(a, r)| (a, 1.0 - r))
            .collect();
        c.squares(&points, s.color);
    }
    // Labels below and right of their dots, under the curve where ROC plots are empty; a
    // label that would sit on the previous one moves below it.
    let mut previous: Option<f64> = None;
    for s in &plot.series {
        let (_, y) = c.px(s.eer, 1.0 - s.eer);
        let dy = match previous {
            Some(p) if (y + 18.0 - p).abs() < 16.0 => p + 16.0 - (y + 18.0),
            _ => 0.0,
        };
        let (_, baseline) = c.dot(
            (s.eer, 1.0 - s.eer),
            s.color,
            &format!("EER {}", percent(s.eer)),
            Place::BelowRight(dy),
        );
        previous = Some(baseline);
    }
    c.legend(&plot.series, false);
    c.finish()
}

/// DET: FRR against FAR on normal-deviate (probit) axes, where a model with normally
/// distributed scores draws a straight line; the diagonal FAR = FRR crosses each curve at
/// its EER.
pub fn det_svg(plot: &Plot, smallest_rate: f64) -> String {
    let (lo, hi) = det_range(smallest_rate);
    let axis = || Axis {
        lo: probit(lo),
        hi: probit(hi),
    };
    let mut c = Canvas::new(plot, axis(), axis());
    let ticks: Vec<(f64, String)> = DET_TICKS
        .iter()
        .filter(|&&t| t >= lo && t <= hi)
        .map(|&t| (probit(t), percent(t)))
        .collect();
    c.grid(
        &ticks,
        "false accept rate (FAR, normal-deviate scale)",
        "false reject rate (FRR, normal-deviate scale)",
    );
    c.reference((probit(lo), probit(lo)), (probit(hi), probit(hi)));
    // Rates of 0 or 1 are infinitely far out: draw them just past the frame (clipped), so
    // the curve leaves the plot where the data runs out.
    let z = |v: f64| probit(v.clamp(lo / 4.0, 1.0 - (1.0 - hi) / 4.0));
    for s in &plot.series {
        c.curve(
            s.far.iter().zip(&s.frr).map(|(&a, &r)| (z(a), z(r))),
            s.color,
        );
    }
    for s in &plot.series {
        let points: Vec<(f64, f64)> = s
            .operating_points
            .iter()
            .map(|&(a, r)| (z(a), z(r)))
            .collect();
        c.squares(&points, s.color);
    }
    for (i, s) in plot.series.iter().enumerate() {
        let e = s.eer.clamp(lo, hi);
        // On the diagonal: one label below it, the other above, so they never meet.
        let place = if i % 2 == 0 {
            Place::BelowRight(0.0)
        } else {
            Place::AboveLeft
        };
        c.dot(
            (probit(e), probit(e)),
            s.color,
            &format!("EER {}", percent(s.eer)),
            place,
        );
    }
    c.legend(&plot.series, true);
    c.finish()
}

/// Tick values of DET axes.
const DET_TICKS: [f64; 17] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9,
    0.95, 0.99,
];

/// The DET axis range: from the tick just under the finest rate the data can show
/// (1 / pairs) up to 95 %, at least 0.01 %..95 % wide and never finer than 0.01 %.
fn det_range(smallest_rate: f64) -> (f64, f64) {
    let lo = DET_TICKS
        .iter()
        .copied()
        .rev()
        .find(|&t| t <= smallest_rate)
        .unwrap_or(DET_TICKS[0])
        .min(0.05);
    (lo, 0.95)
}

/// 0.125 → "12.5 %", 0.001 → "0.1 %", 0.5 → "50 %".
pub fn percent(rate: f64) -> String {
    let text = format!("{:.2}", rate * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} %")
}

/// Escapes text for SVG element content and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot() -> Plot {
        Plot {
            title: "DET — model <m> & data".to_owned(),
            subtitle: "sub".to_owned(),
            series: vec![Series {
                label: "skilled".to_owned(),
                color: "#d62728",
                far: vec![1.0, 0.5, 0.0, 0.0],
                frr: vec![0.0, 0.0, 0.5, 1.0],
                eer: 0.25,
                operating_points: vec![(0.1, 0.3)],
            }],
        }
    }

    #[test]
    fn svg_has_the_parts_a_reader_needs_and_escapes_text() {
        for svg in [roc_svg(&plot()), det_svg(&plot(), 0.01)] {
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
                "{svg}"
            );
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("DET — model &lt;m&gt; &amp; data"));
            assert!(svg.contains("<path d=\"M"));
            assert!(svg.contains("EER 25 %"));
            assert!(svg.contains("skilled"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn roc_maps_rates_to_the_frame() {
        let svg = roc_svg(&plot());
        // FAR 1, TPR 1 is the top-right corner; FAR 0, TPR 0 the bottom-left one.
        let right = LEFT + SIDE;
        assert!(svg.contains(&format!("M{right:.1},{TOP:.1}")), "{svg}");
        assert!(
            svg.contains(&format!("L{LEFT:.1},{:.1}", TOP + SIDE)),
            "{svg}"
        );
    }

    #[test]
    fn curves_are_thinned_to_the_pixels_they_cover() {
        let n = 100_000;
        let far: Vec<f64> = (0..=n).map(|i| 1.0 - f64::from(i) / f64::from(n)).collect();
        let frr: Vec<f64> = (0..=n).map(|i| f64::from(i) / f64::from(n)).collect();
        let mut p = plot();
        p.series[0].far = far;
        p.series[0].frr = frr;
        let svg = roc_svg(&p);
        assert!(svg.len() < 60_000, "{} bytes", svg.len());
    }

    #[test]
    fn det_range_follows_the_data_resolution() {
        assert_eq!(det_range(1.0 / 30.0), (0.02, 0.95));
        assert_eq!(det_range(1.0 / 449_280.0), (0.0001, 0.95));
        assert_eq!(det_range(0.5), (0.05, 0.95));
    }

    #[test]
    fn percent_is_short() {
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(percent(0.001), "0.1 %");
        assert_eq!(percent(0.5), "50 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.15688), "15.69 %");
    }
}
