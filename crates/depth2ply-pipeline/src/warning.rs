//! [`Warning`]: what a caller should know about a conversion that still succeeded.

use std::fmt;

use depth2ply_geometry::exif::{focal_from_exif, NO_EXIF_WARNING};
use depth2ply_geometry::filter::DropReport;
use depth2ply_geometry::photo::Photo;

/// Something worth telling the user about one photo; the conversion went on.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// A fallback or oddity met while loading the photo (EXIF, focal-length rules, colour conversion).
    Photo(String),
    /// Every point was filtered out; the cloud (and its PLY) is empty.
    EmptyCloud {
        /// What the filters dropped.
        report: DropReport,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Photo(text) => f.write_str(text),
            Warning::EmptyCloud { report } => {
                write!(f, "every point was filtered out ({report}); the PLY is empty")
            }
        }
    }
}

/// Whether a photo warning does not matter once the camera is known: why EXIF gave no focal length,
/// or that there is no EXIF at all (the pixels are then used as stored, the usual case for PNG).
pub(crate) fn irrelevant_with_known_camera(photo: &Photo, warning: &str) -> bool {
    warning.starts_with(NO_EXIF_WARNING)
        || focal_from_exif(&photo.exif, photo.size)
            .warnings
            .iter()
            .any(|w| w == warning)
}
