//! EXIF metadata: orientation, and the focal length in pixels that EXIF implies.
//!
//! # What is read
//! [`read_exif`] parses a whole image file (JPEG, PNG, TIFF, WebP, HEIF) and [`read_exif_raw`] a bare
//! EXIF/TIFF block with `kamadak-exif`, in its *continue on error* mode, so that a partly broken block
//! still yields the fields that could be read. Only the tags needed for intrinsics are kept, in
//! [`ExifInfo`]. **Reading never fails**: missing or corrupt EXIF gives an empty [`ExifInfo`] whose
//! [`ExifInfo::warnings`] say what happened.
//!
//! # Orientation
//! [`Orientation`] is the EXIF `Orientation` tag (all 8 values, including the mirrored 2, 4, 5, 7). Pixels
//! are oriented **before anything else** ([`Orientation::apply`]), so every width, height, focal length
//! and principal point in depth2ply refers to the image as it is meant to be displayed.
//!
//! # Focal length rules ([`focal_from_exif`]), in this order
//! `W × H` is the **oriented** size.
//! 1. `FocalLengthIn35mmFilm > 0`: `f_px = f35 · √(W² + H²) / √(36² + 24²)`. The 35 mm equivalent is
//!    defined on the frame diagonal (CIPA DC-008), so this holds for any aspect ratio and is unchanged by
//!    rotation or resizing (not by cropping). Source: COLMAP `Bitmap::ExifFocalLength`, Apple Depth Pro
//!    `load_rgb`. → [`FocalSource::Exif35mm`].
//! 2. `FocalLength` (mm) with `FocalPlaneXResolution` and `FocalPlaneResolutionUnit` (absent = 2 inch,
//!    3 cm, and as COLMAP also 4 mm, 5 µm): `f_px = f_mm · px_per_mm · s`, where `s` corrects for a
//!    resize after capture (below). → [`FocalSource::ExifFocalPlane`].
//! 3. Otherwise no focal length (`None`).
//!
//! A candidate whose horizontal field of view `2·atan(W / (2·f_px))` lies outside
//! [`MIN_PLAUSIBLE_HFOV_DEG`]–[`MAX_PLAUSIBLE_HFOV_DEG`] is skipped with a warning and the next rule is
//! tried.
//!
//! ## Resizes and rotations in rule 2
//! `FocalPlaneXResolution` counts pixels per unit along the x axis of the image *as the camera recorded
//! it*, and `PixelXDimension` is that recorded width. The `Orientation` tag does not touch the stored
//! pixels, so both tags describe the **stored** (pre-orientation) x axis: for orientations 5–8 the stored
//! width is the oriented *height*. Hence `s = stored_width / PixelXDimension`. Pixels are square, so a
//! focal length in pixels is the same along either axis and survives the orientation unchanged.
//! Two cases are recognised by comparing aspect ratios with `PixelYDimension`:
//! - `PixelX × PixelY` matches the stored size transposed: the pixels were rotated by some tool that did
//!   not update the tags; the sensor x axis is now the stored y axis, so `s = stored_height / PixelX`.
//! - neither aspect matches: the image was probably cropped, which does not change the focal length in
//!   pixels, but a resize cannot be ruled out; `s = stored_width / PixelX` is kept and a warning says so.
//!
//! # No sensor-width table
//! [`FocalSource::ExifSensorTable`] is never produced here. A `make/model → sensor width` table (COLMAP,
//! openMVG) cannot be rebuilt honestly from public data inside this project, so `Make`/`Model` are only
//! read for reporting.
//!
//! # Warnings
//! Every fallback or oddity adds one human-readable sentence to a `warnings` vector. The library never
//! prints them; the CLI decides.

use std::io::Cursor;

use image::{ImageBuffer, Pixel};

use crate::camera::{horizontal_fov_deg, FocalLength, FocalSource, ImageSize};

/// How the warning for a photo without readable EXIF starts (callers that know the camera anyway can
/// leave it out).
pub const NO_EXIF_WARNING: &str = "no EXIF metadata";

/// Smallest horizontal field of view (degrees) accepted from EXIF; narrower means a bogus focal length.
pub const MIN_PLAUSIBLE_HFOV_DEG: f64 = 5.0;
/// Largest horizontal field of view (degrees) accepted from EXIF; wider is not a pinhole camera.
pub const MAX_PLAUSIBLE_HFOV_DEG: f64 = 170.0;

/// Diagonal of the 36 mm × 24 mm full frame, `√(36² + 24²) ≈ 43.27` mm.
const FULL_FRAME_DIAGONAL_MM: f64 = 43.266_615_305_567_87;

/// Relative tolerance when comparing aspect ratios of `PixelX/YDimension` and the stored image.
const ASPECT_TOLERANCE: f64 = 0.01;

/// The EXIF `Orientation` tag (0x0112): how the stored pixels must be transformed for display.
///
/// The EXIF specification defines each value by where the stored 0th row and 0th column end up on the
/// displayed image. Variant names say which transform of the stored image gives the displayed one.
///
/// | value | stored row 0 | stored column 0 | variant |
/// |---|---|---|---|
/// | 1 | top | left | [`Normal`](Self::Normal) |
/// | 2 | top | right | [`MirrorHorizontal`](Self::MirrorHorizontal) |
/// | 3 | bottom | right | [`Rotate180`](Self::Rotate180) |
/// | 4 | bottom | left | [`MirrorVertical`](Self::MirrorVertical) |
/// | 5 | left | top | [`Transpose`](Self::Transpose) |
/// | 6 | right | top | [`Rotate90Cw`](Self::Rotate90Cw) |
/// | 7 | right | bottom | [`Transverse`](Self::Transverse) |
/// | 8 | left | bottom | [`Rotate90Ccw`](Self::Rotate90Ccw) |
///
/// ```
/// use depth2ply_geometry::exif::Orientation;
/// use depth2ply_geometry::ImageSize;
/// let o = Orientation::from_exif(6).unwrap();
/// assert_eq!(o, Orientation::Rotate90Cw);
/// assert!(o.swaps_axes());
/// assert_eq!(o.oriented_size(ImageSize::new(4000, 3000)), ImageSize::new(3000, 4000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Orientation {
    /// 1: stored as displayed.
    #[default]
    Normal,
    /// 2: mirror left–right.
    MirrorHorizontal,
    /// 3: rotate by 180°.
    Rotate180,
    /// 4: mirror top–bottom.
    MirrorVertical,
    /// 5: transpose (mirror about the main diagonal: stored rows become displayed columns).
    Transpose,
    /// 6: rotate 90° clockwise.
    Rotate90Cw,
    /// 7: transverse (mirror about the anti-diagonal).
    Transverse,
    /// 8: rotate 90° counter-clockwise.
    Rotate90Ccw,
}

impl Orientation {
    /// All eight orientations, in EXIF order 1–8.
    pub const ALL: [Orientation; 8] = [
        Orientation::Normal,
        Orientation::MirrorHorizontal,
        Orientation::Rotate180,
        Orientation::MirrorVertical,
        Orientation::Transpose,
        Orientation::Rotate90Cw,
        Orientation::Transverse,
        Orientation::Rotate90Ccw,
    ];

    /// The orientation for an EXIF tag value 1–8, or `None` for any other value.
    pub const fn from_exif(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Normal),
            2 => Some(Self::MirrorHorizontal),
            3 => Some(Self::Rotate180),
            4 => Some(Self::MirrorVertical),
            5 => Some(Self::Transpose),
            6 => Some(Self::Rotate90Cw),
            7 => Some(Self::Transverse),
            8 => Some(Self::Rotate90Ccw),
            _ => None,
        }
    }

    /// The EXIF tag value, 1–8.
    pub const fn as_u16(&self) -> u16 {
        match self {
            Self::Normal => 1,
            Self::MirrorHorizontal => 2,
            Self::Rotate180 => 3,
            Self::MirrorVertical => 4,
            Self::Transpose => 5,
            Self::Rotate90Cw => 6,
            Self::Transverse => 7,
            Self::Rotate90Ccw => 8,
        }
    }

    /// Whether width and height are exchanged by this orientation (EXIF values 5–8).
    pub const fn swaps_axes(&self) -> bool {
        matches!(
            self,
            Self::Transpose | Self::Rotate90Cw | Self::Transverse | Self::Rotate90Ccw
        )
    }

    /// Whether the orientation includes a mirror (EXIF values 2, 4, 5, 7).
    pub const fn is_mirrored(&self) -> bool {
        matches!(
            self,
            Self::MirrorHorizontal | Self::MirrorVertical | Self::Transpose | Self::Transverse
        )
    }

    /// Short human-readable description, e.g. `"rotate 90° clockwise"`.
    pub const fn description(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::MirrorHorizontal => "mirror horizontal",
            Self::Rotate180 => "rotate 180°",
            Self::MirrorVertical => "mirror vertical",
            Self::Transpose => "transpose (mirror horizontal, rotate 270° clockwise)",
            Self::Rotate90Cw => "rotate 90° clockwise",
            Self::Transverse => "transverse (mirror horizontal, rotate 90° clockwise)",
            Self::Rotate90Ccw => "rotate 90° counter-clockwise",
        }
    }

    /// Size of the displayed image for a stored image of `stored` size.
    pub const fn oriented_size(&self, stored: ImageSize) -> ImageSize {
        if self.swaps_axes() {
            stored.transposed()
        } else {
            stored
        }
    }

    /// Size of the stored image for a displayed image of `oriented` size (the inverse of
    /// [`oriented_size`](Self::oriented_size); the same swap).
    pub const fn stored_size(&self, oriented: ImageSize) -> ImageSize {
        self.oriented_size(oriented)
    }

    /// The same orientation as the `image` crate's type.
    pub const fn to_image_orientation(&self) -> image::metadata::Orientation {
        use image::metadata::Orientation as O;
        match self {
            Self::Normal => O::NoTransforms,
            Self::MirrorHorizontal => O::FlipHorizontal,
            Self::Rotate180 => O::Rotate180,
            Self::MirrorVertical => O::FlipVertical,
            Self::Transpose => O::Rotate90FlipH,
            Self::Rotate90Cw => O::Rotate90,
            Self::Transverse => O::Rotate270FlipH,
            Self::Rotate90Ccw => O::Rotate270,
        }
    }

    /// Transforms stored pixels into displayed pixels (any pixel type).
    ///
    /// Mirrors and the 180° turn work in place; the others allocate one new buffer.
    /// The mapping is checked against the EXIF definition table for all eight values in the tests.
    ///
    /// ```
    /// use depth2ply_geometry::exif::Orientation;
    /// // 2×1 image [a b]: rotating 90° clockwise gives the 1×2 column [a; b].
    /// let img = image::GrayImage::from_raw(2, 1, vec![10, 20]).unwrap();
    /// let out = Orientation::Rotate90Cw.apply(img);
    /// assert_eq!((out.width(), out.height()), (1, 2));
    /// assert_eq!(out.into_raw(), vec![10, 20]);
    /// ```
    pub fn apply<P>(&self, mut image: ImageBuffer<P, Vec<P::Subpixel>>) -> ImageBuffer<P, Vec<P::Subpixel>>
    where
        P: Pixel + 'static,
    {
        use image::imageops;
        match self {
            Self::Normal => image,
            Self::MirrorHorizontal => {
                imageops::flip_horizontal_in_place(&mut image);
                image
            }
            Self::Rotate180 => {
                imageops::rotate180_in_place(&mut image);
                image
            }
            Self::MirrorVertical => {
                imageops::flip_vertical_in_place(&mut image);
                image
            }
            Self::Transpose => {
                let mut out = imageops::rotate90(&image);
                imageops::flip_horizontal_in_place(&mut out);
                out
            }
            Self::Rotate90Cw => imageops::rotate90(&image),
            Self::Transverse => {
                let mut out = imageops::rotate270(&image);
                imageops::flip_horizontal_in_place(&mut out);
                out
            }
            Self::Rotate90Ccw => imageops::rotate270(&image),
        }
    }
}

impl std::fmt::Display for Orientation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.as_u16(), self.description())
    }
}

/// The EXIF fields depth2ply uses, as found in the file (not yet turned into a focal length).
///
/// Numeric fields are `None` when the tag is absent or unreadable (a zero denominator, a wrong type);
/// unreadable ones also add a warning. Values of zero are kept: EXIF uses 0 for "unknown", and
/// [`focal_from_exif`] reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifInfo {
    /// Whether an EXIF block was found and at least partly parsed.
    pub present: bool,
    /// `Orientation` (0x0112); `None` when absent or not 1–8.
    pub orientation: Option<Orientation>,
    /// `FocalLengthIn35mmFilm` (0xA405), millimetres on a 36 × 24 mm frame; 0 means unknown.
    pub focal_length_in_35mm_film_mm: Option<u32>,
    /// `FocalLength` (0x920A), the physical focal length in millimetres.
    pub focal_length_mm: Option<f64>,
    /// `FocalPlaneXResolution` (0xA20E), pixels per `FocalPlaneResolutionUnit` along the stored x axis.
    pub focal_plane_x_resolution: Option<f64>,
    /// `FocalPlaneResolutionUnit` (0xA210) code as stored: 2 inch, 3 cm (EXIF); 4 mm, 5 µm (TIFF/EP).
    /// `None` when absent, in which case EXIF's default, inch, applies.
    pub focal_plane_resolution_unit: Option<u32>,
    /// `PixelXDimension` (0xA002): width of the image as recorded, in pixels (stored, pre-orientation).
    pub pixel_x_dimension: Option<u32>,
    /// `PixelYDimension` (0xA003): height of the image as recorded, in pixels (stored, pre-orientation).
    pub pixel_y_dimension: Option<u32>,
    /// `Make` (0x010F), trimmed.
    pub make: Option<String>,
    /// `Model` (0x0110), trimmed.
    pub model: Option<String>,
    /// What went wrong while reading, one sentence each.
    pub warnings: Vec<String>,
}

impl ExifInfo {
    /// The orientation to apply: the tag's value, or [`Orientation::Normal`] when absent or invalid.
    pub fn orientation(&self) -> Orientation {
        self.orientation.unwrap_or_default()
    }

    /// `"Make Model"` for display (the make is not repeated when the model already starts with it), or
    /// `None` when neither is present.
    pub fn camera_name(&self) -> Option<String> {
        match (&self.make, &self.model) {
            (Some(make), Some(model)) if model.to_lowercase().starts_with(&make.to_lowercase()) => {
                Some(model.clone())
            }
            (Some(make), Some(model)) => Some(format!("{make} {model}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }
}

/// Reads the EXIF fields from a whole image file held in memory (JPEG, PNG, TIFF, WebP, HEIF/HEIC/AVIF).
///
/// Never fails: without usable EXIF the result has `present == false` and a warning.
///
/// ```
/// use depth2ply_geometry::exif::read_exif;
/// let info = read_exif(b"not an image");
/// assert!(!info.present);
/// assert_eq!(info.warnings.len(), 1);
/// ```
pub fn read_exif(file_bytes: &[u8]) -> ExifInfo {
    let result = ::exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(&mut Cursor::new(file_bytes));
    info_from_result(result)
}

/// Reads the EXIF fields from a bare EXIF block: a TIFF header and IFDs, optionally preceded by the
/// `"Exif\0\0"` identifier of a JPEG APP1 segment. Never fails (see [`read_exif`]).
pub fn read_exif_raw(block: &[u8]) -> ExifInfo {
    let tiff = block.strip_prefix(b"Exif\0\0").unwrap_or(block);
    let result = ::exif::Reader::new()
        .continue_on_error(true)
        .read_raw(tiff.to_vec());
    info_from_result(result)
}

fn info_from_result(result: Result<::exif::Exif, ::exif::Error>) -> ExifInfo {
    let mut warnings = Vec::new();
    let parsed = result.or_else(|err| {
        err.distill_partial_result(|errors| {
            let mut list: Vec<String> = errors.iter().take(3).map(ToString::to_string).collect();
            if errors.len() > 3 {
                list.push(format!("{} more", errors.len() - 3));
            }
            warnings.push(format!(
                "the EXIF block is partly corrupt ({}); using the fields that could be read",
                list.join("; ")
            ));
        })
    });
    match parsed {
        Ok(exif) => {
            let mut info = info_from_exif(&exif, &mut warnings);
            info.warnings = warnings;
            info
        }
        Err(err) => {
            let why = match err {
                ::exif::Error::NotFound(_) => "the file has no EXIF block".to_string(),
                ::exif::Error::InvalidFormat("Unknown image format") => {
                    "this file format carries no EXIF that depth2ply can read".to_string()
                }
                other => format!("the EXIF block could not be read ({other})"),
            };
            warnings.push(format!(
                "{NO_EXIF_WARNING}: {why}; orientation is taken as normal and the focal length must come \
                 from elsewhere"
            ));
            ExifInfo {
                warnings,
                ..ExifInfo::default()
            }
        }
    }
}

fn info_from_exif(exif: &::exif::Exif, warnings: &mut Vec<String>) -> ExifInfo {
    use ::exif::Tag;
    let orientation = uint_field(exif, Tag::Orientation, warnings).and_then(|value| {
        let parsed = Orientation::from_exif(value);
        if parsed.is_none() {
            warnings.push(format!(
                "EXIF Orientation is {value}, which is not one of 1–8; treating the image as not rotated"
            ));
        }
        parsed
    });
    ExifInfo {
        present: true,
        orientation,
        focal_length_in_35mm_film_mm: uint_field(exif, Tag::FocalLengthIn35mmFilm, warnings),
        focal_length_mm: rational_field(exif, Tag::FocalLength, warnings),
        focal_plane_x_resolution: rational_field(exif, Tag::FocalPlaneXResolution, warnings),
        focal_plane_resolution_unit: uint_field(exif, Tag::FocalPlaneResolutionUnit, warnings),
        pixel_x_dimension: uint_field(exif, Tag::PixelXDimension, warnings),
        pixel_y_dimension: uint_field(exif, Tag::PixelYDimension, warnings),
        make: ascii_field(exif, Tag::Make),
        model: ascii_field(exif, Tag::Model),
        warnings: Vec::new(),
    }
}

fn uint_field(exif: &::exif::Exif, tag: ::exif::Tag, warnings: &mut Vec<String>) -> Option<u32> {
    let field = exif.get_field(tag, ::exif::In::PRIMARY)?;
    let value = field.value.get_uint(0);
    if value.is_none() {
        warnings.push(format!(
            "EXIF {tag} is not an unsigned integer ({}); ignoring it",
            short_debug(&field.value)
        ));
    }
    value
}

fn rational_field(exif: &::exif::Exif, tag: ::exif::Tag, warnings: &mut Vec<String>) -> Option<f64> {
    use ::exif::Value;
    let field = exif.get_field(tag, ::exif::In::PRIMARY)?;
    let ratio = match &field.value {
        // i64 holds both the unsigned and the signed 32-bit rationals exactly.
        Value::Rational(v) => v.first().map(|r| (i64::from(r.num), i64::from(r.denom))),
        Value::SRational(v) => v.first().map(|r| (i64::from(r.num), i64::from(r.denom))),
        other => other.get_uint(0).map(|n| (i64::from(n), 1)),
    };
    match ratio {
        None => {
            warnings.push(format!(
                "EXIF {tag} is not a number ({}); ignoring it",
                short_debug(&field.value)
            ));
            None
        }
        Some((num, 0)) => {
            warnings.push(format!("EXIF {tag} is {num}/0 (zero denominator); ignoring it"));
            None
        }
        Some((num, denom)) => Some(num as f64 / denom as f64),
    }
}

/// `Debug` of a value, cut to a readable length (an `Undefined` blob can be kilobytes).
fn short_debug(value: &::exif::Value) -> String {
    const MAX_CHARS: usize = 60;
    let text = format!("{value:?}");
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        format!("{}…", text.chars().take(MAX_CHARS).collect::<String>())
    }
}

fn ascii_field(exif: &::exif::Exif, tag: ::exif::Tag) -> Option<String> {
    let field = exif.get_field(tag, ::exif::In::PRIMARY)?;
    let ::exif::Value::Ascii(parts) = &field.value else {
        return None;
    };
    let text = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let text = text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// The focal length implied by EXIF, with what happened along the way.
#[derive(Debug, Clone, PartialEq)]
pub struct ExifFocal {
    /// The focal length in pixels for the oriented image, or `None` when no rule gave a plausible value.
    pub focal: Option<FocalLength>,
    /// Fallbacks and oddities, one sentence each.
    pub warnings: Vec<String>,
}

/// Applies the focal-length rules (module docs) to `info` for an image whose size **after applying
/// `info.orientation()`** is `oriented_size`.
///
/// ```
/// use depth2ply_geometry::exif::{focal_from_exif, ExifInfo};
/// use depth2ply_geometry::{FocalSource, ImageSize};
/// let info = ExifInfo { present: true, focal_length_in_35mm_film_mm: Some(26), ..Default::default() };
/// let size = ImageSize::new(4032, 3024);
/// let f = focal_from_exif(&info, size).focal.unwrap();
/// assert_eq!(f.source(), FocalSource::Exif35mm);
/// // f35 · √(W² + H²) / √(36² + 24²)
/// let expected = 26.0 * (4032f64.powi(2) + 3024f64.powi(2)).sqrt() / (36f64.powi(2) + 24f64.powi(2)).sqrt();
/// assert!((f.focal_px() - expected).abs() < 1e-9);
/// ```
pub fn focal_from_exif(info: &ExifInfo, oriented_size: ImageSize) -> ExifFocal {
    let mut warnings = Vec::new();
    if oriented_size.width == 0 || oriented_size.height == 0 {
        warnings.push(format!(
            "cannot derive a focal length for an empty image ({oriented_size})"
        ));
        return ExifFocal {
            focal: None,
            warnings,
        };
    }
    if !info.present {
        return ExifFocal {
            focal: None,
            warnings,
        };
    }
    let stored_size = info.orientation().stored_size(oriented_size);
    let recorded = recorded_size_relation(info, stored_size);

    let mut skipped: Vec<String> = Vec::new();
    if let Some(focal) = rule_35mm(info, oriented_size, &recorded, &mut warnings, &mut skipped) {
        return ExifFocal {
            focal: Some(focal),
            warnings,
        };
    }
    if let Some(focal) = rule_focal_plane(info, oriented_size, &recorded, &mut warnings, &mut skipped) {
        warnings.push(format!(
            "EXIF FocalLengthIn35mmFilm unusable ({}); used FocalLength × FocalPlaneXResolution instead",
            skipped.first().map_or("absent", String::as_str)
        ));
        return ExifFocal {
            focal: Some(focal),
            warnings,
        };
    }
    warnings.push(format!(
        "no usable focal length in EXIF ({}); it must come from the user or the model",
        skipped.join("; ")
    ));
    ExifFocal {
        focal: None,
        warnings,
    }
}

/// How the recorded `PixelX/YDimension` relate to the stored image.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recorded {
    /// No `PixelXDimension` (or zero).
    Unknown,
    /// Same aspect ratio (or no `PixelYDimension`): a pure resize by `scale` (1 = untouched).
    Resized { scale: f64 },
    /// The aspect matches the stored size transposed: pixels rotated without updating the tags.
    Transposed { scale: f64 },
    /// Different aspect ratio: probably cropped; `scale` is `stored_width / PixelXDimension`.
    Cropped { scale: f64 },
}

fn recorded_size_relation(info: &ExifInfo, stored: ImageSize) -> Recorded {
    let Some(px) = info.pixel_x_dimension.filter(|&v| v > 0) else {
        return Recorded::Unknown;
    };
    let (w, h, px) = (f64::from(stored.width), f64::from(stored.height), f64::from(px));
    let Some(py) = info.pixel_y_dimension.filter(|&v| v > 0).map(f64::from) else {
        return Recorded::Resized { scale: w / px };
    };
    let close = |a: f64, b: f64| (a - b).abs() <= ASPECT_TOLERANCE * a.max(b);
    let aspect = px / py;
    if close(aspect, w / h) {
        Recorded::Resized { scale: w / px }
    } else if close(aspect, h / w) {
        Recorded::Transposed { scale: h / px }
    } else {
        Recorded::Cropped { scale: w / px }
    }
}

/// Checks the plausibility of a candidate; returns it or records why it was skipped.
fn plausible(
    focal_px: f64,
    oriented_size: ImageSize,
    what: &str,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> bool {
    let fov_deg = horizontal_fov_deg(oriented_size, focal_px);
    if focal_px.is_finite()
        && focal_px > 0.0
        && (MIN_PLAUSIBLE_HFOV_DEG..=MAX_PLAUSIBLE_HFOV_DEG).contains(&fov_deg)
    {
        return true;
    }
    let why = format!(
        "{what} gives f = {focal_px:.1} px, a horizontal field of view of {fov_deg:.1}° on {oriented_size} px, \
         outside the plausible {MIN_PLAUSIBLE_HFOV_DEG}°–{MAX_PLAUSIBLE_HFOV_DEG}°"
    );
    warnings.push(format!("{why}; ignoring it"));
    skipped.push(why);
    false
}

fn rule_35mm(
    info: &ExifInfo,
    oriented_size: ImageSize,
    recorded: &Recorded,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> Option<FocalLength> {
    let f35 = match info.focal_length_in_35mm_film_mm {
        None => {
            skipped.push("FocalLengthIn35mmFilm absent".into());
            return None;
        }
        Some(0) => {
            skipped.push("FocalLengthIn35mmFilm is 0 (unknown)".into());
            return None;
        }
        Some(f35) => f64::from(f35),
    };
    let focal_px = f35 * oriented_size.diagonal_px() / FULL_FRAME_DIAGONAL_MM;
    let what = format!("EXIF FocalLengthIn35mmFilm = {f35} mm");
    if !plausible(focal_px, oriented_size, &what, warnings, skipped) {
        return None;
    }
    if let Recorded::Cropped { .. } = recorded {
        warnings.push(format!(
            "{}; the 35 mm equivalent assumes the full frame, so the focal length may be off",
            cropped_sentence(info, oriented_size, info.orientation())
        ));
    }
    // `plausible` has checked that it is finite and > 0.
    FocalLength::new(focal_px, FocalSource::Exif35mm).ok()
}

fn rule_focal_plane(
    info: &ExifInfo,
    oriented_size: ImageSize,
    recorded: &Recorded,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> Option<FocalLength> {
    let f_mm = match info.focal_length_mm {
        None => {
            skipped.push("FocalLength absent".into());
            return None;
        }
        Some(f) if !(f.is_finite() && f > 0.0) => {
            skipped.push(format!("FocalLength is {f} mm"));
            return None;
        }
        Some(f) => f,
    };
    let resolution = match info.focal_plane_x_resolution {
        None => {
            skipped.push(format!(
                "FocalLength = {f_mm} mm but FocalPlaneXResolution absent"
            ));
            return None;
        }
        Some(r) if !(r.is_finite() && r > 0.0) => {
            skipped.push(format!("FocalPlaneXResolution is {r}"));
            return None;
        }
        Some(r) => r,
    };
    let unit = info.focal_plane_resolution_unit.unwrap_or(2);
    let Some(mm_per_unit) = mm_per_resolution_unit(unit) else {
        skipped.push(format!(
            "FocalPlaneResolutionUnit is {unit}, not one of 2 (inch), 3 (cm), 4 (mm), 5 (µm)"
        ));
        return None;
    };
    let px_per_mm = resolution / mm_per_unit;
    let scale = match *recorded {
        Recorded::Unknown => 1.0,
        Recorded::Resized { scale } | Recorded::Transposed { scale } | Recorded::Cropped { scale } => scale,
    };
    let focal_px = f_mm * px_per_mm * scale;
    let what = format!(
        "EXIF FocalLength = {f_mm} mm × FocalPlaneXResolution = {resolution} px per {} (× resize {scale:.4})",
        unit_name(unit)
    );
    if !plausible(focal_px, oriented_size, &what, warnings, skipped) {
        return None;
    }
    if info.focal_plane_resolution_unit.is_none() {
        warnings.push("EXIF FocalPlaneResolutionUnit absent; using the EXIF default, inch".into());
    }
    let orientation = info.orientation();
    let stored = orientation.stored_size(oriented_size);
    let px = info.pixel_x_dimension.unwrap_or(0);
    match *recorded {
        Recorded::Resized { scale } if scale != 1.0 => warnings.push(format!(
            "the image was resized after capture (EXIF PixelXDimension {px} px, stored width {} px); \
             focal length scaled by {scale:.4}",
            stored.width
        )),
        Recorded::Transposed { .. } => warnings.push(format!(
            "EXIF PixelX/YDimension {px}×{} match the stored image {stored} transposed: the pixels seem to \
             have been rotated without updating the tags; the focal-plane resolution is applied to the \
             stored height",
            info.pixel_y_dimension.unwrap_or(0)
        )),
        Recorded::Cropped { scale } => warnings.push(format!(
            "{}; the focal-plane resolution was scaled by stored width / PixelXDimension = {scale:.4}, \
             which is wrong if the image was cropped rather than resized",
            cropped_sentence(info, oriented_size, orientation)
        )),
        Recorded::Resized { .. } | Recorded::Unknown => {}
    }
    FocalLength::new(focal_px, FocalSource::ExifFocalPlane).ok()
}

fn cropped_sentence(info: &ExifInfo, oriented_size: ImageSize, orientation: Orientation) -> String {
    format!(
        "EXIF PixelX/YDimension {}×{} have a different aspect ratio than the stored image {}: it was \
         probably cropped after capture",
        info.pixel_x_dimension.unwrap_or(0),
        info.pixel_y_dimension.unwrap_or(0),
        orientation.stored_size(oriented_size)
    )
}

/// Millimetres per `FocalPlaneResolutionUnit` code (EXIF 2/3, TIFF/EP 4/5 as in COLMAP).
fn mm_per_resolution_unit(unit: u32) -> Option<f64> {
    match unit {
        2 => Some(25.4),
        3 => Some(10.0),
        4 => Some(1.0),
        5 => Some(0.001),
        _ => None,
    }
}

fn unit_name(unit: u32) -> &'static str {
    match unit {
        2 => "inch",
        3 => "cm",
        4 => "mm",
        5 => "µm",
        _ => "unknown unit",
    }
}
