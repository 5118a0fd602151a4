//! `depth2ply info`: what is known about each image without decoding pixels or running a model.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use depth2ply_pipeline::geometry::photo::{inspect_photo, PhotoInfo};

use crate::args::InfoArgs;
use crate::inputs::discover;
use crate::summary::{error_chain, RunStatus};

/// The JSON record of one image (`--json`), one object per line.
#[derive(Debug, serde::Serialize)]
struct InfoRecord<'a> {
    path: String,
    width: u32,
    height: u32,
    orientation: u16,
    focal_px: Option<f64>,
    focal_source: Option<&'static str>,
    warnings: &'a [String],
}

impl<'a> InfoRecord<'a> {
    fn new(path: &Path, info: &'a PhotoInfo) -> Self {
        Self {
            path: path.display().to_string(),
            width: info.size.width,
            height: info.size.height,
            orientation: info.orientation.as_u16(),
            focal_px: info.exif_focal.map(|f| f.focal_px()),
            focal_source: info.exif_focal.map(|f| f.source().as_str()),
            warnings: &info.warnings,
        }
    }
}

/// Runs `depth2ply info`. Images that cannot be read are reported on stderr and make the exit status 1.
pub fn run(args: &InfoArgs) -> Result<RunStatus> {
    let mut status = RunStatus::AllSucceeded;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (_, images) in discover(&args.inputs) {
        let images = match images {
            Ok(images) => images,
            Err(err) => {
                eprintln!("depth2ply: error: {}", error_chain(&err));
                status = RunStatus::SomeFailed;
                continue;
            }
        };
        for image in images {
            match inspect_photo(&image) {
                Ok(info) => {
                    let line = if args.json {
                        serde_json::to_string(&InfoRecord::new(&image, &info))
                            .context("cannot format the JSON record")?
                    } else {
                        plain_line(&image, &info)
                    };
                    match writeln!(out, "{line}") {
                        Ok(()) => {}
                        // The reader stopped (`depth2ply info … | head`): not an error (as in ripgrep).
                        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(status),
                        Err(err) => return Err(anyhow::Error::new(err).context("cannot write to stdout")),
                    }
                }
                Err(err) => {
                    let err = anyhow::Error::new(err).context("cannot inspect the image");
                    eprintln!("depth2ply: error: {}", error_chain(&err));
                    status = RunStatus::SomeFailed;
                }
            }
        }
    }
    Ok(status)
}

/// `photo.jpg: 3024×4032, orientation 6 (…), focal 3264.1 px (exif-35mm), Apple iPhone 12; warnings: …`
fn plain_line(path: &Path, info: &PhotoInfo) -> String {
    let mut line = format!(
        "{}: {}, {:?}, orientation {}",
        path.display(),
        info.size,
        info.format,
        info.orientation
    );
    match info.exif_focal {
        Some(f) => line.push_str(&format!(
            ", focal {:.1} px ({}, horizontal FOV {:.1}°)",
            f.focal_px(),
            f.source(),
            depth2ply_pipeline::geometry::camera::horizontal_fov_deg(info.size, f.focal_px())
        )),
        None => line.push_str(", focal unknown (give --focal-px, or the network predicts it)"),
    }
    if let Some(camera) = info.exif.camera_name() {
        line.push_str(&format!(", {camera}"));
    }
    if !info.warnings.is_empty() {
        line.push_str(&format!("; warnings: {}", info.warnings.join("; ")));
    }
    line
}
