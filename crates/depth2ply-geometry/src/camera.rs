//! Image sizes, pinhole intrinsics and where a focal length came from.
//!
//! # Conventions
//! - **Camera frame: OpenCV**: +X right, +Y down, +Z forward (into the scene).
//! - **Pixel centres sit at integer coordinates.** Pixel column `u` (0-based) covers the continuous
//!   interval `[u − 0.5, u + 0.5]`, so the image spans `[−0.5, W − 0.5] × [−0.5, H − 0.5]` and its
//!   geometric centre is `((W − 1) / 2, (H − 1) / 2)`. This is OpenCV's and Open3D's convention
//!   (PrimeSense: 640×480 with `cx = 319.5`). Some monocular-depth scripts use `cx = W / 2`; that is half
//!   a pixel off in this convention.
//! - Focal lengths and principal points are in **pixels** (`_px`); angles in degrees where named `_deg`.

pub use depth2ply_core::{FocalLength, FocalSource, ImageSize, InvalidFocalLength};

/// Invalid camera parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    /// A focal length or principal point that is zero, negative, NaN or infinite.
    #[error(
        "invalid intrinsics fx={fx}, fy={fy}, cx={cx}, cy={cy}: focal lengths must be finite and > 0 \
         pixels and the principal point finite"
    )]
    InvalidIntrinsics {
        /// Horizontal focal length in pixels.
        fx: f64,
        /// Vertical focal length in pixels.
        fy: f64,
        /// Principal point x in pixels.
        cx: f64,
        /// Principal point y in pixels.
        cy: f64,
    },
    /// A field of view outside the open interval (0°, 180°).
    #[error(
        "invalid horizontal field of view {fov_deg}°: it must be finite and strictly between 0° and 180°"
    )]
    InvalidFov {
        /// The rejected angle in degrees.
        fov_deg: f64,
    },
    /// An image with zero width or height.
    #[error("invalid image size {size}: width and height must be at least 1 pixel")]
    EmptyImage {
        /// The rejected size.
        size: ImageSize,
    },
}

/// Pinhole intrinsics in pixels, for an image of a given size.
///
/// Pixel `(u, v)` with z-depth `z` (metres) maps to the camera-frame point
/// `((u − cx)·z/fx, (v − cy)·z/fy, z)` (OpenCV frame; pixel centres at integers, see the module docs).
///
/// ```
/// use depth2ply_geometry::{ImageSize, Intrinsics};
/// let k = Intrinsics::from_focal_px(ImageSize::new(640, 480), 525.0)?;
/// assert_eq!((k.cx_px, k.cy_px), (319.5, 239.5));
/// let p = k.camera_from_pixel(319.5, 239.5, 2.0);
/// assert_eq!(p, [0.0, 0.0, 2.0]);
/// # Ok::<(), depth2ply_geometry::CameraError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intrinsics {
    /// Image the intrinsics belong to.
    pub size: ImageSize,
    /// Horizontal focal length in pixels.
    pub fx_px: f64,
    /// Vertical focal length in pixels.
    pub fy_px: f64,
    /// Principal point, x, in pixels.
    pub cx_px: f64,
    /// Principal point, y, in pixels.
    pub cy_px: f64,
}

impl Intrinsics {
    /// Intrinsics from all four values; fails on a non-positive or non-finite focal length, a non-finite
    /// principal point or an empty image.
    pub fn new(size: ImageSize, fx_px: f64, fy_px: f64, cx_px: f64, cy_px: f64) -> Result<Self, CameraError> {
        if size.width == 0 || size.height == 0 {
            return Err(CameraError::EmptyImage { size });
        }
        let focal_ok = |f: f64| f.is_finite() && f > 0.0;
        if !(focal_ok(fx_px) && focal_ok(fy_px) && cx_px.is_finite() && cy_px.is_finite()) {
            return Err(CameraError::InvalidIntrinsics {
                fx: fx_px,
                fy: fy_px,
                cx: cx_px,
                cy: cy_px,
            });
        }
        Ok(Self {
            size,
            fx_px,
            fy_px,
            cx_px,
            cy_px,
        })
    }

    /// Square pixels with focal `focal_px` and the principal point at the image centre
    /// `((W − 1)/2, (H − 1)/2)`.
    pub fn from_focal_px(size: ImageSize, focal_px: f64) -> Result<Self, CameraError> {
        let (cx, cy) = Self::centre(size);
        Self::new(size, focal_px, focal_px, cx, cy)
    }

    /// Square pixels from a **horizontal** field of view in degrees, principal point at the centre:
    /// `f = (W / 2) / tan(fov / 2)` (the image spans `W` pixels edge to edge).
    pub fn from_horizontal_fov_deg(size: ImageSize, fov_deg: f64) -> Result<Self, CameraError> {
        Self::from_focal_px(size, focal_px_from_horizontal_fov_deg(size, fov_deg)?)
    }

    /// The image centre `((W − 1)/2, (H − 1)/2)` in the integer-pixel-centre convention.
    pub fn centre(size: ImageSize) -> (f64, f64) {
        ((size.width as f64 - 1.0) / 2.0, (size.height as f64 - 1.0) / 2.0)
    }

    /// Horizontal field of view in degrees, edge to edge: `2·atan(W / (2·fx))`.
    pub fn horizontal_fov_deg(&self) -> f64 {
        horizontal_fov_deg(self.size, self.fx_px)
    }

    /// Camera-frame point (OpenCV) of the pixel `(u, v)` seen at z-depth `depth_m`.
    #[inline]
    pub fn camera_from_pixel(&self, u: f64, v: f64, depth_m: f64) -> [f64; 3] {
        [
            (u - self.cx_px) * depth_m / self.fx_px,
            (v - self.cy_px) * depth_m / self.fy_px,
            depth_m,
        ]
    }

    /// Pixel `(u, v)` onto which a camera-frame point (OpenCV) projects, or `None` when `z ≤ 0`.
    #[inline]
    pub fn pixel_from_camera(&self, point_in_camera: [f64; 3]) -> Option<(f64, f64)> {
        let [x, y, z] = point_in_camera;
        (z > 0.0).then(|| (self.fx_px * x / z + self.cx_px, self.fy_px * y / z + self.cy_px))
    }

    /// The same camera for the image resized to `size` (focal and principal point scaled per axis,
    /// keeping pixel centres consistent: `c' = (c + 0.5)·s − 0.5`).
    pub fn scaled_to(&self, size: ImageSize) -> Result<Self, CameraError> {
        let sx = size.width as f64 / self.size.width as f64;
        let sy = size.height as f64 / self.size.height as f64;
        Self::new(
            size,
            self.fx_px * sx,
            self.fy_px * sy,
            (self.cx_px + 0.5) * sx - 0.5,
            (self.cy_px + 0.5) * sy - 0.5,
        )
    }
}

/// Horizontal field of view (degrees, edge to edge) of a focal length `focal_px` on an image of `size`.
pub fn horizontal_fov_deg(size: ImageSize, focal_px: f64) -> f64 {
    2.0 * (size.width as f64 / (2.0 * focal_px)).atan().to_degrees()
}

/// Focal length in pixels giving a horizontal field of view of `fov_deg` on an image of `size`.
pub fn focal_px_from_horizontal_fov_deg(size: ImageSize, fov_deg: f64) -> Result<f64, CameraError> {
    if !(fov_deg.is_finite() && fov_deg > 0.0 && fov_deg < 180.0) {
        return Err(CameraError::InvalidFov { fov_deg });
    }
    Ok(size.width as f64 / 2.0 / (fov_deg.to_radians() / 2.0).tan())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fov_round_trip_non_square() {
        let size = ImageSize::new(640, 360);
        let f = focal_px_from_horizontal_fov_deg(size, 60.0).unwrap();
        assert!((f - 320.0 / (30f64.to_radians()).tan()).abs() < 1e-9);
        assert!((horizontal_fov_deg(size, f) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_values() {
        let size = ImageSize::new(4, 3);
        assert!(Intrinsics::from_focal_px(size, 0.0).is_err());
        assert!(Intrinsics::from_focal_px(size, -1.0).is_err());
        assert!(Intrinsics::from_focal_px(size, f64::NAN).is_err());
        assert!(Intrinsics::new(size, 1.0, 1.0, f64::INFINITY, 0.0).is_err());
        assert!(Intrinsics::from_focal_px(ImageSize::new(0, 3), 1.0).is_err());
        assert!(focal_px_from_horizontal_fov_deg(size, 180.0).is_err());
    }

    #[test]
    fn scaling_keeps_centre() {
        let k = Intrinsics::from_focal_px(ImageSize::new(640, 480), 500.0).unwrap();
        let half = k.scaled_to(ImageSize::new(320, 240)).unwrap();
        assert_eq!((half.cx_px, half.cy_px), Intrinsics::centre(half.size));
        assert_eq!(half.fx_px, 250.0);
    }
}
