//! The network, loaded once and only when an image has no depth map.
//!
//! All calls into `depth2ply_model` are in this file, so that the CLI's pipeline does not change when
//! the model crate does.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use depth2ply_geometry::{DepthMap, FocalLength};
use depth2ply_model::locate::DownloadProgress;
use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice, WeightsLocator, WeightsOrigin};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{DeviceArg, ModelPreset};
use crate::config::ModelSettings;
use crate::summary::{error_chain, Reporter, Verbosity};

/// A depth map predicted by the network, at the input image's size.
#[derive(Debug)]
pub struct Estimate {
    /// Metric z-depth in metres.
    pub depth: DepthMap,
    /// The focal length used: the known one passed in, or the FOV head's (source `model`).
    pub focal: FocalLength,
    /// Time spent in the network.
    pub inference_time: Duration,
}

/// Loads the network on first use and keeps it for the following images. A failed load is remembered
/// and reported for every image that needs the network, without retrying.
pub struct LazyModel {
    settings: ModelSettings,
    state: State,
}

enum State {
    NotLoaded,
    Loaded(Box<Loaded>),
    Failed(String),
}

/// A loaded network.
struct Loaded {
    model: DepthPro,
}

impl LazyModel {
    /// Nothing is loaded yet.
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            settings,
            state: State::NotLoaded,
        }
    }

    /// Predicts depth for `image`, handing the network `known_focal` when there is one (it then skips
    /// its field-of-view head). Returns the load time too when this call loaded the network.
    pub fn estimate(
        &mut self,
        image: &RgbImage,
        known_focal: Option<FocalLength>,
        reporter: &Reporter,
    ) -> Result<(Estimate, Option<Duration>)> {
        let mut load_time = None;
        if matches!(self.state, State::NotLoaded) {
            let start = Instant::now();
            self.state = match load(&self.settings, reporter) {
                Ok(loaded) => State::Loaded(Box::new(loaded)),
                Err(err) => State::Failed(error_chain(&err)),
            };
            load_time = Some(start.elapsed());
        }
        match &self.state {
            State::Loaded(loaded) => Ok((infer(loaded, image, known_focal)?, load_time)),
            State::Failed(message) => Err(anyhow!("{message}")),
            State::NotLoaded => Err(anyhow!("internal error: the network was not loaded")),
        }
    }
}

/// Checks that `device` was compiled in; the message says how to get it.
pub fn check_device(device: DeviceArg) -> Result<(), String> {
    let (compiled, feature) = match device {
        DeviceArg::Cpu => (true, ""),
        DeviceArg::Cuda => (cfg!(feature = "cuda"), "cuda"),
        DeviceArg::Metal => (cfg!(feature = "metal"), "metal"),
    };
    if compiled {
        Ok(())
    } else {
        Err(format!(
            "--device {feature} is not available in this build; rebuild with `cargo build --release -p \
             depth2ply --features {feature}` or use --device cpu"
        ))
    }
}

/// Finds the weights (`--weights`, `$DEPTH2PLY_WEIGHTS`, the cache, a download with the `hub` feature)
/// and loads the full Depth Pro model on the chosen device.
fn load(settings: &ModelSettings, reporter: &Reporter) -> Result<Loaded> {
    let locator = WeightsLocator {
        explicit: settings.weights.clone(),
        ..WeightsLocator::default()
    };
    let bar = ProgressBar::hidden();
    let located = locator
        .locate_with_progress(&mut |progress: DownloadProgress| {
            if bar.is_hidden() && reporter.verbosity() != Verbosity::Quiet && std::io::stderr().is_terminal()
            {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                if let Ok(style) =
                    ProgressStyle::with_template("downloading weights {bar:30} {bytes}/{total_bytes}")
                {
                    bar.set_style(style);
                }
            }
            if let Some(total) = progress.total_bytes {
                bar.set_length(total);
            }
            bar.set_position(progress.downloaded_bytes);
        })
        .context("cannot find the Depth Pro weights")?;
    bar.finish_and_clear();
    if let WeightsOrigin::Downloaded { url } = &located.origin {
        reporter.info(&format!(
            "depth2ply: downloaded {url} to {}",
            located.path.display()
        ));
    }
    let device = match settings.device {
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Cuda => DeviceChoice::Cuda(0),
        DeviceArg::Metal => DeviceChoice::Metal(0),
    };
    reporter.verbose(&format!(
        "depth2ply: loading {} ({:?}) on {:?}",
        located.path.display(),
        located.origin,
        settings.device
    ));
    let config = match settings.preset {
        ModelPreset::Full => DepthProConfig::full(),
        ModelPreset::Tiny => DepthProConfig::tiny(),
    };
    let model = DepthPro::load(&located.path, &config, device)
        .with_context(|| format!("cannot load the Depth Pro weights {}", located.path.display()))?;
    Ok(Loaded { model })
}

fn infer(loaded: &Loaded, image: &RgbImage, known_focal: Option<FocalLength>) -> Result<Estimate> {
    let start = Instant::now();
    let prediction = loaded.model.infer(image, known_focal)?;
    let inference_time = start.elapsed();
    Ok(Estimate {
        depth: prediction.depth,
        focal: prediction.focal,
        inference_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        assert!(check_device(DeviceArg::Cpu).is_ok());
        if !cfg!(feature = "cuda") {
            assert!(check_device(DeviceArg::Cuda)
                .unwrap_err()
                .contains("--features cuda"));
        }
    }
}
