//! The vocabulary every depth2ply crate shares, and nothing else: [`ImageSize`], [`DepthMap`] and
//! [`FocalLength`] with its [`FocalSource`].
//!
//! It exists so that the network (`depth2ply-model`) and the geometry (`depth2ply-geometry`: EXIF,
//! back-projection, PLY) can exchange depth maps and focal lengths without one depending on the other;
//! see `ARCHITECTURE.md`. It has no dependency but `thiserror`.
//!
//! # Conventions
//! - **Depth is z-depth in metres** (along the optical axis, not along the ray), `f32`.
//! - Focal lengths are in **pixels** (`_px`), for the image as displayed (after EXIF orientation).
//! - Sizes are [`ImageSize`] `{ width, height }`, never a bare tuple; buffers are row-major.

mod depth;
mod focal;
mod size;

pub use depth::{DepthMap, DepthSizeMismatch};
pub use focal::{FocalLength, FocalSource, InvalidFocalLength};
pub use size::ImageSize;
