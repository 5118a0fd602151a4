//! depth2ply as a library: what `depth2ply photo.jpg` does, with the same rules, for programs.
//!
//! ```text
//! photo ──open_photo──► PhotoInput (pixels as displayed, EXIF, CameraChoice, warnings)
//!        ──convert(DepthSource::{File, Map, Network})──► Conversion (cloud, drops, intrinsics,
//!          focal + source, depth, timings) ──OutputSet::write──► PLY (+ .npz, preview), all or nothing
//! ```
//!
//! - **Camera** ([`CameraChoice::resolve`]): the caller's [`UserCamera`], else the EXIF focal length,
//!   else the network's field-of-view head ([`CameraChoice::complete`]). Every focal length carries its
//!   [`FocalSource`].
//! - **Depth** ([`DepthSource`]): a depth file, a map in memory, or a [`DepthEstimator`] such as
//!   [`LazyDepthPro`] (finds and loads Depth Pro on first use).
//! - **Outputs** ([`OutputSet`]): atomic files, removed again if a later one of the same photo fails.
//!
//! For an RGB-D frame whose intrinsics are known, [`depth2ply_geometry::cloud_from_depth`] is the whole
//! job (see `examples/rgbd_frame.rs`); for a photo, see `examples/photo.rs`. Conventions (OpenCV frame,
//! z-depth in metres, pixel centres at integers) are in `docs/conventions.md`.
//!
//! ```no_run
//! use depth2ply_pipeline::{DepthSource, LazyDepthPro, OutputOptions, OutputSet, Pipeline};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::new(Default::default())?;
//! let mut network = LazyDepthPro::new(Default::default());
//! let photo = pipeline.open_photo("photo.jpg".as_ref())?;
//! let conversion = pipeline.convert(&photo, DepthSource::Network(&mut network))?;
//! let outputs = OutputSet::new("photo.ply".into(), &OutputOptions::default());
//! outputs.prepare(&[photo.path()])?;
//! outputs.write(&conversion, photo.path())?;
//! # Ok(())
//! # }
//! ```

mod camera;
mod convert;
mod network;
mod outputs;
mod warning;

pub use camera::{CameraChoice, CameraChoiceError, KnownCamera, UserCamera};
pub use convert::{
    Conversion, ConvertConfig, ConvertError, DepthOrigin, DepthSource, PhotoInput, Pipeline, Timings,
};
pub use network::{DepthEstimator, Estimate, LazyDepthPro, NetworkError, NetworkEvent, NetworkSettings};
pub use outputs::{canonical_path, ply_comments, OutputError, OutputOptions, OutputSet, WriteError};
pub use warning::Warning;

pub use depth2ply_geometry as geometry;
pub use depth2ply_geometry::{FocalLength, FocalSource, ImageSize};
pub use depth2ply_model as model;
