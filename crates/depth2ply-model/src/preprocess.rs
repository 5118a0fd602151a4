//! Pre- and post-processing around the network, reproducing Apple's `transform` + `DepthPro.infer()`
//! in f32 with PyTorch's arithmetic.
//!
//! - **Pre**: `x = (u8 / 255 − 0.5) / 0.5` per channel, **then** a bilinear resize (stretch, aspect
//!   ratio not kept) to 1536² with `align_corners=False` and no antialiasing.
//! - **Post**: `f_px = 0.5·W / tan(0.5·fov)` unless the focal length is known; inverse depth
//!   `= canonical · W / f_px`; bilinear resize back to `H × W`; clamp to `[1e-4, 1e4]`; `depth = 1 / ·`
//!   (metres, z-depth).
//!
//! Both resizes run on the host with [`resize_bilinear`], which evaluates PyTorch's CPU kernel formula
//! in the same f32 order (Candle's `upsample_bilinear2d` computes in f64 and differs by up to ~1e-4 at
//! non-integer ratios).

use depth2ply_core::DepthSizeMismatch;
use depth2ply_core::{DepthMap, ImageSize};
use image::RgbImage;
use rayon::prelude::*;

use crate::config::NETWORK_SIZE_PX;

/// Smallest accepted input side in pixels.
pub const MIN_INPUT_SIDE_PX: u32 = 2;
/// Largest accepted input in pixels, 2²⁸ = 16384² (the output depth map alone is then 1 GiB of f32).
pub const MAX_INPUT_PIXELS: usize = 1 << 28;

/// An input the pipeline cannot process.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A side shorter than [`MIN_INPUT_SIDE_PX`].
    #[error("image {size} is too small: both sides must be at least {MIN_INPUT_SIDE_PX} px")]
    TooSmall {
        /// The rejected size.
        size: ImageSize,
    },
    /// More than [`MAX_INPUT_PIXELS`] pixels.
    #[error(
        "image {size} is too large: at most {MAX_INPUT_PIXELS} pixels are supported; downscale it first"
    )]
    TooLarge {
        /// The rejected size.
        size: ImageSize,
    },
    /// A known focal length that is zero, negative, NaN or infinite.
    #[error("focal length {focal_px} px is not usable: it must be finite and > 0 pixels")]
    InvalidFocal {
        /// The rejected focal length in pixels.
        focal_px: f64,
    },
}

/// Checks an input size against [`MIN_INPUT_SIDE_PX`] and [`MAX_INPUT_PIXELS`].
pub fn check_input_size(size: ImageSize) -> Result<(), InputError> {
    if size.width < MIN_INPUT_SIDE_PX || size.height < MIN_INPUT_SIDE_PX {
        Err(InputError::TooSmall { size })
    } else if size.pixel_count() > MAX_INPUT_PIXELS {
        Err(InputError::TooLarge { size })
    } else {
        Ok(())
    }
}

/// Checks a known focal length (finite, > 0).
pub fn check_focal_px(focal_px: f64) -> Result<(), InputError> {
    if focal_px.is_finite() && focal_px > 0.0 {
        Ok(())
    } else {
        Err(InputError::InvalidFocal { focal_px })
    }
}

/// Source index pairs and weights of one output axis, as PyTorch's `compute_indices_weights_linear`
/// (`align_corners=False`): `scale = in / out` (f32), `src = max(scale·(o + 0.5) − 0.5, 0)`,
/// `i0 = min(⌊src⌋, in − 1)`, `λ1 = clamp(src − i0, 0, 1)`, `i1 = i0 + (i0 < in − 1)`, `λ0 = 1 − λ1`;
/// equal sizes copy.
fn axis_weights(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    if input == output {
        return (0..output).map(|o| (o, o, 1.0, 0.0)).collect();
    }
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of `planes` row-major planes read through `read(plane, row, col)` into `out`
/// (`planes × to.height × to.width`), with PyTorch's per-pixel f32 evaluation
/// `(v00·λw0 + v01·λw1)·λh0 + (v10·λw0 + v11·λw1)·λh1` (rows outer, columns inner).
fn resize_planes<F>(planes: usize, from: ImageSize, to: ImageSize, read: F, out: &mut [f32])
where
    F: Fn(usize, usize, usize) -> f32 + Sync,
{
    let rows = axis_weights(from.height as usize, to.height as usize);
    let cols = axis_weights(from.width as usize, to.width as usize);
    let out_w = to.width as usize;
    let out_h = to.height as usize;
    if out_w == 0 || out_h == 0 {
        return;
    }
    out[..planes * out_h * out_w]
        .par_chunks_mut(out_w)
        .enumerate()
        .for_each(|(k, row_out)| {
            let (plane, y) = (k / out_h, k % out_h);
            let (h0, h1, lh0, lh1) = rows[y];
            for (x, v) in row_out.iter_mut().enumerate() {
                let (w0, w1, lw0, lw1) = cols[x];
                // Fused multiply-adds where PyTorch's AVX2/AVX-512 kernels contract them (verified bit-exact
                // against torch 2.15 on x86-64): t0 = fma(v00, λw0, v01·λw1), out = fma(t0, λh0, t1·λh1).
                let t0 = read(plane, h0, w0).mul_add(lw0, read(plane, h0, w1) * lw1);
                let t1 = read(plane, h1, w0).mul_add(lw0, read(plane, h1, w1) * lw1);
                *v = t0.mul_add(lh0, t1 * lh1);
            }
        });
}

/// PyTorch-exact `F.interpolate(mode="bilinear", align_corners=False, antialias=False)` of
/// `channels` planar row-major planes (`channels × from.height × from.width`) to `to`.
///
/// A `src` shorter than `channels · from` pixels (or an empty `from`) gives an empty result.
pub fn resize_bilinear(src: &[f32], channels: usize, from: ImageSize, to: ImageSize) -> Vec<f32> {
    let plane = from.pixel_count();
    if src.len() < channels * plane || plane == 0 {
        return Vec::new();
    }
    let w = from.width as usize;
    let mut out = vec![0f32; channels * to.pixel_count()];
    resize_planes(channels, from, to, |c, y, x| src[c * plane + y * w + x], &mut out);
    out
}

/// The network input on the host: `(3, 1536, 1536)` planar f32 in `[−1, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkImage {
    /// Channel-planar pixels, R, G, B planes of 1536 × 1536 each.
    pub pixels: Vec<f32>,
    /// Size of the image before resizing; the depth map is returned at this size.
    pub source_size: ImageSize,
}

impl NetworkImage {
    /// The input as a `(1, 3, 1536, 1536)` tensor (on the CPU the buffer is moved, not copied).
    pub fn into_tensor(
        self,
        device: &candle_core::Device,
        dtype: candle_core::DType,
    ) -> candle_core::Result<candle_core::Tensor> {
        candle_core::Tensor::from_vec(self.pixels, (1, 3, NETWORK_SIZE_PX, NETWORK_SIZE_PX), device)?
            .to_dtype(dtype)
    }
}

/// Apple's `Normalize(0.5, 0.5)` after `ToTensor`, for every u8 value: `(f32(v) / 255 − 0.5) / 0.5`.
fn normalization_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (v, slot) in t.iter_mut().enumerate() {
        *slot = (v as f32 / 255.0 - 0.5) / 0.5;
    }
    t
}

/// Normalises an RGB image and resizes it to 1536² (normalise first, then resize, as Apple does;
/// an image already 1536² is not resampled).
pub fn preprocess(image: &RgbImage) -> Result<NetworkImage, InputError> {
    let size = ImageSize::new(image.width(), image.height());
    check_input_size(size)?;
    let table = normalization_table();
    let raw = image.as_raw();
    let w = size.width as usize;
    let n = NETWORK_SIZE_PX as u32;
    let to = ImageSize::new(n, n);
    let mut pixels = vec![0f32; 3 * to.pixel_count()];
    resize_planes(
        3,
        size,
        to,
        |c, y, x| table[raw[(y * w + x) * 3 + c] as usize],
        &mut pixels,
    );
    Ok(NetworkImage {
        pixels,
        source_size: size,
    })
}

/// Focal length in pixels from the predicted horizontal FOV, as Apple's
/// `0.5 * W / torch.tan(0.5 * torch.deg2rad(fov.float()))` in f32 (PyTorch evaluates `scalar / t`
/// as `t.reciprocal() * scalar`). PyTorch's vectorised `tanf` (SLEEF, 1-ulp) can differ from Rust's by
/// an ulp, so the result may differ by ~2e-7 relative. Not finite or ≤ 0 when the FOV is outside
/// (0°, 180°).
pub fn focal_px_from_fov(fov_deg: f32, width: u32) -> f32 {
    let half_angle = fov_deg * (std::f64::consts::PI / 180.0) as f32 * 0.5;
    (1.0 / half_angle.tan()) * (0.5 * width as f64) as f32
}

/// Horizontal FOV in degrees of a focal length (`2·atan(W / (2·f))`), for reporting.
pub fn fov_deg_from_focal_px(focal_px: f64, width: u32) -> f64 {
    2.0 * (width as f64 / (2.0 * focal_px)).atan().to_degrees()
}

/// Converts the canonical inverse depth (1536² row-major, the network output) to metric z-depth at
/// the source size: `inverse = canonical · (W / f_px)` (f32, `W / f_px` as `f_px.reciprocal() · W`),
/// bilinear resize to `size` (skipped when it is 1536²), clamp to `[1e-4, 1e4]`, invert.
pub fn postprocess(canonical: &[f32], size: ImageSize, focal_px: f32) -> Result<DepthMap, DepthSizeMismatch> {
    let net = ImageSize::new(NETWORK_SIZE_PX as u32, NETWORK_SIZE_PX as u32);
    if canonical.len() != net.pixel_count() {
        return Err(DepthSizeMismatch {
            size: net,
            len: canonical.len(),
        });
    }
    let factor = (1.0 / focal_px) * size.width as f32;
    let inverse: Vec<f32> = canonical.iter().map(|v| v * factor).collect();
    let mut depth = if size == net {
        inverse
    } else {
        resize_bilinear(&inverse, 1, net, size)
    };
    for v in &mut depth {
        *v = 1.0 / v.clamp(1e-4, 1e4);
    }
    DepthMap::new(size, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_weights_follow_pytorch() {
        // Hand-computed from PyTorch's formula: 4 → 8, scale 0.5, src = 0.5·o − 0.25.
        let w = axis_weights(4, 8);
        assert_eq!(w[0], (0, 1, 1.0, 0.0)); // src −0.25 clamps to 0
        assert_eq!(w[1], (0, 1, 0.75, 0.25)); // src 0.25
        assert_eq!(w[7], (3, 3, 0.75, 0.25)); // src 3.25: i1 clamps to the last row
                                              // 8 → 4, scale 2: src = 2o + 0.5.
        assert_eq!(axis_weights(8, 4)[1], (2, 3, 0.5, 0.5));
        assert_eq!(axis_weights(5, 5)[3], (3, 3, 1.0, 0.0));
    }

    #[test]
    fn resize_preserves_linear_ramps() {
        // Bilinear interpolation reproduces an affine function exactly away from the clamped border.
        let from = ImageSize::new(10, 6);
        let src: Vec<f32> = (0..60).map(|i| ((i % 10) * 2 + (i / 10) * 3) as f32).collect();
        let to = ImageSize::new(20, 12);
        let out = resize_bilinear(&src, 1, from, to);
        // Output (x=5, y=5): src x = 0.5·5.5 − 0.5 = 2.25, src y = 2.25 → 2·2.25 + 3·2.25.
        assert!((out[5 * 20 + 5] - 11.25).abs() < 1e-5);
        assert!(resize_bilinear(&src[..10], 1, from, to).is_empty());
        assert!(resize_bilinear(&src, 1, from, ImageSize::new(0, 3)).is_empty());
    }

    #[test]
    fn size_limits() {
        assert!(check_input_size(ImageSize::new(2, 2)).is_ok());
        assert!(check_input_size(ImageSize::new(1, 50)).is_err());
        assert!(check_input_size(ImageSize::new(16_384, 16_384)).is_ok());
        assert!(matches!(
            check_input_size(ImageSize::new(16_385, 16_384)),
            Err(InputError::TooLarge { .. })
        ));
        let e = preprocess(&RgbImage::new(1, 1)).unwrap_err();
        assert!(e.to_string().contains("1×1"), "{e}");
        assert!(check_focal_px(0.0).is_err());
        assert!(check_focal_px(f64::NAN).is_err());
        assert!(check_focal_px(500.0).is_ok());
    }

    #[test]
    fn preprocess_normalises_then_resizes() {
        // A constant image stays constant: (200/255 − 0.5)/0.5.
        let img = RgbImage::from_pixel(7, 3, image::Rgb([200, 0, 255]));
        let x = preprocess(&img).unwrap();
        let plane = NETWORK_SIZE_PX * NETWORK_SIZE_PX;
        assert_eq!(x.pixels.len(), 3 * plane);
        assert_eq!(x.pixels[123], (200.0f32 / 255.0 - 0.5) / 0.5);
        assert_eq!(x.pixels[plane + 5], -1.0);
        assert_eq!(x.pixels[2 * plane + 77], 1.0);
        assert_eq!(x.source_size, ImageSize::new(7, 3));
    }

    #[test]
    fn focal_and_fov_are_inverse() {
        // 90° horizontal FOV ↔ f = W / 2.
        let f = focal_px_from_fov(90.0, 640);
        assert!((f - 320.0).abs() < 1e-3, "{f}");
        assert!((fov_deg_from_focal_px(320.0, 640) - 90.0).abs() < 1e-9);
        assert!(focal_px_from_fov(-3.0, 640) < 0.0);
    }

    #[test]
    fn postprocess_scales_clamps_and_inverts() {
        let n = NETWORK_SIZE_PX * NETWORK_SIZE_PX;
        let mut canonical = vec![0.5f32; n];
        canonical[0] = 0.0; // → clamped to 1e-4 → 1e4 m
        let size = ImageSize::new(NETWORK_SIZE_PX as u32, NETWORK_SIZE_PX as u32);
        // f = W: inverse depth = canonical, depth = 2 m.
        let d = postprocess(&canonical, size, NETWORK_SIZE_PX as f32).unwrap();
        assert_eq!(d.as_slice()[1], 2.0);
        assert_eq!(d.as_slice()[0], 1e4);
        // Non-square target: constant input stays constant; f = W/2 halves the depth.
        let d = postprocess(&vec![0.5; n], ImageSize::new(30, 20), 15.0).unwrap();
        assert_eq!(d.size(), ImageSize::new(30, 20));
        assert!(d.as_slice().iter().all(|&z| (z - 1.0).abs() < 1e-6));
        assert!(postprocess(&canonical[..10], size, 1.0).is_err());
    }
}
