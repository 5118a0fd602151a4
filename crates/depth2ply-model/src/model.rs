//! [`DepthPro`]: the public API. It speaks images, focal lengths and depth maps; tensors stay inside.
//!
//! ```no_run
//! use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice};
//! # fn main() -> Result<(), depth2ply_model::ModelError> {
//! let model = DepthPro::load("depth_pro.pt".as_ref(), &DepthProConfig::full(), DeviceChoice::Cpu)?;
//! let image = image::RgbImage::new(640, 480);
//! let prediction = model.infer(&image, None)?; // focal length predicted by the FOV head
//! assert_eq!(prediction.depth.size().width, 640);
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use depth2ply_core::{DepthMap, FocalLength, FocalSource, ImageSize};
use image::RgbImage;

use crate::config::DepthProConfig;
use crate::error::ModelError;
use crate::network::{DepthProNetwork, NetworkOutput};
use crate::preprocess::{self, InputError, MIN_INPUT_SIDE_PX};
use crate::weights::load_weights;

fn input_error(err: InputError) -> ModelError {
    match err {
        InputError::TooSmall { size } => ModelError::ImageTooSmall {
            size,
            min_px: MIN_INPUT_SIDE_PX,
        },
        InputError::TooLarge { size } => ModelError::ImageTooLarge {
            size,
            max_pixels: preprocess::MAX_INPUT_PIXELS,
        },
        InputError::InvalidFocal { focal_px } => ModelError::InvalidFocal { focal_px },
    }
}

/// Where to run the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU (always available; f32).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (needs the `cuda` feature).
    Cuda(usize),
    /// A Metal GPU by ordinal (needs the `metal` feature).
    Metal(usize),
}

impl DeviceChoice {
    /// Opens the device; fails with [`ModelError::UnsupportedDevice`] when it is not compiled in or
    /// not present.
    pub fn device(self) -> Result<Device, ModelError> {
        let (name, result) = match self {
            DeviceChoice::Cpu => return Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => (format!("cuda:{i}"), Device::new_cuda(i)),
            DeviceChoice::Metal(i) => (format!("metal:{i}"), Device::new_metal(i)),
        };
        result.map_err(|e| ModelError::UnsupportedDevice {
            device: name,
            reason: e.to_string(),
        })
    }
}

/// Result of [`DepthPro::infer`].
#[derive(Debug, Clone, PartialEq)]
pub struct DepthPrediction {
    /// Metric z-depth in metres at the input image's size, in `[1e-4, 1e4]` m (Apple's clamp).
    pub depth: DepthMap,
    /// The focal length (square pixels, for the input image's width) used to scale the depth: the known
    /// one passed to [`DepthPro::infer`] with its source unchanged, or the one from the predicted FOV
    /// (`0.5·W / tan(0.5·fov)`) with source [`FocalSource::Model`].
    pub focal: FocalLength,
    /// Horizontal FOV in degrees predicted by the network; `None` when the focal length was given
    /// (the FOV network is then not run).
    pub fov_deg: Option<f64>,
}

/// The Depth Pro model, ready to run.
#[derive(Debug, Clone)]
pub struct DepthPro {
    network: DepthProNetwork,
    device: Device,
    dtype: DType,
}

impl DepthPro {
    /// Builds the model from a `VarBuilder` rooted at Apple-named weights (`encoder.*`, `decoder.*`,
    /// `head.*`, `fov.*`). Computation runs in the builder's dtype and on its device. No strict key
    /// check happens here (see [`DepthPro::load`]).
    pub fn from_var_builder(config: &DepthProConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        config.validate()?;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let network = DepthProNetwork::load(config, vb)?;
        Ok(Self {
            network,
            device,
            dtype,
        })
    }

    /// Loads a checkpoint (Apple `depth_pro.pt`, Apple- or Hugging-Face-named safetensors) strictly:
    /// every tensor must be used and none may be missing or mis-shaped. f16 weights are up-cast to f32.
    pub fn load(weights: &Path, config: &DepthProConfig, device: DeviceChoice) -> Result<Self, ModelError> {
        config.validate()?;
        let device = device.device()?;
        // f32 everywhere for now: exact up-cast of the fp16 checkpoint, and Candle's CPU matmul is
        // fastest in f32.
        let loaded = load_weights(weights, DType::F32, &device)?;
        let network = loaded.build_strict(|vb| DepthProNetwork::load(config, vb))?;
        Ok(Self {
            network,
            device,
            dtype: DType::F32,
        })
    }

    /// Sets how many of the 35 pyramid windows the patch ViT processes at once (memory vs. speed).
    pub fn with_window_batch(mut self, windows: usize) -> Self {
        self.network.set_window_batch(windows);
        self
    }

    /// Sets how the decoder's and head's 3×3 convolutions run on the CPU (default Winograd F(2×2, 3×3),
    /// as accurate as a direct convolution; see [`crate::kernels::Conv3x3Algorithm`]).
    pub fn with_conv3x3_algorithm(mut self, algorithm: crate::kernels::Conv3x3Algorithm) -> Self {
        self.network.set_conv3x3_algorithm(algorithm);
        self
    }

    /// The architecture.
    pub fn config(&self) -> &DepthProConfig {
        self.network.config()
    }

    /// The network, for stage-level runs (tests, benchmarks).
    pub fn network(&self) -> &DepthProNetwork {
        &self.network
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the model can predict the focal length (it has a FOV network).
    pub fn has_fov(&self) -> bool {
        self.network.config().has_fov()
    }

    /// Stage 0: normalise and resize the image to the `(1, 3, 1536, 1536)` network input on the
    /// device; also returns the image size (the size of the depth map to produce).
    pub fn preprocess(&self, image: &RgbImage) -> Result<(Tensor, ImageSize), ModelError> {
        let host = preprocess::preprocess(image).map_err(input_error)?;
        let size = host.source_size;
        Ok((host.into_tensor(&self.device, self.dtype)?, size))
    }

    /// Predicts metric depth for `image` (any size from 2×2 to 2²⁸ pixels, any aspect ratio).
    ///
    /// With `known_focal` (for this image's width) the FOV network is not run and the depth is scaled
    /// with the given focal length, which the prediction returns unchanged; without it, the focal
    /// length comes from the predicted FOV.
    pub fn infer(
        &self,
        image: &RgbImage,
        known_focal: Option<FocalLength>,
    ) -> Result<DepthPrediction, ModelError> {
        // A `FocalLength` is finite and > 0 by construction: nothing to check here.
        if known_focal.is_none() && !self.has_fov() {
            return Err(ModelError::FocalRequired);
        }
        let (x, size) = self.preprocess(image)?;
        let NetworkOutput {
            canonical_inverse_depth,
            fov_deg,
        } = self.network.forward(&x, known_focal.is_none())?;
        drop(x);
        let canonical = canonical_inverse_depth
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        drop(canonical_inverse_depth);
        let (focal_px, fov_deg) = match (known_focal, fov_deg) {
            (Some(f), _) => (f.focal_px() as f32, None),
            (None, Some(fov)) => {
                let fov = fov
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .get(0)?
                    .to_scalar::<f32>()?;
                let f = preprocess::focal_px_from_fov(fov, size.width);
                if !(f.is_finite() && f > 0.0) {
                    return Err(ModelError::InvalidPredictedFov { fov_deg: fov as f64 });
                }
                (f, Some(fov as f64))
            }
            (None, None) => return Err(ModelError::FocalRequired),
        };
        // The network output is always 1536², so a size mismatch would be a bug in this crate.
        let depth = preprocess::postprocess(&canonical, size, focal_px)
            .map_err(|e| ModelError::Candle(candle_core::Error::Msg(format!("internal error: {e}"))))?;
        let focal = match known_focal {
            Some(known) => known,
            None => FocalLength::new(focal_px as f64, FocalSource::Model).map_err(|_| {
                ModelError::InvalidPredictedFov {
                    fov_deg: fov_deg.unwrap_or(f64::NAN),
                }
            })?,
        };
        Ok(DepthPrediction {
            depth,
            focal,
            fov_deg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_weights_give_the_input_size() {
        // All-zero weights: canonical inverse depth 0 → clamped to 1e-4 → depth 1e4 m everywhere.
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let model = DepthPro::from_var_builder(&DepthProConfig::tiny(), vb).unwrap();
        let image = RgbImage::from_fn(37, 23, |x, y| image::Rgb([x as u8 * 5, y as u8 * 9, 77]));
        let given = FocalLength::new(40.0, FocalSource::User).unwrap();
        let p = model.infer(&image, Some(given)).unwrap();
        assert_eq!(p.depth.size(), ImageSize::new(37, 23));
        assert!(p.depth.as_slice().iter().all(|&z| z == 1e4));
        assert_eq!((p.focal, p.fov_deg), (given, None));
        // Zero FOV head → FOV 0° → no usable focal length.
        assert!(model.infer(&image, None).is_err());
        let four = FocalLength::new(4.0, FocalSource::Exif35mm).unwrap();
        assert!(matches!(
            model.infer(&RgbImage::new(1, 9), Some(four)),
            Err(ModelError::ImageTooSmall { .. })
        ));
    }

    #[test]
    fn cpu_device_is_available() {
        assert!(DeviceChoice::Cpu.device().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            assert!(matches!(
                DeviceChoice::Cuda(0).device(),
                Err(ModelError::UnsupportedDevice { .. })
            ));
        }
    }
}
