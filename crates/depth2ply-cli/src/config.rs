//! The one place where parsed flags become library configuration (ripgrep's low → high args step).

use std::path::PathBuf;

use anyhow::Result;
use depth2ply_pipeline::geometry::depth_io::DepthLoadOptions;
use depth2ply_pipeline::geometry::filter::{FilterConfig, StatisticalOutlierConfig};
use depth2ply_pipeline::geometry::ply::PlyEncoding;
use depth2ply_pipeline::geometry::{CloudConfig, Frame};
use depth2ply_pipeline::model::{DepthProConfig, DeviceChoice};
use depth2ply_pipeline::{ConvertConfig, NetworkSettings, OutputOptions, Pipeline, UserCamera};

use crate::args::{ConvertArgs, DeviceArg, FrameArg, ModelPreset};
use crate::inputs::UsageError;
use crate::summary::Verbosity;

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Images and folders, as typed.
    pub inputs: Vec<PathBuf>,
    /// `-o`.
    pub output: Option<PathBuf>,
    /// `--depth`.
    pub depth: Option<PathBuf>,
    /// Camera, cloud and depth-file settings for the library pipeline.
    pub convert: ConvertConfig,
    /// Which files to write per image.
    pub outputs: OutputOptions,
    /// Network settings, used only when some image has no depth map.
    pub network: NetworkSettings,
    /// `--device` as typed (or this build's default), for messages.
    pub device: DeviceArg,
    /// Worker threads, if given.
    pub threads: Option<usize>,
    /// How much to print.
    pub verbosity: Verbosity,
}

impl RunConfig {
    /// Validates the flags and converts them; combinations clap cannot express are a [`UsageError`].
    pub fn from_args(args: &ConvertArgs) -> Result<Self> {
        let camera = match (args.intrinsics, args.focal_px, args.fov_deg) {
            (Some(k), _, _) => Some(UserCamera::Intrinsics {
                fx_px: k.fx_px,
                fy_px: k.fy_px,
                cx_px: k.cx_px,
                cy_px: k.cy_px,
            }),
            (None, Some(f), _) => Some(UserCamera::FocalPx(f)),
            (None, None, Some(deg)) => Some(UserCamera::HorizontalFovDeg(deg)),
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
        let convert = ConvertConfig {
            camera,
            cloud: CloudConfig {
                frame: match args.frame {
                    FrameArg::Opencv => Frame::OpenCv,
                    FrameArg::Opengl => Frame::OpenGl,
                },
                estimate_normals: !args.no_normals,
                filter,
                ..CloudConfig::default()
            },
            depth_file: DepthLoadOptions {
                scale_units_per_m: args.depth_scale,
            },
        };
        // The library checks what clap cannot (f32 rounding, voxel-grid limits); its message names the
        // field.
        Pipeline::new(convert).map_err(|err| UsageError(format!("invalid filter settings: {err}")))?;
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
            convert,
            outputs: OutputOptions {
                encoding: if args.ascii {
                    PlyEncoding::Ascii
                } else {
                    PlyEncoding::BinaryLittleEndian
                },
                save_depth: args.save_depth,
            },
            network: NetworkSettings {
                weights: args.weights.clone(),
                device: match device {
                    DeviceArg::Cpu => DeviceChoice::Cpu,
                    DeviceArg::Cuda => DeviceChoice::Cuda(0),
                    DeviceArg::Metal => DeviceChoice::Metal(0),
                },
                config: match args.model_config {
                    ModelPreset::Full => DepthProConfig::full(),
                    ModelPreset::Tiny => DepthProConfig::tiny(),
                },
            },
            device,
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
        let filter = c.convert.cloud.filter;
        assert_eq!(filter.flying_pixel_rtol, Some(0.1));
        assert_eq!(filter.max_depth_m, 5.0);
        assert_eq!(filter.voxel_size_m, Some(0.01));
        assert!(filter.drop_without_normal);
        let c = config(&["a.jpg", "--no-filter"]).unwrap();
        assert_eq!(c.convert.cloud.filter, FilterConfig::none());
        let err = config(&["a.jpg", "--min-depth", "3", "--max-depth", "2"]).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
    }

    #[test]
    fn camera_flags_map_to_the_user_camera() {
        let c = config(&["a.jpg", "--fov-deg", "90"]).unwrap();
        assert_eq!(c.convert.camera, Some(UserCamera::HorizontalFovDeg(90.0)));
        let c = config(&["a.jpg", "--intrinsics", "50,60,30,20"]).unwrap();
        assert_eq!(
            c.convert.camera,
            Some(UserCamera::Intrinsics {
                fx_px: 50.0,
                fy_px: 60.0,
                cx_px: 30.0,
                cy_px: 20.0
            })
        );
        assert!(config(&["a.jpg"]).unwrap().convert.camera.is_none());
    }
}
