//! SVG plots: the failover-time CDF per configuration, and VIPs per node.

use std::path::Path;

use plotters::prelude::*;

use crate::SimError;
use crate::scenario::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

fn plot_error(path: &Path, error: impl std::fmt::Display) -> SimError {
    SimError::Plot {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// Empirical CDF of failover times (log time axis), one line per configuration.
pub fn failover_cdf(report: &Report, path: &Path) -> Result<(), SimError> {
    let series: Vec<(String, Vec<f64>)> = report
        .configs
        .iter()
        .map(|c| {
            let mut samples: Vec<f64> = c
                .trials
                .iter()
                .flat_map(|t| t.failover.iter().copied())
                .filter(|x| x.is_finite())
                .map(|x| x.max(1e-3))
                .collect();
            samples.sort_by(f64::total_cmp);
            (format!("{} ({}% loss)", c.name, c.loss * 100.0), samples)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let max = series
        .iter()
        .filter_map(|(_, s)| s.last().copied())
        .fold(1.0, f64::max)
        * 1.5;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let p = &report.params;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: time to new owner, {} nodes, seed {}",
                p.scenario.name(),
                p.nodes,
                p.seed
            ),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.01f64..max).log_scale(), 0f64..1f64)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("seconds (log scale)")
        .y_desc("fraction of VIPs")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (index, (label, samples)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let n = samples.len() as f64;
        let points: Vec<(f64, f64)> = samples
            .iter()
            .enumerate()
            .flat_map(|(k, &x)| [(x, k as f64 / n), (x, (k + 1) as f64 / n)])
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// VIPs per node with every node up, nodes sorted from most to fewest, per configuration.
pub fn vips_per_node(report: &Report, path: &Path) -> Result<(), SimError> {
    let mut series: Vec<(String, Vec<usize>)> = Vec::new();
    for c in &report.configs {
        let mut load = c.vips_per_node.clone();
        load.sort_unstable_by(|a, b| b.cmp(a));
        // Gossip presets share one placement: show it once.
        if !series.iter().any(|(_, s)| *s == load) {
            series.push((c.name.clone(), load));
        }
    }
    let nodes = report.params.nodes;
    let max = series
        .iter()
        .filter_map(|(_, s)| s.first().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "VIPs per node: {} VIPs on {} nodes",
                report.params.vips, nodes
            ),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0usize..nodes, (1usize..max + 1).log_scale())
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("nodes, most loaded first")
        .y_desc("VIPs (log scale; empty nodes not drawn)")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (index, (label, load)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<(usize, usize)> = load
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k, *v))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}
