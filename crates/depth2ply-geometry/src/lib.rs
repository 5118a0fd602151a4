//! Geometry for depth2ply: everything between a depth map and a PLY file, with no tensors.
//!
//! # Conventions (used by every item in this crate)
//! - **Camera frame: OpenCV**, +X right, +Y down, +Z forward. [`cloud::Frame::OpenGl`] converts on output.
//! - **Depth is z-depth in metres** (along the optical axis), `f32`.
//! - **Pixel centres at integer coordinates**; the default principal point is `((W−1)/2, (H−1)/2)`.
//! - Units are suffixes: `_px` pixels, `_m` metres, `_deg` degrees.
//! - Sizes are [`ImageSize`] `{ width, height }`, buffers row-major.

pub mod atomic;
pub mod backproject;
pub mod camera;
pub mod cloud;
pub mod depth_io;
pub mod exif;
pub mod filter;
pub mod normals;
pub mod photo;
pub mod ply;
pub mod preview;

pub use atomic::{write_atomically, AtomicWriteError};
pub use backproject::{cloud_from_depth, CloudConfig, CloudError};
pub use camera::{CameraError, FocalLength, FocalSource, ImageSize, Intrinsics};
pub use cloud::{Frame, PointCloud};
pub use depth2ply_core::{DepthMap, DepthSizeMismatch, InvalidFocalLength};
pub use depth_io::{
    load_depth, write_depth_npy, write_depth_npz, DepthFormat, DepthIoError, DepthLoadOptions,
};
pub use exif::{focal_from_exif, read_exif, ExifInfo, Orientation};
pub use filter::{DropReason, DropReport, FilterConfig, FilterError, StatisticalOutlierConfig};
pub use nalgebra;
pub use normals::{KnnNormalConfig, NormalConfig, NormalError};
pub use photo::{inspect_photo, load_photo, Photo, PhotoError, PhotoInfo, PhotoLimits};
pub use ply::{read_ply, write_ply, write_ply_file, PlyEncoding, PlyError, PlyWriteOptions};
pub use preview::inverse_depth_preview;
