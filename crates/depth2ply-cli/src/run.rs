//! The default job: plans the inputs, runs the library pipeline on each image, prints what it did.

use std::path::Path;

use anyhow::{bail, Context, Result};
use depth2ply_pipeline::geometry::filter::{DropReason, DropReport};
use depth2ply_pipeline::{Conversion, DepthSource, LazyDepthPro, OutputOptions, OutputSet, Pipeline};

use crate::config::RunConfig;
use crate::inputs::{self, DepthInput, Job, PlanRequest};
use crate::summary::{format_duration, format_peak_memory, Reporter, RunStatus, Verbosity};

/// Runs the default job over every input. Per-image failures are reported and make the status
/// [`RunStatus::SomeFailed`]; only usage errors abort the run.
pub fn run(config: &RunConfig) -> Result<RunStatus> {
    configure_threads(config.threads)?;
    let items = inputs::plan(&PlanRequest {
        inputs: &config.inputs,
        output: config.output.as_deref(),
        depth: config.depth.as_deref(),
    })?;
    let reporter = Reporter::new(config.verbosity, items.len());
    let pipeline = Pipeline::new(config.convert)?;
    let mut network = crate::model::lazy_network(config.network.clone(), config.device, &reporter);
    let mut failed = 0usize;
    let total = items.len();
    for item in items {
        reporter.start(&item.path);
        let result = item
            .job
            .and_then(|job| process(&job, &pipeline, &config.outputs, &mut network, &reporter));
        if let Err(err) = result {
            reporter.error(&err);
            failed += 1;
        }
        reporter.advance();
    }
    reporter.finish();
    if total > 1 {
        reporter.info(&format!(
            "depth2ply: {} of {total} images converted, {failed} failed",
            total - failed
        ));
    }
    Ok(if failed == 0 {
        RunStatus::AllSucceeded
    } else {
        RunStatus::SomeFailed
    })
}

/// Sets one thread count for everything (geometry on rayon; the network's gemm, convolutions and
/// element-wise ops: see `depth2ply_pipeline::model::runtime`) before any pool starts. Default:
/// `$RAYON_NUM_THREADS` if set, else all physical cores.
fn configure_threads(threads: Option<usize>) -> Result<()> {
    let threads = threads.unwrap_or_else(depth2ply_pipeline::model::runtime::default_threads);
    depth2ply_pipeline::model::runtime::set_threads(threads).context("could not set the thread count")?;
    Ok(())
}

fn process(
    job: &Job,
    pipeline: &Pipeline,
    outputs: &OutputOptions,
    network: &mut LazyDepthPro<'_>,
    reporter: &Reporter,
) -> Result<()> {
    let image = &job.image;
    let input = pipeline.open_photo(image)?;
    for warning in input.warnings() {
        reporter.warning(image, &warning.to_string());
    }
    let depth = match &job.depth {
        DepthInput::File(path) => DepthSource::File(path),
        DepthInput::NotFound { searched } => bail!(
            "no depth map for this image in the --depth folder (looked for {}): {}",
            searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            image.display()
        ),
        DepthInput::Model => DepthSource::Network(network),
    };
    let mut conversion = pipeline.convert(&input, depth)?;
    for warning in conversion.warnings() {
        reporter.warning(image, &warning.to_string());
    }
    let files = OutputSet::new(job.output_ply.clone(), outputs);
    let inputs: Vec<&Path> = match &job.depth {
        DepthInput::File(path) => vec![image.as_path(), path.as_path()],
        _ => vec![image.as_path()],
    };
    files.prepare(&inputs)?;
    files.write(&conversion, image)?;
    conversion.finish_timing();
    print_summary(image, &conversion, &files, reporter);
    Ok(())
}

/// The summary line of one image (and, with `-v`, its timings).
fn print_summary(image: &Path, done: &Conversion, files: &OutputSet, reporter: &Reporter) {
    if reporter.verbosity() == Verbosity::Quiet {
        return;
    }
    let report = done.report();
    let focal = done.focal();
    let mut line = format!(
        "{}: {} points -> {} ({} dropped: {}), focal {:.1} px ({}), depth from {}",
        image.display(),
        done.cloud().len(),
        files.ply().display(),
        report.dropped(),
        drop_reasons(report),
        focal.focal_px(),
        focal.source(),
        done.depth_origin()
    );
    for extra in files.extras() {
        line.push_str(&format!(", {}", extra.display()));
    }
    reporter.info(&line);
    let timings = done.timings();
    let mut timing = format!("  image load {}", format_duration(timings.photo_load));
    if let Some(load) = timings.model_load {
        timing.push_str(&format!(", model load {}", format_duration(load)));
    }
    if let Some(inference) = timings.inference {
        timing.push_str(&format!(", inference {}", format_duration(inference)));
    }
    timing.push_str(&format!(
        ", total {}, {}",
        format_duration(timings.total),
        format_peak_memory()
    ));
    reporter.verbose(&timing);
}

/// `invalid-depth 12, flying-pixel 3` or `none`.
fn drop_reasons(report: &DropReport) -> String {
    let reasons: Vec<String> = DropReason::ALL
        .iter()
        .filter(|&&r| report.count(r) > 0)
        .map(|&r| format!("{r} {}", report.count(r)))
        .collect();
    if reasons.is_empty() {
        "none".to_string()
    } else {
        reasons.join(", ")
    }
}
