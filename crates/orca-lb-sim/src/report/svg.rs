//! SVG plots of a run, drawn with plotters' SVG backend (no C, no fonts).

use std::path::Path;

use plotters::prelude::*;

use crate::results::Results;

const SIZE: (u32, u32) = (960, 560);

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plotting failed: {e:?}")
}

/// A distinct colour per policy; orca-lb stands out and the limit is black.
fn colour(name: &str, i: usize) -> RGBColor {
    match name {
        "limit" => BLACK,
        "orca-lb" => RGBColor(214, 39, 40),
        _ => {
            const PALETTE: [RGBColor; 9] = [
                RGBColor(31, 119, 180),
                RGBColor(255, 127, 14),
                RGBColor(44, 160, 44),
                RGBColor(148, 103, 189),
                RGBColor(140, 86, 75),
                RGBColor(227, 119, 194),
                RGBColor(127, 127, 127),
                RGBColor(188, 189, 34),
                RGBColor(23, 190, 207),
            ];
            PALETTE[i % PALETTE.len()]
        }
    }
}

fn width(name: &str) -> u32 {
    if name == "orca-lb" || name == "limit" {
        3
    } else {
        2
    }
}

/// The latency CDF of all measured calls per policy (errors at the
/// deadline), latency on a log axis.
pub fn latency_cdf(results: &Results, path: &Path) -> Result<(), String> {
    let (lo, hi) = latency_range(results);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency CDF, all calls", results.scenario),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("fraction of calls at or below")
        .draw()
        .map_err(err)?;
    for (i, p) in results.policies.iter().enumerate() {
        let c = colour(&p.policy, i);
        let points = p.cdf.iter().map(|&[ms, q]| (ms.max(lo), q));
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(width(&p.policy))))
            .map_err(err)?
            .label(p.policy.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)
}

/// The tail: the fraction of calls slower than a latency, both axes log,
/// down to 1 in 10,000.
pub fn latency_tail(results: &Results, path: &Path) -> Result<(), String> {
    let (lo, hi) = latency_range(results);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency tail, all calls", results.scenario),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (1e-4..1.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("fraction of calls slower")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(err)?;
    for (i, p) in results.policies.iter().enumerate() {
        let c = colour(&p.policy, i);
        let points = p
            .cdf
            .iter()
            .filter(|&&[_, q]| q < 1.0)
            .map(|&[ms, q]| (ms.max(lo), (1.0 - q).max(1e-4)));
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(width(&p.policy))))
            .map_err(err)?
            .label(p.policy.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(err)
}

/// The watched backends' share of calls in each second, per policy, with
/// their share in proportion to service rate for reference.
pub fn watched_share(results: &Results, path: &Path) -> Result<(), String> {
    let seconds = results
        .policies
        .iter()
        .map(|p| p.watched_share.len())
        .max()
        .unwrap_or(0) as f64;
    let top = results
        .policies
        .iter()
        .flat_map(|p| p.watched_share.iter().flatten())
        .fold(0.05_f64, |a, &b| a.max(b))
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: share of calls to backends {:?}, per second",
                results.scenario, results.watched
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..top.min(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("share of calls sent")
        .draw()
        .map_err(err)?;
    // The rate-proportional share, stepping at the events.
    let [before, during, after] = results.optimal_share;
    let optimal: Vec<(f64, f64)> = match results.event_window_s {
        Some([a, b]) => vec![
            (0.0, before),
            (a, before),
            (a, during),
            (b, during),
            (b, after),
            (seconds, after),
        ],
        None => vec![(0.0, before), (seconds, before)],
    };
    let grey = RGBColor(160, 160, 160);
    chart
        .draw_series(LineSeries::new(optimal, grey.stroke_width(2)))
        .map_err(err)?
        .label("in proportion to service rate")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(3)));
    for (i, p) in results.policies.iter().enumerate() {
        let c = colour(&p.policy, i);
        let points: Vec<(f64, f64)> = p
            .watched_share
            .iter()
            .enumerate()
            .filter_map(|(s, v)| v.map(|v| (s as f64 + 0.5, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(width(&p.policy))))
            .map_err(err)?
            .label(p.policy.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// From the fastest median to the deadline, with room.
fn latency_range(results: &Results) -> (f64, f64) {
    let points = results.policies.iter().flat_map(|p| p.cdf.iter());
    let lo = points
        .clone()
        .map(|p| p[0])
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = points.map(|p| p[0]).fold(0.0_f64, f64::max);
    let lo = if lo.is_finite() { lo * 0.8 } else { 0.1 };
    (lo.max(0.01), (hi * 1.25).max(lo * 10.0))
}
