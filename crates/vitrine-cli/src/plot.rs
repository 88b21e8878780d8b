//! Precision and recall against the threshold, as a self-contained SVG (`calibrate --plot`).
//! Every text goes through [`crate::html::escape`].

use crate::html::escape;
use std::fmt::Write as _;
use vitrine_engine::calibrate::{Calibrated, CurvePoint};

const W: f64 = 720.0;
const H: f64 = 420.0;
/// Margins: left, right, top, bottom.
const L: f64 = 60.0;
const R: f64 = 20.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

/// The SVG text: precision (blue) and recall (orange) as step lines over the threshold, the
/// chosen thresholds as dashed verticals.
pub fn precision_recall(title: &str, curve: &[CurvePoint], chosen: &[Calibrated]) -> String {
    let (lo, hi) = curve.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.threshold), hi.max(p.threshold))
    });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    let x = |t: f64| L + (t - lo) / (hi - lo) * (W - L - R);
    let y = |v: f64| T + (1.0 - v) * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"12\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{L}\" y=\"22\" font-size=\"14\">{}</text>",
        escape(title)
    );
    // Axes and grid.
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = write!(
            s,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>",
            W - R,
            L - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for i in 0..=5 {
        let t = lo + (hi - lo) * i as f64 / 5.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.3}</text>",
            x(t),
            H - B + 18.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">threshold (a sweep returns rows at or past it)</text>\
         <line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{}\" stroke=\"#444\"/><line x1=\"{L}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#444\"/>",
        (L + W - R) / 2.0,
        H - 12.0,
        H - B,
        W - R,
        H - B,
        H - B
    );
    for (name, colour, get) in [
        (
            "precision",
            "#1f6fd1",
            (|p: &CurvePoint| p.precision) as fn(&CurvePoint) -> f64,
        ),
        ("recall", "#e07b00", |p: &CurvePoint| p.recall),
    ] {
        let points: Vec<String> = curve
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.threshold), y(get(p))))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
            points.join(" ")
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#1f6fd1\">precision</text><text x=\"{}\" y=\"{}\" fill=\"#e07b00\">recall</text>",
        W - R - 140.0,
        T + 14.0,
        W - R - 70.0,
        T + 14.0
    );
    for c in chosen {
        if let Some(t) = c.threshold {
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{:.1}\" y=\"{}\" fill=\"#555\" transform=\"rotate(-90 {:.1} {})\">precision ≥ {}: {t:.4}</text>",
                H - B,
                x(t) - 4.0,
                T + 150.0,
                x(t) - 4.0,
                T + 150.0,
                c.target,
                x = x(t)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
