//! The one place where parsed flags become library configuration (ripgrep's low → high args step).

use std::path::PathBuf;

use anyhow::Result;
use depth2ply_geometry::filter::{FilterConfig, StatisticalOutlierConfig};
use depth2ply_geometry::{CameraError, FocalLength, FocalSource, Frame, ImageSize, Intrinsics};

use crate::args::{ConvertArgs, DeviceArg, FrameArg, ModelPreset, UserIntrinsics};
use crate::inputs::UsageError;
use crate::summary::Verbosity;

/// How the camera is chosen when the user gave one (`--intrinsics`, `--focal-px`, `--fov-deg`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserCamera {
    /// `--intrinsics FX,FY,CX,CY`.
    Intrinsics(UserIntrinsics),
    /// `--focal-px F`.
    FocalPx(f64),
    /// `--fov-deg DEG` (horizontal).
    FovDeg(f64),
}

impl UserCamera {
    /// Intrinsics for an image of `size` (oriented): the user's values, or a centred principal point.
    pub fn intrinsics(&self, size: ImageSize) -> Result<Intrinsics, CameraError> {
        match *self {
            UserCamera::Intrinsics(k) => Intrinsics::new(size, k.fx_px, k.fy_px, k.cx_px, k.cy_px),
            UserCamera::FocalPx(f) => Intrinsics::from_focal_px(size, f),
            UserCamera::FovDeg(deg) => Intrinsics::from_horizontal_fov_deg(size, deg),
        }
    }

    /// The focal length handed to the network (it takes one focal: the horizontal one).
    pub fn focal(&self, size: ImageSize) -> Result<FocalLength, CameraError> {
        // Intrinsics hold a finite focal length > 0.
        FocalLength::new(self.intrinsics(size)?.fx_px, FocalSource::User).map_err(|_| {
            CameraError::InvalidFov { fov_deg: f64::NAN }
        })
    }
}

/// Settings of the network, used only when some image has no depth map.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// `--weights`.
    pub weights: Option<PathBuf>,
    /// `--device`, or the default for this build.
    pub device: DeviceArg,
    /// The architecture matching the weights.
    pub preset: ModelPreset,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Images and folders, as typed.
    pub inputs: Vec<PathBuf>,
    /// `-o`.
    pub output: Option<PathBuf>,
    /// `--depth`.
    pub depth: Option<PathBuf>,
    /// Units per metre of integer depth maps.
    pub depth_scale_units_per_m: f64,
    /// The user's camera, if any.
    pub camera: Option<UserCamera>,
    /// Point filters.
    pub filter: FilterConfig,
    /// Whether to estimate normals.
    pub estimate_normals: bool,
    /// Output frame.
    pub frame: Frame,
    /// Write ASCII PLY instead of binary.
    pub ascii: bool,
    /// Also write the depth map and its preview.
    pub save_depth: bool,
    /// Network settings.
    pub model: ModelSettings,
    /// Worker threads, if given.
    pub threads: Option<usize>,
    /// How much to print.
    pub verbosity: Verbosity,
}

impl RunConfig {
    /// Validates the flags and converts them; combinations clap cannot express are a [`UsageError`].
    pub fn from_args(args: &ConvertArgs) -> Result<Self> {
        let camera = match (args.intrinsics, args.focal_px, args.fov_deg) {
            (Some(k), _, _) => Some(UserCamera::Intrinsics(k)),
            (None, Some(f), _) => Some(UserCamera::FocalPx(f)),
            (None, None, Some(deg)) => Some(UserCamera::FovDeg(deg)),
            (None, None, None) => None,
        };
        if let (Some(min), Some(max)) = (args.min_depth, args.max_depth) {
            if min > max {
                return Err(UsageError(format!(
                    "--min-depth {min} is larger than --max-depth {max}; nothing would be kept"
                ))
                .into());
            }
        }
        let filter = if args.no_filter {
            FilterConfig::none()
        } else {
            FilterConfig {
                min_depth_m: args.min_depth.unwrap_or(0.0) as f32,
                max_depth_m: args.max_depth.map_or(f32::INFINITY, |m| m as f32),
                flying_pixel_rtol: Some(args.edge_rtol as f32),
                max_view_angle_deg: args.max_view_angle.map(|deg| deg as f32),
                voxel_size_m: args.voxel_size.map(|m| m as f32),
                statistical_outlier: args.outliers.map(|o| StatisticalOutlierConfig {
                    neighbors: o.neighbors,
                    std_ratio: o.std_ratio as f32,
                }),
                ..FilterConfig::default()
            }
        };
        // The library re-checks (f32 rounding, voxel-grid limits); its message names the field.
        filter
            .validate()
            .map_err(|err| UsageError(format!("invalid filter settings: {err}")))?;
        let device = args.device.unwrap_or_else(default_device);
        crate::model::check_device(device).map_err(UsageError)?;
        let verbosity = if args.quiet {
            Verbosity::Quiet
        } else if args.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Ok(Self {
            inputs: args.inputs.clone(),
            output: args.output.clone(),
            depth: args.depth.clone(),
            depth_scale_units_per_m: args.depth_scale,
            camera,
            filter,
            estimate_normals: !args.no_normals,
            frame: match args.frame {
                FrameArg::Opencv => Frame::OpenCv,
                FrameArg::Opengl => Frame::OpenGl,
            },
            ascii: args.ascii,
            save_depth: args.save_depth,
            model: ModelSettings {
                weights: args.weights.clone(),
                device,
                preset: args.model_config,
            },
            threads: args.threads.map(usize::from),
            verbosity,
        })
    }
}

/// The accelerator this binary was built for, else the CPU.
fn default_device() -> DeviceArg {
    if cfg!(feature = "cuda") {
        DeviceArg::Cuda
    } else if cfg!(feature = "metal") {
        DeviceArg::Metal
    } else {
        DeviceArg::Cpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn config(args: &[&str]) -> Result<RunConfig> {
        let cli = Cli::try_parse_from(std::iter::once("depth2ply").chain(args.iter().copied())).unwrap();
        assert!(cli.command.is_none() || !matches!(cli.command, Some(Command::Info(_))));
        RunConfig::from_args(&cli.convert)
    }

    #[test]
    fn filter_flags_map_to_the_library_config() {
        let c = config(&[
            "a.jpg",
            "--edge-rtol",
            "0.1",
            "--max-depth",
            "5",
            "--voxel-size",
            "0.01",
        ])
        .unwrap();
        assert_eq!(c.filter.flying_pixel_rtol, Some(0.1));
        assert_eq!(c.filter.max_depth_m, 5.0);
        assert_eq!(c.filter.voxel_size_m, Some(0.01));
        assert!(c.filter.drop_without_normal);
        let c = config(&["a.jpg", "--no-filter"]).unwrap();
        assert_eq!(c.filter, FilterConfig::none());
        let err = config(&["a.jpg", "--min-depth", "3", "--max-depth", "2"]).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
    }

    #[test]
    fn user_camera_rules() {
        let size = ImageSize::new(64, 48);
        let c = config(&["a.jpg", "--fov-deg", "90"]).unwrap();
        let k = c.camera.unwrap().intrinsics(size).unwrap();
        // f = (W/2) / tan(45°) = 32; centre ((W-1)/2, (H-1)/2).
        assert!((k.fx_px - 32.0).abs() < 1e-9);
        assert_eq!((k.cx_px, k.cy_px), (31.5, 23.5));
        let c = config(&["a.jpg", "--intrinsics", "50,60,30,20"]).unwrap();
        let f = c.camera.unwrap().focal(size).unwrap();
        assert_eq!((f.focal_px(), f.source()), (50.0, FocalSource::User));
        assert!(config(&["a.jpg"]).unwrap().camera.is_none());
    }
}
