//! Depth from the network: the [`DepthEstimator`] trait, and [`LazyDepthPro`], which finds and loads
//! Depth Pro on first use and keeps it for the following photos.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use depth2ply_geometry::{DepthMap, FocalLength, ImageSize};
use depth2ply_model::locate::DownloadProgress;
use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice, ModelError, WeightsLocator, WeightsOrigin};
use image::RgbImage;

/// Metric depth predicted for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Metric z-depth in metres, at the input image's size.
    pub depth: DepthMap,
    /// The focal length the depth was scaled with: the known one passed in, unchanged, or the FOV
    /// head's (source [`depth2ply_geometry::FocalSource::Model`]).
    pub focal: FocalLength,
    /// Time spent finding and loading the network, when this call loaded it.
    pub model_load_time: Option<Duration>,
    /// Time spent in the network.
    pub inference_time: Duration,
}

/// Anything that predicts metric depth for a photo: Depth Pro ([`DepthPro`] when already loaded,
/// [`LazyDepthPro`] to load it on first use), or another model a program plugs in.
pub trait DepthEstimator {
    /// Predicts z-depth in metres for `image` (as displayed), at the image's size. With `known_focal`
    /// the estimator uses that focal length and returns it unchanged; without it, it predicts one.
    fn estimate(
        &mut self,
        image: &RgbImage,
        known_focal: Option<FocalLength>,
    ) -> Result<Estimate, NetworkError>;
}

impl DepthEstimator for DepthPro {
    fn estimate(
        &mut self,
        image: &RgbImage,
        known_focal: Option<FocalLength>,
    ) -> Result<Estimate, NetworkError> {
        let start = Instant::now();
        let prediction = self.infer(image, known_focal).map_err(NetworkError::Inference)?;
        Ok(Estimate {
            depth: prediction.depth,
            focal: prediction.focal,
            model_load_time: None,
            inference_time: start.elapsed(),
        })
    }
}

/// Why the network gave no depth.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No weights file was found (or downloaded).
    #[error("cannot find the Depth Pro weights")]
    Locate(#[source] ModelError),
    /// The weights file could not be loaded.
    #[error("cannot load the Depth Pro weights {}", path.display())]
    Load {
        /// The weights file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ModelError,
    },
    /// Finding or loading the network failed ([`NetworkError::Locate`] or [`NetworkError::Load`]),
    /// for this photo or an earlier one: it is not tried again, and every photo gets the same error.
    #[error(transparent)]
    Unavailable(Arc<NetworkError>),
    /// The network ran and failed.
    #[error(transparent)]
    Inference(ModelError),
    /// The estimator returned a depth map of another size than the image (a bug in the estimator;
    /// [`crate::Pipeline::convert`] checks every estimate).
    #[error("internal error: the network returned a {depth} depth map for a {image} image")]
    WrongSize {
        /// Size of the returned depth map.
        depth: ImageSize,
        /// Size of the image.
        image: ImageSize,
    },
}

/// Which weights to find and how to run them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSettings {
    /// A weights file given by the caller (`--weights`); otherwise `$DEPTH2PLY_WEIGHTS`, the cache, then
    /// a download (with the `hub` feature): see [`WeightsLocator`].
    pub weights: Option<PathBuf>,
    /// Where to run. Default the CPU.
    pub device: DeviceChoice,
    /// The architecture matching the weights. Default [`DepthProConfig::full`].
    pub config: DepthProConfig,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            weights: None,
            device: DeviceChoice::Cpu,
            config: DepthProConfig::full(),
        }
    }
}

/// What [`LazyDepthPro`] is doing, for a front end to show.
#[derive(Debug)]
pub enum NetworkEvent<'a> {
    /// Bytes of the weights downloaded so far.
    Download(DownloadProgress),
    /// The weights were downloaded from `url` to `path`.
    Downloaded {
        /// The URL requested.
        url: &'a str,
        /// Where the file is now.
        path: &'a Path,
    },
    /// The weights are about to be loaded.
    Loading {
        /// The weights file.
        path: &'a Path,
        /// How it was found.
        origin: &'a WeightsOrigin,
    },
}

/// Depth Pro, found and loaded when the first photo needs it, then kept. A failed load is remembered
/// and returned for every later photo, without trying again. Constructing it does no I/O.
pub struct LazyDepthPro<'o> {
    settings: NetworkSettings,
    /// `None` until the first photo asks.
    state: Option<Result<Box<DepthPro>, Arc<NetworkError>>>,
    observer: Box<dyn FnMut(NetworkEvent<'_>) + 'o>,
}

impl<'o> LazyDepthPro<'o> {
    /// Nothing is loaded yet.
    pub fn new(settings: NetworkSettings) -> Self {
        Self {
            settings,
            state: None,
            observer: Box::new(|_| {}),
        }
    }

    /// Calls `observer` with each [`NetworkEvent`] (download progress, loading).
    pub fn with_observer(mut self, observer: impl FnMut(NetworkEvent<'_>) + 'o) -> Self {
        self.observer = Box::new(observer);
        self
    }

    fn load(&mut self) -> Result<DepthPro, NetworkError> {
        let locator = WeightsLocator {
            explicit: self.settings.weights.clone(),
            ..WeightsLocator::default()
        };
        let observer = &mut self.observer;
        let located = locator
            .locate_with_progress(&mut |progress| observer(NetworkEvent::Download(progress)))
            .map_err(NetworkError::Locate)?;
        if let WeightsOrigin::Downloaded { url } = &located.origin {
            observer(NetworkEvent::Downloaded {
                url,
                path: &located.path,
            });
        }
        observer(NetworkEvent::Loading {
            path: &located.path,
            origin: &located.origin,
        });
        DepthPro::load(&located.path, &self.settings.config, self.settings.device).map_err(|source| {
            NetworkError::Load {
                path: located.path.clone(),
                source,
            }
        })
    }
}

impl DepthEstimator for LazyDepthPro<'_> {
    fn estimate(
        &mut self,
        image: &RgbImage,
        known_focal: Option<FocalLength>,
    ) -> Result<Estimate, NetworkError> {
        let mut model_load_time = None;
        let state = match self.state.take() {
            Some(state) => state,
            None => {
                let start = Instant::now();
                let state = self.load().map(Box::new).map_err(Arc::new);
                model_load_time = Some(start.elapsed());
                state
            }
        };
        match self.state.insert(state) {
            Ok(model) => Ok(Estimate {
                model_load_time,
                ..model.estimate(image, known_focal)?
            }),
            Err(err) => Err(NetworkError::Unavailable(Arc::clone(err))),
        }
    }
}
