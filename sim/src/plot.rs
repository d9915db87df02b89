//! The latency-percentile plot: one line per operation, latency (log
//! scale) against the percentile, spread so the tail gets the room
//! (50%, 90%, 99%, 99.9%, ... equally spaced), as a PNG. The last point of
//! each line is the maximum.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Report;

/// The quantiles the report keeps per operation.
pub const QUANTILES: [f64; 10] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0];

/// Where the font for the plot's text is looked for (Debian's
/// fonts-dejavu-core); `ops/lib/setup.sh` installs it when missing.
const FONT_PATHS: [&str; 2] = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

/// 0.5 -> 1, 0.9 -> 2, 0.99 -> 3, ...: equal room for each nine.
fn nines(quantile: f64) -> f64 {
    -(1.0 - quantile.min(0.999_99)).log10() + (0.5f64).log10() + 1.0
}

fn register_font() -> anyhow::Result<()> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow::anyhow!("no font for the plot's text: install fonts-dejavu-core (looked in {})", FONT_PATHS.join(", ")))?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| anyhow::anyhow!("{path} is not a font"))?;
    Ok(())
}

/// Draws `report`'s latency percentiles to a PNG at `path`.
pub fn latency_png(report: &Report, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 750)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_us = report.latency.iter().flat_map(|l| l.percentiles.iter().map(|(_, ns)| *ns)).max().unwrap_or(1) as f64 / 1000.0;
    let min_us = report.latency.iter().flat_map(|l| l.percentiles.iter().map(|(_, ns)| *ns)).min().unwrap_or(1).max(1) as f64 / 1000.0;
    let x_max = nines(0.999_99) + 0.3;
    let what = if report.target.starts_with("tcp") { "round-trip" } else { "apply" };
    let title =
        format!("{}: {what} latency by percentile ({} bets, seed {}, {})", report.scenario, report.bets, report.seed, report.target);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.8f64..x_max, (min_us * 0.8..max_us * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("microseconds")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let quantile = 1.0 - 0.5 * 10f64.powf(-(x - 1.0));
            let text = format!("{:.4}", quantile * 100.0);
            format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
        })
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (at, latency) in report.latency.iter().enumerate() {
        let color = Palette99::pick(at).to_rgba();
        let points: Vec<(f64, f64)> =
            latency.percentiles.iter().map(|(percent, ns)| (nines(percent / 100.0), (*ns).max(1) as f64 / 1000.0)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("{} ({})", latency.op, latency.count))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 15)).draw()?;
    root.present()?;
    Ok(())
}
