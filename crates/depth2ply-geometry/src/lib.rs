//! Geometry for depth2ply: everything between a depth map and a PLY file, with no tensors.
//!
//! # Conventions (used by every item in this crate)
//! - **Camera frame: OpenCV**, +X right, +Y down, +Z forward. [`cloud::Frame::OpenGl`] converts on output.
//! - **Depth is z-depth in metres** (along the optical axis), `f32`.
//! - **Pixel centres at integer coordinates**; the default principal point is `((W−1)/2, (H−1)/2)`.
//! - Units are suffixes: `_px` pixels, `_m` metres, `_deg` degrees.
//! - Sizes are [`ImageSize`] `{ width, height }`, buffers row-major.

pub mod camera;
pub mod cloud;
pub mod depth;

pub use camera::{CameraError, FocalLength, FocalSource, ImageSize, Intrinsics};
pub use cloud::{Frame, PointCloud};
pub use depth::DepthMap;
pub use nalgebra;
