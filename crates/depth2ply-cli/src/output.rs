//! Writing the results: PLY header comments, output folders, and refusing to overwrite inputs.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use depth2ply_geometry::atomic::write_atomically;
use depth2ply_geometry::filter::DropReport;
use depth2ply_geometry::ply::{
    focal_comment, intrinsics_comment, write_ply_file, PlyEncoding, PlyWriteOptions,
};
use depth2ply_geometry::preview::inverse_depth_preview;
use depth2ply_geometry::{DepthMap, FocalLength, Frame, Intrinsics, PointCloud};
use image::codecs::png::PngEncoder;

use crate::inputs::normalise;

/// The provenance recorded in the PLY header comments.
pub struct PlyHeader<'a> {
    /// The photo the colours come from.
    pub source: &'a Path,
    /// The camera used for back-projection (OpenCV convention, pixels).
    pub intrinsics: &'a Intrinsics,
    /// The focal length and where it came from.
    pub focal: FocalLength,
    /// `depth-pro` or the depth file.
    pub depth_from: &'a str,
    /// Frame of the points (the library writes its own `frame=… units=metres` line too).
    pub frame: Frame,
    /// What the filters did.
    pub report: &'a DropReport,
}

impl PlyHeader<'_> {
    /// One `key=value …` line each; the PLY writer sanitises them to single ASCII lines.
    pub fn comments(&self) -> Vec<String> {
        vec![
            format!("generator=depth2ply {}", env!("CARGO_PKG_VERSION")),
            format!("source_image={}", self.source.display()),
            format!("depth_source={}", self.depth_from),
            intrinsics_comment(self.intrinsics),
            focal_comment(&self.focal),
            format!(
                "camera=pinhole pixel_centres=integer depth_type=z frame={} (opencv: +X right +Y down +Z forward; \
                 opengl: +X right +Y up -Z forward)",
                self.frame.as_str()
            ),
            format!("points {}", self.report),
        ]
    }
}

/// Writes the cloud atomically (a temporary file in the same folder, then a rename).
pub fn write_cloud(path: &Path, cloud: &PointCloud, header: &PlyHeader<'_>, ascii: bool) -> Result<()> {
    let options = PlyWriteOptions {
        encoding: if ascii {
            PlyEncoding::Ascii
        } else {
            PlyEncoding::BinaryLittleEndian
        },
        comments: header.comments(),
    };
    write_ply_file(path, cloud, &options)?;
    Ok(())
}

/// Creates the folder of `path` when it does not exist (`-o` folders mirror the input tree).
pub fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => std::fs::create_dir_all(parent)
            .map_err(|err| {
                anyhow!(
                    "cannot create the output folder ({err}); check -o and its permissions: {}",
                    parent.display()
                )
            }),
        _ => Ok(()),
    }
}

/// Fails when `output` is one of the inputs (e.g. `--save-depth` next to a `--depth photo.npz`).
pub fn refuse_overwriting_inputs(output: &Path, inputs: &[&Path]) -> Result<()> {
    let target = normalise(output);
    for input in inputs {
        if normalise(input) == target {
            bail!(
                "the output would overwrite an input file; pass -o to write somewhere else: {}",
                output.display()
            );
        }
    }
    Ok(())
}

/// Writes the turbo-coloured inverse-depth preview (Apple's normalisation) as a PNG, atomically.
pub fn write_preview(path: &Path, depth: &DepthMap) -> Result<()> {
    let preview = inverse_depth_preview(depth);
    write_atomically(path, |w| {
        preview
            .write_with_encoder(PngEncoder::new(w))
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}
