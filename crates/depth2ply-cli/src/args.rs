//! Command-line flags (clap derive). Only parsing and value checks live here; [`crate::config`] turns the
//! parsed flags into the library configuration structs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  # Depth Pro depth, focal length from EXIF or predicted -> photo.ply
  depth2ply photo.jpg
  # RGB-D frame: 16-bit depth PNG in millimetres, known focal length
  depth2ply frame.jpg --depth frame.depth.png --focal-px 525
  # a folder, mirrored under clouds/, with depth .npz and previews
  depth2ply photos/ -o clouds/ --save-depth
  # size, orientation and EXIF focal length of each image; no model
  depth2ply info --json photos/

Exit status: 0 all inputs succeeded; 1 some failed (the others are still
written); 2 usage error.";

/// One photo (or an RGB-D frame) in, a coloured metric point cloud (PLY) out.
#[derive(Debug, Parser)]
#[command(
    name = "depth2ply",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand; without one, the inputs are converted to PLY.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the default (convert) job.
    #[command(flatten)]
    pub convert: ConvertArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what is known about each image (size after EXIF orientation, orientation, EXIF focal
    /// length) without running any model.
    Info(InfoArgs),
}

/// Flags of `depth2ply info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON object per line with the keys path, width, height, orientation, focal_px,
    /// focal_source and warnings.
    #[arg(long)]
    pub json: bool,
    /// Images or folders (searched recursively, in sorted order).
    #[arg(required = true, value_name = "INPUTS")]
    pub inputs: Vec<PathBuf>,
}

/// Flags of the default job: images in, PLY files out.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Images or folders (searched recursively, in sorted order, for .jpg .jpeg .png .tif .tiff .webp
    /// .bmp files; names ending in `.depth.<ext>` are skipped). One PLY is written per image.
    #[arg(required = true, value_name = "INPUTS")]
    pub inputs: Vec<PathBuf>,

    /// Where to write: a .ply file when there is one input image, otherwise a folder that mirrors the
    /// input tree. Default: next to each image (photo.jpg -> photo.ply).
    #[arg(short, long, value_name = "PATH", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// Write the PLY as ASCII instead of binary little-endian.
    #[arg(long, help_heading = "Output")]
    pub ascii: bool,

    /// Coordinate frame of the written points and normals: opencv (+X right, +Y down, +Z forward) or
    /// opengl (+X right, +Y up, -Z forward).
    #[arg(long, value_enum, default_value_t = FrameArg::Opencv, help_heading = "Output")]
    pub frame: FrameArg,

    /// Do not estimate normals (smaller file; viewers then shade points flat).
    #[arg(long, help_heading = "Output")]
    pub no_normals: bool,

    /// Also write <stem>.npz (key `depth`: float32 metres at the image size, key `focallength_px`: the
    /// focal length used) and <stem>.depth.png (turbo-coloured inverse-depth preview) next to the PLY.
    #[arg(long, help_heading = "Output")]
    pub save_depth: bool,

    /// Depth map to use instead of the network. One input image: a file (.npz key `depth`, .npy,
    /// 16-bit .png, .pfm, .tiff) in the image's displayed orientation. Several inputs or a folder: a
    /// folder mirroring the input tree, searched for <stem>.depth.npz, <stem>.npz, <stem>.depth.npy,
    /// <stem>.npy, <stem>.depth.pfm, <stem>.depth.tiff, <stem>.depth.tif, <stem>.depth.png, and (only
    /// when it is not the image's own folder) <stem>.pfm, <stem>.tiff, <stem>.tif, <stem>.png; the first
    /// found is used.
    #[arg(long, value_name = "PATH", help_heading = "Depth")]
    pub depth: Option<PathBuf>,

    /// Units per metre of integer depth maps (16-bit PNG, integer .npy/.npz): 1000 for millimetres, 5000
    /// for TUM RGB-D. Float depth maps are always read as metres.
    #[arg(long, value_name = "UNITS_PER_METRE", default_value_t = 1000.0, value_parser = positive_f64,
          allow_negative_numbers = true, help_heading = "Depth")]
    pub depth_scale: f64,

    /// Camera intrinsics in pixels for the image as displayed (after EXIF orientation).
    #[arg(long, value_name = "FX,FY,CX,CY", value_parser = parse_intrinsics, help_heading = "Camera",
          allow_hyphen_values = true,
          conflicts_with_all = ["focal_px", "fov_deg"])]
    pub intrinsics: Option<UserIntrinsics>,

    /// Focal length in pixels (square pixels, principal point at the image centre).
    #[arg(long, value_name = "F", value_parser = positive_f64, help_heading = "Camera", allow_negative_numbers = true,
          conflicts_with = "fov_deg")]
    pub focal_px: Option<f64>,

    /// Horizontal field of view in degrees, edge to edge (principal point at the image centre).
    #[arg(long, value_name = "DEG", value_parser = parse_fov_deg, help_heading = "Camera",
          allow_negative_numbers = true)]
    pub fov_deg: Option<f64>,

    /// Keep every point with a valid depth: no flying-pixel filter, and points without a normal are kept
    /// (their normal points at the camera).
    #[arg(long, help_heading = "Filter",
          conflicts_with_all = ["min_depth", "max_depth", "max_view_angle", "voxel_size", "outliers"])]
    pub no_filter: bool,

    /// Flying-pixel threshold: drop a pixel when (max - min) over the valid depths of its 3x3
    /// neighbourhood exceeds R times its own depth (unitless; MoGe's rule).
    #[arg(long, value_name = "R", default_value_t = 0.04, value_parser = positive_f64,
          allow_negative_numbers = true, help_heading = "Filter")]
    pub edge_rtol: f64,

    /// Drop points nearer than this z-depth, in metres.
    #[arg(long, value_name = "M", value_parser = non_negative_f64, allow_negative_numbers = true,
          help_heading = "Filter")]
    pub min_depth: Option<f64>,

    /// Drop points farther than this z-depth, in metres (e.g. 10 to cut the sky of an outdoor photo).
    #[arg(long, value_name = "M", value_parser = positive_f64, allow_negative_numbers = true,
          help_heading = "Filter")]
    pub max_depth: Option<f64>,

    /// Drop points on surfaces seen more edge-on than this angle, in degrees (0 < DEG <= 90, e.g. 85):
    /// the angle between the normal and the ray back to the camera. Off by default.
    #[arg(long, value_name = "DEG", value_parser = parse_view_angle_deg, help_heading = "Filter")]
    pub max_view_angle: Option<f64>,

    /// Voxel down-sampling: average the points inside each cube of this edge length, in metres.
    #[arg(long, value_name = "M", value_parser = positive_f64, allow_negative_numbers = true,
          help_heading = "Filter")]
    pub voxel_size: Option<f64>,

    /// Statistical outlier removal after down-sampling (Open3D's rule): drop a point whose mean distance
    /// to its K nearest points exceeds the mean of all by STD_RATIO standard deviations. `--outliers`
    /// alone means K=20, STD_RATIO=2. Slow on full-resolution clouds: combine with --voxel-size.
    #[arg(long, value_name = "K,STD_RATIO", num_args = 0..=1, require_equals = true,
          default_missing_value = "20,2", value_parser = parse_outliers, help_heading = "Filter")]
    pub outliers: Option<OutlierArgs>,

    /// Depth Pro weights (depth_pro.pt or .safetensors). Default: $DEPTH2PLY_WEIGHTS, then the cache
    /// folder.
    #[arg(long, value_name = "PATH", help_heading = "Model")]
    pub weights: Option<PathBuf>,

    /// Device for the network. Default: cuda or metal when built with that feature, else cpu.
    #[arg(long, value_enum, help_heading = "Model")]
    pub device: Option<DeviceArg>,

    /// Worker threads for the network and the geometry. Default: $RAYON_NUM_THREADS, else all
    /// physical cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..), help_heading = "Model")]
    pub threads: Option<u16>,

    /// Network architecture matching the weights. Hidden: only the tests use `tiny`, the random-weights
    /// configuration of the model crate's parity fixtures.
    #[arg(long, value_enum, default_value_t = ModelPreset::Full, hide = true)]
    pub model_config: ModelPreset,

    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print load time, inference time and peak memory per image.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `--frame` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FrameArg {
    /// +X right, +Y down, +Z forward (OpenCV, ROS optical frame).
    Opencv,
    /// +X right, +Y up, -Z forward (OpenGL, Blender, most viewers).
    Opengl,
}

/// `--device` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
    /// An Apple GPU (needs a build with `--features metal`).
    Metal,
}

/// `--model-config` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelPreset {
    /// The released Depth Pro (three ViT-L/16 encoders).
    Full,
    /// The tiny test configuration (`DepthProConfig::tiny()`).
    Tiny,
}

/// The values of `--outliers=K,STD_RATIO`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierArgs {
    /// Neighbourhood size, the point itself included (at least 2).
    pub neighbors: usize,
    /// Threshold in standard deviations (> 0).
    pub std_ratio: f64,
}

/// The four values of `--intrinsics`, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserIntrinsics {
    /// Horizontal focal length in pixels.
    pub fx_px: f64,
    /// Vertical focal length in pixels.
    pub fy_px: f64,
    /// Principal point x in pixels.
    pub cx_px: f64,
    /// Principal point y in pixels.
    pub cy_px: f64,
}

fn parse_f64(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number"))
}

fn positive_f64(text: &str) -> Result<f64, String> {
    let value = parse_f64(text)?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("{value} must be finite and greater than 0"))
    }
}

fn non_negative_f64(text: &str) -> Result<f64, String> {
    let value = parse_f64(text)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("{value} must be finite and at least 0"))
    }
}

fn parse_fov_deg(text: &str) -> Result<f64, String> {
    let value = parse_f64(text)?;
    if value.is_finite() && value > 0.0 && value < 180.0 {
        Ok(value)
    } else {
        Err(format!("{value}° must be strictly between 0 and 180 degrees"))
    }
}

fn parse_view_angle_deg(text: &str) -> Result<f64, String> {
    let value = parse_f64(text)?;
    if value.is_finite() && value > 0.0 && value <= 90.0 {
        Ok(value)
    } else {
        Err(format!("{value}° must be greater than 0 and at most 90 degrees"))
    }
}

fn parse_outliers(text: &str) -> Result<OutlierArgs, String> {
    let (k, ratio) = text
        .split_once(',')
        .ok_or_else(|| format!("expected K,STD_RATIO (e.g. 20,2), got `{text}`"))?;
    let neighbors: usize = k
        .trim()
        .parse()
        .map_err(|_| format!("K: `{k}` is not a whole number of neighbours"))?;
    if neighbors < 2 {
        return Err(format!(
            "K: {neighbors} must be at least 2 (the point itself is one of them)"
        ));
    }
    let std_ratio = positive_f64(ratio).map_err(|e| format!("STD_RATIO: {e}"))?;
    Ok(OutlierArgs { neighbors, std_ratio })
}

fn parse_intrinsics(text: &str) -> Result<UserIntrinsics, String> {
    let parts: Vec<&str> = text.split(',').collect();
    let [fx, fy, cx, cy] = parts.as_slice() else {
        return Err(format!(
            "expected four comma-separated numbers FX,FY,CX,CY in pixels, got {}",
            parts.len()
        ));
    };
    let focal = |name: &str, t: &str| {
        positive_f64(t).map_err(|e| format!("{name}: {e} (focal lengths are in pixels, not millimetres)"))
    };
    let centre = |name: &str, t: &str| {
        let value = parse_f64(t).map_err(|e| format!("{name}: {e}"))?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(format!("{name}: {value} must be finite"))
        }
    };
    Ok(UserIntrinsics {
        fx_px: focal("fx", fx)?,
        fy_px: focal("fy", fy)?,
        cx_px: centre("cx", cx)?,
        cy_px: centre("cy", cy)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("depth2ply").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn intrinsics_parse_and_reject() {
        let k = parse_intrinsics("500,510.5,319.5,-2").unwrap();
        assert_eq!(
            k,
            UserIntrinsics {
                fx_px: 500.0,
                fy_px: 510.5,
                cx_px: 319.5,
                cy_px: -2.0
            }
        );
        assert!(parse_intrinsics("500,500,320").is_err());
        assert!(parse_intrinsics("0,500,320,240").unwrap_err().contains("fx"));
        assert!(parse_intrinsics("500,-1,320,240").unwrap_err().contains("fy"));
        assert!(parse_intrinsics("500,500,NaN,240").unwrap_err().contains("cx"));
        assert!(parse_intrinsics("500,500,320,inf").unwrap_err().contains("cy"));
        assert!(parse_intrinsics("500,abc,320,240").is_err());
    }

    #[test]
    fn focal_flags_are_mutually_exclusive() {
        assert!(parse(&["a.jpg", "--focal-px", "500", "--fov-deg", "60"]).is_err());
        assert!(parse(&["a.jpg", "--focal-px", "500", "--intrinsics", "1,1,1,1"]).is_err());
        assert!(parse(&["a.jpg", "--fov-deg", "60", "--intrinsics", "1,1,1,1"]).is_err());
        assert!(parse(&["a.jpg", "--fov-deg", "180"]).is_err());
        assert!(parse(&["a.jpg", "--focal-px", "0"]).is_err());
        assert!(parse(&["a.jpg", "--focal-px", "inf"]).is_err());
        assert_eq!(
            parse(&["a.jpg", "--focal-px", "500"]).unwrap().convert.focal_px,
            Some(500.0)
        );
    }

    #[test]
    fn defaults_and_subcommand() {
        let cli = parse(&["a.jpg", "b"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.convert.edge_rtol, 0.04);
        assert_eq!(cli.convert.depth_scale, 1000.0);
        assert_eq!(cli.convert.frame, FrameArg::Opencv);
        let cli = parse(&["info", "--json", "a.jpg"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Info(InfoArgs { json: true, .. }))
        ));
        assert!(parse(&[]).is_err());
        assert!(parse(&["info"]).is_err());
        assert!(parse(&["a.jpg", "--threads", "0"]).is_err());
        assert!(parse(&["a.jpg", "-q", "-v"]).is_err());
        assert!(parse(&["a.jpg", "--no-filter", "--max-depth", "3"]).is_err());
        assert!(parse(&["a.jpg", "--edge-rtol", "0"]).is_err());
    }

    #[test]
    fn outliers_value_is_optional_and_never_eats_an_input() {
        let cli = parse(&["--outliers", "a.jpg"]).unwrap();
        assert_eq!(
            cli.convert.outliers,
            Some(OutlierArgs {
                neighbors: 20,
                std_ratio: 2.0
            })
        );
        assert_eq!(cli.convert.inputs, vec![PathBuf::from("a.jpg")]);
        let cli = parse(&["--outliers=8,1.5", "a.jpg"]).unwrap();
        assert_eq!(
            cli.convert.outliers,
            Some(OutlierArgs {
                neighbors: 8,
                std_ratio: 1.5
            })
        );
        assert!(parse(&["--outliers=1,2", "a.jpg"]).is_err());
        assert!(parse(&["--outliers=8,0", "a.jpg"]).is_err());
        assert!(parse(&["a.jpg", "--max-view-angle", "91"]).is_err());
    }
}
