//! Which camera a photo is back-projected with, and why: a pure function of the user's camera, the
//! EXIF focal length and the image size.
//!
//! The rules, in order (`docs/conventions.md`): the camera the caller gives ([`UserCamera`]), else the
//! focal length EXIF gives (already chosen by `depth2ply_geometry::exif`'s rules), else the network's
//! field-of-view head ([`CameraChoice::AskNetwork`], completed by [`CameraChoice::complete`]).

use depth2ply_geometry::{CameraError, FocalLength, FocalSource, ImageSize, Intrinsics};

/// A camera the user (or the calling program) knows. Sizes refer to the image as displayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserCamera {
    /// All four pinhole values in pixels (`--intrinsics FX,FY,CX,CY`).
    Intrinsics {
        /// Horizontal focal length in pixels.
        fx_px: f64,
        /// Vertical focal length in pixels.
        fy_px: f64,
        /// Principal point x in pixels.
        cx_px: f64,
        /// Principal point y in pixels.
        cy_px: f64,
    },
    /// Square pixels with this focal length in pixels, principal point at the image centre
    /// (`--focal-px`).
    FocalPx(f64),
    /// Square pixels with this horizontal field of view in degrees, edge to edge, principal point at
    /// the image centre (`--fov-deg`).
    HorizontalFovDeg(f64),
}

impl UserCamera {
    /// The intrinsics for an image of `size` (as displayed).
    pub fn intrinsics(&self, size: ImageSize) -> Result<Intrinsics, CameraError> {
        match *self {
            UserCamera::Intrinsics {
                fx_px,
                fy_px,
                cx_px,
                cy_px,
            } => Intrinsics::new(size, fx_px, fy_px, cx_px, cy_px),
            UserCamera::FocalPx(focal_px) => Intrinsics::from_focal_px(size, focal_px),
            UserCamera::HorizontalFovDeg(fov_deg) => Intrinsics::from_horizontal_fov_deg(size, fov_deg),
        }
    }
}

/// A camera whose intrinsics are known, with the focal length handed to the network (the horizontal
/// one: Depth Pro takes one focal length) and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownCamera {
    intrinsics: Intrinsics,
    focal: FocalLength,
}

impl KnownCamera {
    /// The intrinsics used for back-projection.
    pub fn intrinsics(&self) -> &Intrinsics {
        &self.intrinsics
    }

    /// The focal length (`fx`) and its provenance, as reported and given to the network.
    pub fn focal(&self) -> FocalLength {
        self.focal
    }

    /// Square pixels with `focal`, principal point at the centre of an image of `size`.
    fn centred(size: ImageSize, focal: FocalLength) -> Result<Self, CameraError> {
        Ok(Self {
            intrinsics: Intrinsics::from_focal_px(size, focal.focal_px())?,
            focal,
        })
    }
}

/// The camera for one photo: known, or to be predicted by the network's field-of-view head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CameraChoice {
    /// From the user or from EXIF.
    Known(KnownCamera),
    /// Nothing is known: only a network with a FOV head can supply the focal length.
    AskNetwork,
}

/// A camera that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraChoiceError {
    /// The user's values are invalid for this image.
    #[error("invalid camera")]
    User(#[source] CameraError),
    /// EXIF gave a focal length that makes no valid intrinsics.
    #[error("unusable EXIF focal length")]
    Exif(#[source] CameraError),
    /// The network predicted a focal length that makes no valid intrinsics.
    #[error("the network predicted an unusable focal length")]
    Predicted(#[source] CameraError),
}

impl CameraChoice {
    /// Applies the rules: `user` if given, else `exif_focal`, else [`CameraChoice::AskNetwork`].
    ///
    /// ```
    /// use depth2ply_geometry::{FocalLength, FocalSource, ImageSize};
    /// use depth2ply_pipeline::{CameraChoice, UserCamera};
    /// let size = ImageSize::new(640, 480);
    /// let exif = FocalLength::new(500.0, FocalSource::Exif35mm)?;
    /// // The user's camera wins over EXIF; its source is `user`.
    /// let choice = CameraChoice::resolve(Some(&UserCamera::FocalPx(525.0)), Some(exif), size)?;
    /// let CameraChoice::Known(camera) = choice else { unreachable!() };
    /// assert_eq!(camera.focal().source(), FocalSource::User);
    /// // Nothing known: the network must predict the focal length.
    /// assert_eq!(CameraChoice::resolve(None, None, size)?, CameraChoice::AskNetwork);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve(
        user: Option<&UserCamera>,
        exif_focal: Option<FocalLength>,
        size: ImageSize,
    ) -> Result<Self, CameraChoiceError> {
        if let Some(camera) = user {
            let intrinsics = camera.intrinsics(size).map_err(CameraChoiceError::User)?;
            // Valid intrinsics have a finite focal length > 0, so this cannot fail.
            let focal = FocalLength::new(intrinsics.fx_px, FocalSource::User)
                .map_err(|_| CameraChoiceError::User(invalid(&intrinsics)))?;
            return Ok(Self::Known(KnownCamera { intrinsics, focal }));
        }
        match exif_focal {
            Some(focal) => KnownCamera::centred(size, focal)
                .map(Self::Known)
                .map_err(CameraChoiceError::Exif),
            None => Ok(Self::AskNetwork),
        }
    }

    /// The focal length to hand to the network, if known (it then skips its FOV head).
    pub fn known_focal(&self) -> Option<FocalLength> {
        match self {
            Self::Known(camera) => Some(camera.focal),
            Self::AskNetwork => None,
        }
    }

    /// The final camera: the known one, or square pixels with the network's `predicted` focal length
    /// and the principal point at the centre of an image of `size`.
    pub fn complete(self, predicted: FocalLength, size: ImageSize) -> Result<KnownCamera, CameraChoiceError> {
        match self {
            Self::Known(camera) => Ok(camera),
            Self::AskNetwork => KnownCamera::centred(size, predicted).map_err(CameraChoiceError::Predicted),
        }
    }
}

fn invalid(k: &Intrinsics) -> CameraError {
    CameraError::InvalidIntrinsics {
        fx: k.fx_px,
        fy: k.fy_px,
        cx: k.cx_px,
        cy: k.cy_px,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(choice: CameraChoice) -> KnownCamera {
        match choice {
            CameraChoice::Known(camera) => camera,
            CameraChoice::AskNetwork => panic!("expected a known camera"),
        }
    }

    #[test]
    fn user_then_exif_then_network() {
        // Non-square on purpose: the centre is ((W − 1)/2, (H − 1)/2).
        let size = ImageSize::new(64, 48);
        let exif = FocalLength::new(40.0, FocalSource::Exif35mm).unwrap();
        // --fov-deg 90: f = (W/2) / tan(45°) = 32.
        let user = known(
            CameraChoice::resolve(Some(&UserCamera::HorizontalFovDeg(90.0)), Some(exif), size).unwrap(),
        );
        assert!((user.focal().focal_px() - 32.0).abs() < 1e-9);
        assert_eq!(user.focal().source(), FocalSource::User);
        assert_eq!((user.intrinsics().cx_px, user.intrinsics().cy_px), (31.5, 23.5));

        let k = UserCamera::Intrinsics {
            fx_px: 50.0,
            fy_px: 60.0,
            cx_px: 30.0,
            cy_px: 20.0,
        };
        let user = known(CameraChoice::resolve(Some(&k), None, size).unwrap());
        assert_eq!((user.focal().focal_px(), user.intrinsics().fy_px), (50.0, 60.0));

        let from_exif = known(CameraChoice::resolve(None, Some(exif), size).unwrap());
        assert_eq!(from_exif.focal(), exif);
        assert_eq!(from_exif.intrinsics().fy_px, 40.0);

        let ask = CameraChoice::resolve(None, None, size).unwrap();
        assert_eq!(ask.known_focal(), None);
        let predicted = FocalLength::new(70.0, FocalSource::Model).unwrap();
        let done = ask.complete(predicted, size).unwrap();
        assert_eq!(done.focal(), predicted);
        assert_eq!(done.intrinsics().fx_px, 70.0);
        // A known camera is not replaced by the prediction.
        assert_eq!(
            CameraChoice::Known(from_exif).complete(predicted, size).unwrap(),
            from_exif
        );
    }

    #[test]
    fn invalid_cameras_say_whose_they_are() {
        let size = ImageSize::new(64, 48);
        assert!(matches!(
            CameraChoice::resolve(Some(&UserCamera::HorizontalFovDeg(180.0)), None, size),
            Err(CameraChoiceError::User(_))
        ));
        let exif = FocalLength::new(40.0, FocalSource::Exif35mm).unwrap();
        assert!(matches!(
            CameraChoice::resolve(None, Some(exif), ImageSize::new(0, 48)),
            Err(CameraChoiceError::Exif(_))
        ));
    }
}
