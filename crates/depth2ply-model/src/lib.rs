//! Apple's Depth Pro (metric monocular depth + focal length) in Candle.
//!
//! A faithful port of `apple/ml-depth-pro`: three DINOv2 ViT-L/16 encoders, the multi-scale windowed
//! patch encoder, the DPT-style decoder and the field-of-view head, reading Apple's checkpoint keys.
//!
//! Conventions: depth is **z-depth in metres**, focal lengths are in pixels, sizes are
//! [`ImageSize`], tensors are `(b, c, h, w)`.

pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod fov;
pub mod kernels;
pub mod locate;
pub mod model;
pub mod network;
pub mod preprocess;
pub mod runtime;
#[cfg(test)]
mod test_util;
pub mod vit;
mod vit_cpu;
pub mod weights;

pub use config::{ConfigError, DepthProConfig, VitConfig};
pub use depth2ply_core::{DepthMap, FocalLength, FocalSource, ImageSize};
pub use error::ModelError;
pub use locate::{LocatedWeights, WeightsLocator, WeightsOrigin};
pub use model::{DepthPrediction, DepthPro, DeviceChoice};
pub use network::DepthProNetwork;
pub use weights::{load_weights, LoadedWeights};
