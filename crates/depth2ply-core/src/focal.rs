//! [`FocalLength`] and where it came from.

use std::fmt;

/// Where a focal length came from. Reported in summaries, PLY headers and `depth2ply info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FocalSource {
    /// Given by the user (`--intrinsics`, `--focal-px`, `--fov-deg`, or the library caller).
    User,
    /// EXIF `FocalLengthIn35mmFilm`, converted on the diagonal.
    Exif35mm,
    /// EXIF `FocalLength` with `FocalPlaneXResolution` / `FocalPlaneResolutionUnit`.
    ExifFocalPlane,
    /// EXIF `FocalLength` with a sensor-width table looked up by make and model.
    ExifSensorTable,
    /// Predicted by the network's field-of-view head.
    Model,
}

impl FocalSource {
    /// Stable machine-readable name, used in JSON output and PLY header comments.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FocalSource::User => "user",
            FocalSource::Exif35mm => "exif-35mm",
            FocalSource::ExifFocalPlane => "exif-focal-plane",
            FocalSource::ExifSensorTable => "exif-sensor-table",
            FocalSource::Model => "model",
        }
    }
}

impl fmt::Display for FocalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A focal length that is zero, negative, NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid focal length {focal_px} px ({from}): it must be finite and > 0 pixels")]
pub struct InvalidFocalLength {
    /// The rejected value in pixels.
    pub focal_px: f64,
    /// Where it came from (not named `source`: that name is `thiserror`'s cause).
    pub from: FocalSource,
}

/// A focal length in pixels (square pixels: the same for x and y), finite and `> 0`, together with its
/// provenance.
///
/// ```
/// use depth2ply_core::{FocalLength, FocalSource};
/// let f = FocalLength::new(1450.0, FocalSource::User)?;
/// assert_eq!((f.focal_px(), f.source()), (1450.0, FocalSource::User));
/// assert!(FocalLength::new(f64::NAN, FocalSource::Model).is_err());
/// # Ok::<(), depth2ply_core::InvalidFocalLength>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FocalLength {
    focal_px: f64,
    source: FocalSource,
}

impl FocalLength {
    /// A focal length of `focal_px` pixels from `source`; fails unless it is finite and `> 0`.
    pub fn new(focal_px: f64, source: FocalSource) -> Result<Self, InvalidFocalLength> {
        if focal_px.is_finite() && focal_px > 0.0 {
            Ok(Self { focal_px, source })
        } else {
            Err(InvalidFocalLength {
                focal_px,
                from: source,
            })
        }
    }

    /// The focal length in pixels.
    pub const fn focal_px(&self) -> f64 {
        self.focal_px
    }

    /// Where it came from.
    pub const fn source(&self) -> FocalSource {
        self.source
    }
}
