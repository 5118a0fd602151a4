//! The default job: for each image, photo → depth (file or network) → intrinsics → cloud → PLY.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use depth2ply_geometry::backproject::{cloud_from_depth, CloudConfig};
use depth2ply_geometry::depth_io::{load_depth, write_depth_npz, DepthLoadOptions};
use depth2ply_geometry::exif::{focal_from_exif, NO_EXIF_WARNING};
use depth2ply_geometry::filter::DropReport;
use depth2ply_geometry::photo::{load_photo, Photo};
use depth2ply_geometry::{DepthMap, FocalLength, Intrinsics, PointCloud};

use crate::config::RunConfig;
use crate::inputs::{self, DepthInput, Job, PlanRequest};
use crate::model::LazyModel;
use crate::output;
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
    let mut model = LazyModel::new(config.model.clone());
    let mut failed = 0usize;
    let total = items.len();
    for item in items {
        reporter.start(&item.path);
        let result = item
            .job
            .and_then(|job| process(&job, config, &mut model, &reporter));
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
/// element-wise ops: see `depth2ply_model::runtime`) before any pool starts. Default:
/// `$RAYON_NUM_THREADS` if set, else all physical cores.
fn configure_threads(threads: Option<usize>) -> Result<()> {
    let threads = threads.unwrap_or_else(depth2ply_model::runtime::default_threads);
    depth2ply_model::runtime::set_threads(threads).context("could not set the thread count")?;
    Ok(())
}

/// What was done for one image, for its summary line.
struct Done {
    points: usize,
    report: DropReport,
    focal: FocalLength,
    depth_from: String,
    output: PathBuf,
    extra_outputs: Vec<PathBuf>,
    load_time: Duration,
    model_load_time: Option<Duration>,
    inference_time: Option<Duration>,
    total_time: Duration,
}

fn process(job: &Job, config: &RunConfig, model: &mut LazyModel, reporter: &Reporter) -> Result<()> {
    let start = Instant::now();
    let image = &job.image;
    let photo = load_photo(image).context("cannot load the image")?;
    // With the camera given by the user, why EXIF gave no focal length does not matter, nor that
    // there is no EXIF at all (without it the pixels are used as stored, the usual case for PNG).
    let irrelevant = match config.camera {
        Some(_) => focal_from_exif(&photo.exif, photo.size).warnings,
        None => Vec::new(),
    };
    let leave_out =
        |w: &&String| irrelevant.contains(w) || config.camera.is_some() && w.starts_with(NO_EXIF_WARNING);
    for warning in photo.warnings.iter().filter(|w| !leave_out(w)) {
        reporter.warning(image, warning);
    }
    let load_time = start.elapsed();

    // Focal rules, in order: the user's flags, EXIF, then (network only) the FOV head.
    let known = match &config.camera {
        Some(camera) => Some((
            camera
                .intrinsics(photo.size)
                .with_context(|| format!("invalid camera for {}", image.display()))?,
            camera.focal(photo.size)?,
        )),
        None => match photo.exif_focal {
            Some(focal) => Some((
                Intrinsics::from_focal_px(photo.size, focal.focal_px())
                    .with_context(|| format!("unusable EXIF focal length in {}", image.display()))?,
                focal,
            )),
            None => None,
        },
    };

    let mut model_load_time = None;
    let mut inference_time = None;
    let (depth, intrinsics, focal, depth_from) = match &job.depth {
        DepthInput::File(path) => {
            let depth = read_depth(path, &photo, config)?;
            let Some((intrinsics, focal)) = known else {
                bail!(
                    "no focal length known: the image has no usable EXIF focal length, and with --depth no \
                     network runs to predict one; pass --focal-px F, --fov-deg DEG or --intrinsics \
                     FX,FY,CX,CY: {}",
                    image.display()
                );
            };
            (depth, intrinsics, focal, path.display().to_string())
        }
        DepthInput::NotFound { searched } => bail!(
            "no depth map for this image in the --depth folder (looked for {}): {}",
            searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            image.display()
        ),
        DepthInput::Model => {
            let (estimate, load) = model
                .estimate(&photo.image, known.map(|(_, focal)| focal), reporter)
                .with_context(|| {
                    format!(
                        "cannot estimate depth for {} with the network (to use a depth map instead, pass \
                         --depth PATH)",
                        image.display()
                    )
                })?;
            model_load_time = load;
            inference_time = Some(estimate.inference_time);
            if estimate.depth.size() != photo.size {
                bail!(
                    "internal error: the network returned a {} depth map for a {} image: {}",
                    estimate.depth.size(),
                    photo.size,
                    image.display()
                );
            }
            let (intrinsics, focal) = match known {
                Some(known) => known,
                None => (
                    Intrinsics::from_focal_px(photo.size, estimate.focal.focal_px()).with_context(|| {
                        format!(
                            "the network predicted an unusable focal length for {}",
                            image.display()
                        )
                    })?,
                    estimate.focal,
                ),
            };
            (estimate.depth, intrinsics, focal, "depth-pro".to_string())
        }
    };

    let cloud_config = CloudConfig {
        frame: config.frame,
        estimate_normals: config.estimate_normals,
        filter: config.filter,
        ..CloudConfig::default()
    };
    let (cloud, report) = cloud_from_depth(&depth, &intrinsics, Some(&photo.image), &cloud_config)
        .with_context(|| format!("cannot build the point cloud for {}", image.display()))?;
    if cloud.is_empty() {
        reporter.warning(
            image,
            &format!("every point was filtered out ({report}); the PLY is empty"),
        );
    }

    let header = output::PlyHeader {
        source: image,
        intrinsics: &intrinsics,
        focal,
        depth_from: &depth_from,
        frame: config.frame,
        report: &report,
    };
    let protected: Vec<&Path> = match &job.depth {
        DepthInput::File(path) => vec![image.as_path(), path.as_path()],
        _ => vec![image.as_path()],
    };
    output::ensure_parent(&job.output_ply)?;
    output::refuse_overwriting_inputs(&job.output_ply, &protected)?;
    let extra_outputs = if config.save_depth {
        let (npz, preview) = job.depth_outputs();
        output::refuse_overwriting_inputs(&npz, &protected)?;
        output::refuse_overwriting_inputs(&preview, &protected)?;
        vec![npz, preview]
    } else {
        Vec::new()
    };
    // Each file is written atomically; if a later one fails, the earlier ones of this image are removed
    // again, so that a failed image leaves no partial set of outputs.
    let mut written = Vec::new();
    if let Err(err) = write_outputs(job, &cloud, &header, &depth, &extra_outputs, config, &mut written) {
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        return Err(err.context(format!("cannot write the outputs for {}", image.display())));
    }

    let done = Done {
        points: cloud.len(),
        report,
        focal,
        depth_from,
        output: job.output_ply.clone(),
        extra_outputs,
        load_time,
        model_load_time,
        inference_time,
        total_time: start.elapsed(),
    };
    print_summary(image, &done, reporter);
    Ok(())
}

/// Writes the depth map and its preview (when `extras` holds their paths), then the PLY, recording in
/// `written` each file that is complete.
fn write_outputs(
    job: &Job,
    cloud: &PointCloud,
    header: &output::PlyHeader<'_>,
    depth: &DepthMap,
    extras: &[PathBuf],
    config: &RunConfig,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    if let [npz, preview] = extras {
        write_depth_npz(npz, depth, header.focal.focal_px())?;
        written.push(npz.clone());
        output::write_preview(preview, depth)?;
        written.push(preview.clone());
    }
    output::write_cloud(&job.output_ply, cloud, header, config.ascii)?;
    written.push(job.output_ply.clone());
    Ok(())
}

/// Loads a depth file and checks it against the photo.
fn read_depth(path: &Path, photo: &Photo, config: &RunConfig) -> Result<DepthMap> {
    let options = DepthLoadOptions {
        scale_units_per_m: config.depth_scale_units_per_m,
    };
    let depth = load_depth(path, &options).context("cannot read the depth map")?;
    if depth.size() != photo.size {
        let oriented = if photo.size != photo.stored_size {
            format!(
                " (after EXIF orientation {}; stored {})",
                photo.orientation, photo.stored_size
            )
        } else {
            String::new()
        };
        return Err(anyhow!(
            "the depth map is {} but the image is {}{}; the depth map must have the image's displayed size \
             and orientation: {}",
            depth.size(),
            photo.size,
            oriented,
            path.display()
        ));
    }
    if depth.valid_count() == 0 {
        return Err(anyhow!(
            "the depth map has no valid pixel (every value is 0, negative, NaN or infinite); check the file \
             and --depth-scale: {}",
            path.display()
        ));
    }
    Ok(depth)
}

fn print_summary(image: &Path, done: &Done, reporter: &Reporter) {
    if reporter.verbosity() == Verbosity::Quiet {
        return;
    }
    let dropped = done.report.dropped();
    let mut line = format!(
        "{}: {} points -> {} ({} dropped: {}), focal {:.1} px ({}), depth from {}",
        image.display(),
        done.points,
        done.output.display(),
        dropped,
        drop_reasons(&done.report),
        done.focal.focal_px(),
        done.focal.source(),
        done.depth_from
    );
    for extra in &done.extra_outputs {
        line.push_str(&format!(", {}", extra.display()));
    }
    reporter.info(&line);
    let mut timing = format!("  image load {}", format_duration(done.load_time));
    if let Some(load) = done.model_load_time {
        timing.push_str(&format!(", model load {}", format_duration(load)));
    }
    if let Some(inference) = done.inference_time {
        timing.push_str(&format!(", inference {}", format_duration(inference)));
    }
    timing.push_str(&format!(
        ", total {}, {}",
        format_duration(done.total_time),
        format_peak_memory()
    ));
    reporter.verbose(&timing);
}

/// `invalid-depth 12, flying-pixel 3` or `none`.
fn drop_reasons(report: &DropReport) -> String {
    let reasons: Vec<String> = depth2ply_geometry::filter::DropReason::ALL
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
