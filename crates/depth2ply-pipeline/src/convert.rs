//! [`Pipeline`]: photo → camera → depth (file, memory or network) → filtered cloud, with everything a
//! summary line or a PLY header reports.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use depth2ply_geometry::depth_io::{load_depth, DepthIoError, DepthLoadOptions};
use depth2ply_geometry::filter::DropReport;
use depth2ply_geometry::photo::{load_photo, Photo, PhotoError};
use depth2ply_geometry::{
    cloud_from_depth, CloudConfig, CloudError, DepthMap, FocalLength, Intrinsics, PointCloud,
};

use crate::camera::{CameraChoice, CameraChoiceError, KnownCamera, UserCamera};
use crate::network::{DepthEstimator, NetworkError};
use crate::warning::Warning;

/// How photos are converted. `Default` is what `depth2ply photo.jpg` does.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ConvertConfig {
    /// A camera that overrides EXIF and the network (`None`: EXIF, else the network's FOV head).
    pub camera: Option<UserCamera>,
    /// Frame, normals and filters of the cloud.
    pub cloud: CloudConfig,
    /// How depth files are read (units per metre of integer depth maps).
    pub depth_file: DepthLoadOptions,
}

/// Converts photos with one [`ConvertConfig`]; holds no model and does no I/O of its own, so one
/// pipeline serves every photo of a run.
///
/// ```no_run
/// use depth2ply_pipeline::{DepthSource, Pipeline};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::new(Default::default())?;
/// let photo = pipeline.open_photo("frame.jpg".as_ref())?;
/// let conversion = pipeline.convert(&photo, DepthSource::File("frame.depth.png".as_ref()))?;
/// println!("{} points, {}", conversion.cloud().len(), conversion.report());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: ConvertConfig,
}

/// A photo, loaded and oriented, with its camera choice and the warnings worth showing for it.
#[derive(Debug, Clone)]
pub struct PhotoInput {
    path: PathBuf,
    photo: Photo,
    camera: CameraChoice,
    warnings: Vec<Warning>,
    load_time: Duration,
}

impl PhotoInput {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pixels (as displayed) and EXIF facts.
    pub fn photo(&self) -> &Photo {
        &self.photo
    }

    /// The camera: known (user or EXIF), or to be predicted by the network.
    pub fn camera(&self) -> CameraChoice {
        self.camera
    }

    /// What the caller should know about the photo: EXIF and colour fallbacks, leaving out those that
    /// do not matter because the camera was given.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// Where the depth of a photo comes from.
pub enum DepthSource<'a> {
    /// A depth file (`.npz`, `.npy`, 16-bit PNG, PFM, float TIFF) at the photo's displayed size, read
    /// with [`ConvertConfig::depth_file`].
    File(&'a Path),
    /// A depth map already in memory, z-depth in metres, at the photo's displayed size.
    Map(DepthMap),
    /// A network; it is handed the known focal length when there is one.
    Network(&'a mut dyn DepthEstimator),
}

/// Where a conversion's depth came from, as reported (`depth_source=` in the PLY header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepthOrigin {
    /// Read from this file.
    File(PathBuf),
    /// Given in memory.
    Memory,
    /// Predicted by Depth Pro.
    Network,
}

impl fmt::Display for DepthOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepthOrigin::File(path) => write!(f, "{}", path.display()),
            DepthOrigin::Memory => f.write_str("memory"),
            DepthOrigin::Network => f.write_str("depth-pro"),
        }
    }
}

/// Time spent on each stage of one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// Reading and decoding the photo.
    pub photo_load: Duration,
    /// Finding and loading the network, when this photo loaded it.
    pub model_load: Option<Duration>,
    /// Running the network, when it ran.
    pub inference: Option<Duration>,
    /// Everything, from opening the photo to the finished cloud.
    pub total: Duration,
}

/// One converted photo: the cloud and everything reported about it.
#[derive(Debug, Clone)]
pub struct Conversion {
    cloud: PointCloud,
    report: DropReport,
    camera: KnownCamera,
    depth: DepthMap,
    depth_origin: DepthOrigin,
    timings: Timings,
    warnings: Vec<Warning>,
    /// When [`Pipeline::convert`] started (the photo was loaded before).
    started: Instant,
}

impl Conversion {
    /// The cloud (metres, in [`CloudConfig::frame`]).
    pub fn cloud(&self) -> &PointCloud {
        &self.cloud
    }

    /// Takes the cloud out.
    pub fn into_cloud(self) -> PointCloud {
        self.cloud
    }

    /// How many pixels became points and why the others were dropped.
    pub fn report(&self) -> &DropReport {
        &self.report
    }

    /// The intrinsics the cloud was back-projected with.
    pub fn intrinsics(&self) -> &Intrinsics {
        self.camera.intrinsics()
    }

    /// The focal length used and where it came from.
    pub fn focal(&self) -> FocalLength {
        self.camera.focal()
    }

    /// The metric depth map (z-depth in metres, as displayed).
    pub fn depth(&self) -> &DepthMap {
        &self.depth
    }

    /// Where the depth came from.
    pub fn depth_origin(&self) -> &DepthOrigin {
        &self.depth_origin
    }

    /// Time per stage; [`Timings::total`] runs until the cloud was built, or the last
    /// [`Conversion::finish_timing`].
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Extends [`Timings::total`] to now (e.g. after the outputs are written).
    pub fn finish_timing(&mut self) {
        self.timings.total = self.timings.photo_load + self.started.elapsed();
    }

    /// Warnings about the result (e.g. an empty cloud); the photo's own are in
    /// [`PhotoInput::warnings`].
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// Why a photo could not be converted. Each message names the photo or the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The photo could not be read or decoded.
    #[error("cannot load the image")]
    Photo(#[source] PhotoError),
    /// The camera (the user's, EXIF's or the network's) gives no valid intrinsics.
    #[error("{} {}", camera_context(source), photo.display())]
    Camera {
        /// The photo.
        photo: PathBuf,
        /// Whose camera and why.
        #[source]
        source: CameraChoiceError,
    },
    /// The depth file could not be read.
    #[error("cannot read the depth map")]
    DepthFile(#[source] DepthIoError),
    /// The depth map does not have the photo's displayed size.
    #[error(
        "the depth map is {depth} but the image is {image}{}; the depth map must have the image's displayed \
         size and orientation: {}",
        oriented.as_deref().unwrap_or(""),
        path.display()
    )]
    DepthSize {
        /// The depth map's size.
        depth: depth2ply_geometry::ImageSize,
        /// The photo's displayed size.
        image: depth2ply_geometry::ImageSize,
        /// ` (after EXIF orientation …; stored …)` when the photo was turned.
        oriented: Option<String>,
        /// The depth file (or the photo, for a map in memory).
        path: PathBuf,
    },
    /// Every depth value is unusable.
    #[error(
        "the depth map has no valid pixel (every value is 0, negative, NaN or infinite); check the file and \
         --depth-scale: {}",
        path.display()
    )]
    NoValidDepth {
        /// The depth file (or the photo, for a map in memory).
        path: PathBuf,
    },
    /// A depth map was given, no camera is known, and no network runs to predict the focal length.
    #[error(
        "no focal length known: the image has no usable EXIF focal length, and with --depth no network runs \
         to predict one; pass --focal-px F, --fov-deg DEG or --intrinsics FX,FY,CX,CY: {}",
        photo.display()
    )]
    NoFocalLength {
        /// The photo.
        photo: PathBuf,
    },
    /// The network gave no depth.
    #[error(
        "cannot estimate depth for {} with the network (to use a depth map instead, pass --depth PATH)",
        photo.display()
    )]
    Network {
        /// The photo.
        photo: PathBuf,
        /// Why (boxed: model errors are large).
        #[source]
        source: Box<NetworkError>,
    },
    /// The cloud could not be built (e.g. a voxel grid too large for the scene).
    #[error("cannot build the point cloud for {}", photo.display())]
    Cloud {
        /// The photo.
        photo: PathBuf,
        /// Why.
        #[source]
        source: CloudError,
    },
}

fn camera_context(error: &CameraChoiceError) -> &'static str {
    match error {
        CameraChoiceError::User(_) => "invalid camera for",
        CameraChoiceError::Exif(_) => "unusable EXIF focal length in",
        CameraChoiceError::Predicted(_) => "the network predicted an unusable focal length for",
    }
}

impl Pipeline {
    /// A pipeline with `config`; fails on invalid filter or normal settings.
    pub fn new(config: ConvertConfig) -> Result<Self, CloudError> {
        config.cloud.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ConvertConfig {
        &self.config
    }

    /// Loads a photo (EXIF orientation applied) and chooses its camera.
    pub fn open_photo(&self, path: &Path) -> Result<PhotoInput, ConvertError> {
        let start = Instant::now();
        let photo = load_photo(path).map_err(ConvertError::Photo)?;
        let known_camera = self.config.camera.is_some();
        let warnings = photo
            .warnings
            .iter()
            .filter(|w| !(known_camera && crate::warning::irrelevant_with_known_camera(&photo, w)))
            .cloned()
            .map(Warning::Photo)
            .collect();
        let camera = CameraChoice::resolve(self.config.camera.as_ref(), photo.exif_focal, photo.size)
            .map_err(|source| ConvertError::Camera {
                photo: path.to_path_buf(),
                source,
            })?;
        Ok(PhotoInput {
            path: path.to_path_buf(),
            photo,
            camera,
            warnings,
            load_time: start.elapsed(),
        })
    }

    /// Turns a loaded photo and its depth into a cloud.
    pub fn convert(&self, input: &PhotoInput, depth: DepthSource<'_>) -> Result<Conversion, ConvertError> {
        let started = Instant::now();
        let mut timings = Timings {
            photo_load: input.load_time,
            ..Timings::default()
        };
        let photo_path = || input.path.clone();
        let (depth, camera, depth_origin) = match depth {
            DepthSource::File(path) => {
                let depth = load_depth(path, &self.config.depth_file).map_err(ConvertError::DepthFile)?;
                let depth = check_depth(depth, &input.photo, path)?;
                (
                    depth,
                    self.known_camera(input)?,
                    DepthOrigin::File(path.to_path_buf()),
                )
            }
            DepthSource::Map(depth) => {
                let depth = check_depth(depth, &input.photo, &input.path)?;
                (depth, self.known_camera(input)?, DepthOrigin::Memory)
            }
            DepthSource::Network(estimator) => {
                let estimate = estimator
                    .estimate(&input.photo.image, input.camera.known_focal())
                    .map_err(|source| ConvertError::Network {
                        photo: photo_path(),
                        source: Box::new(source),
                    })?;
                if estimate.depth.size() != input.photo.size {
                    return Err(ConvertError::Network {
                        photo: photo_path(),
                        source: Box::new(NetworkError::WrongSize {
                            depth: estimate.depth.size(),
                            image: input.photo.size,
                        }),
                    });
                }
                timings.model_load = estimate.model_load_time;
                timings.inference = Some(estimate.inference_time);
                let camera = input
                    .camera
                    .complete(estimate.focal, input.photo.size)
                    .map_err(|source| ConvertError::Camera {
                        photo: photo_path(),
                        source,
                    })?;
                (estimate.depth, camera, DepthOrigin::Network)
            }
        };
        let (cloud, report) = cloud_from_depth(
            &depth,
            camera.intrinsics(),
            Some(&input.photo.image),
            &self.config.cloud,
        )
        .map_err(|source| ConvertError::Cloud {
            photo: photo_path(),
            source,
        })?;
        let mut warnings = Vec::new();
        if cloud.is_empty() {
            warnings.push(Warning::EmptyCloud { report });
        }
        timings.total = input.load_time + started.elapsed();
        Ok(Conversion {
            cloud,
            report,
            camera,
            depth,
            depth_origin,
            timings,
            warnings,
            started,
        })
    }

    /// [`Pipeline::open_photo`] then [`Pipeline::convert`], for callers that show warnings afterwards.
    pub fn convert_photo(
        &self,
        path: &Path,
        depth: DepthSource<'_>,
    ) -> Result<(PhotoInput, Conversion), ConvertError> {
        let input = self.open_photo(path)?;
        let conversion = self.convert(&input, depth)?;
        Ok((input, conversion))
    }

    /// The camera for a depth map that did not come from a network: it must be known.
    fn known_camera(&self, input: &PhotoInput) -> Result<KnownCamera, ConvertError> {
        match input.camera {
            CameraChoice::Known(camera) => Ok(camera),
            CameraChoice::AskNetwork => Err(ConvertError::NoFocalLength {
                photo: input.path.clone(),
            }),
        }
    }
}

/// Checks a depth map against the photo it belongs to.
fn check_depth(depth: DepthMap, photo: &Photo, path: &Path) -> Result<DepthMap, ConvertError> {
    if depth.size() != photo.size {
        let oriented = (photo.size != photo.stored_size).then(|| {
            format!(
                " (after EXIF orientation {}; stored {})",
                photo.orientation, photo.stored_size
            )
        });
        return Err(ConvertError::DepthSize {
            depth: depth.size(),
            image: photo.size,
            oriented,
            path: path.to_path_buf(),
        });
    }
    if depth.valid_count() == 0 {
        return Err(ConvertError::NoValidDepth {
            path: path.to_path_buf(),
        });
    }
    Ok(depth)
}
