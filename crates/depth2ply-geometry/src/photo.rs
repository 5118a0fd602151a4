//! Loading a photo as oriented 8-bit RGB, and reading its metadata without decoding it.
//!
//! [`load_photo`] reads the file **once**, then from the same bytes:
//! 1. reads EXIF ([`crate::exif::read_exif`]; missing or broken EXIF is a warning, never an error);
//! 2. decodes the pixels with the `image` crate (JPEG, PNG, TIFF, WebP, BMP, GIF, …) under
//!    [`PhotoLimits`], refusing truncated files (see below);
//! 3. converts to 8-bit RGB: 16-bit and float samples are scaled to 8 bits, grey is replicated, alpha is
//!    **dropped** (not composited);
//! 4. applies the EXIF orientation to the pixels, before anything else uses them;
//! 5. derives the EXIF focal length from the **oriented** size ([`crate::exif::focal_from_exif`]).
//!
//! [`inspect_photo`] does steps 1, 4 (sizes only) and 5 from the file header, without decoding pixels.
//!
//! # Truncated files
//! The JPEG decoder used by `image` 0.25 (zune-jpeg, non-strict) fills missing image data with grey
//! instead of failing, so a JPEG cut short would silently become a half-grey photo and a wrong point
//! cloud. [`load_photo`] therefore checks the JPEG marker structure first and refuses a file that ends
//! before its end-of-image marker (a few encoders omit that marker; such files are refused too, and
//! re-saving them fixes it). The other decoders report truncation themselves. Corruption *inside* the
//! compressed data of a complete JPEG is still decoded as best the decoder can.
//!
//! HEIC/HEIF and AVIF photos cannot be decoded (no decoder in `image` 0.25 without system libraries);
//! they are reported as [`PhotoError::UnsupportedFormat`] with a hint to convert them.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::camera::{FocalLength, ImageSize};
use crate::exif::{focal_from_exif, read_exif, ExifInfo, Orientation};

/// Resource limits for [`load_photo_with_limits`] and [`inspect_photo_with_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Largest accepted image, in pixels (width · height). Default 100 000 000 (100 megapixels: every
    /// phone and most cameras; a 100 MP RGB image takes 300 MB, its point cloud several GB).
    pub max_pixels: u64,
    /// Largest allocation the decoder may make for the decoded image, in bytes. Default 1 GiB (a
    /// 100 MP image with 16-bit RGBA samples needs 800 MB).
    pub max_decoded_bytes: u64,
    /// Largest accepted file, in bytes. Default 1 GiB. The whole file is read into memory.
    pub max_file_bytes: u64,
}

impl Default for PhotoLimits {
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_decoded_bytes: 1 << 30,
            max_file_bytes: 1 << 30,
        }
    }
}

/// Why a photo could not be loaded. Every message says what went wrong and what to do, and ends with
/// the path.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The file does not exist.
    #[error("photo not found; check the path: {}", .path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read the photo ({source}); check that it is a readable file: {}", .path.display())]
    Io {
        /// The underlying error.
        source: std::io::Error,
        /// The path given.
        path: PathBuf,
    },
    /// The content is not a recognised image format.
    #[error(
        "not a recognised image (supported: JPEG, PNG, TIFF, WebP, BMP, GIF, …); convert it to JPEG or \
         PNG: {}",
        .path.display()
    )]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
    },
    /// A recognised format that cannot be decoded (HEIC/HEIF, AVIF, …).
    #[error("{format} images cannot be decoded by depth2ply; convert it to JPEG or PNG first: {}", .path.display())]
    UnsupportedFormat {
        /// Name of the format.
        format: String,
        /// The path given.
        path: PathBuf,
    },
    /// The file ends before the image data does.
    #[error("the image is truncated ({detail}); copy or export the file again: {}", .path.display())]
    Truncated {
        /// What is missing.
        detail: String,
        /// The path given.
        path: PathBuf,
    },
    /// The decoder rejected the data.
    #[error("the image is corrupt or cannot be decoded ({source}); re-export it as JPEG or PNG: {}", .path.display())]
    Decode {
        /// The decoder's error.
        source: image::ImageError,
        /// The path given.
        path: PathBuf,
    },
    /// The image, its decoded buffer or the file exceeds a [`PhotoLimits`] value.
    #[error("the photo is too large: {detail}; downscale it (e.g. to 4096 px on the long side): {}", .path.display())]
    TooLarge {
        /// Which limit, with the values.
        detail: String,
        /// The path given.
        path: PathBuf,
    },
    /// Width or height is zero.
    #[error("the image is empty ({size}); export it again: {}", .path.display())]
    Empty {
        /// The decoded size.
        size: ImageSize,
        /// The path given.
        path: PathBuf,
    },
}

/// A decoded photo, oriented for display, with its EXIF-derived metadata.
#[derive(Debug, Clone)]
pub struct Photo {
    /// Pixels, 8-bit RGB, **after** applying the EXIF orientation.
    pub image: RgbImage,
    /// Size of `image` (oriented).
    pub size: ImageSize,
    /// Size of the pixels as stored in the file (before orientation).
    pub stored_size: ImageSize,
    /// The EXIF orientation that was applied ([`Orientation::Normal`] without EXIF).
    pub orientation: Orientation,
    /// Focal length for the oriented image from EXIF, if any rule gave a plausible value.
    pub exif_focal: Option<FocalLength>,
    /// The EXIF fields that were read (make, model, raw focal tags).
    pub exif: ExifInfo,
    /// The file format, detected from the content.
    pub format: ImageFormat,
    /// Fallbacks and oddities met while loading (EXIF, focal rules, colour conversion), one sentence
    /// each. Never printed by the library.
    pub warnings: Vec<String>,
}

/// A photo's metadata, read without decoding its pixels (for `depth2ply info`).
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoInfo {
    /// Displayed size, after the EXIF orientation.
    pub size: ImageSize,
    /// Size of the pixels as stored in the file (before orientation).
    pub stored_size: ImageSize,
    /// The EXIF orientation ([`Orientation::Normal`] without EXIF).
    pub orientation: Orientation,
    /// Focal length for the oriented image from EXIF, if any rule gave a plausible value.
    pub exif_focal: Option<FocalLength>,
    /// The EXIF fields that were read.
    pub exif: ExifInfo,
    /// The file format, detected from the content.
    pub format: ImageFormat,
    /// Colour type as stored (before conversion to 8-bit RGB).
    pub color_type: ColorType,
    /// Fallbacks and oddities, one sentence each.
    pub warnings: Vec<String>,
}

/// Loads `path` as oriented 8-bit RGB with the default [`PhotoLimits`].
///
/// ```no_run
/// let photo = depth2ply_geometry::photo::load_photo("photo.jpg")?;
/// println!("{} px, focal {:?}", photo.size, photo.exif_focal);
/// # Ok::<(), depth2ply_geometry::photo::PhotoError>(())
/// ```
pub fn load_photo(path: impl AsRef<Path>) -> Result<Photo, PhotoError> {
    load_photo_with_limits(path, &PhotoLimits::default())
}

/// Loads `path` as oriented 8-bit RGB, refusing images beyond `limits`.
pub fn load_photo_with_limits(path: impl AsRef<Path>, limits: &PhotoLimits) -> Result<Photo, PhotoError> {
    let path = path.as_ref();
    let bytes = read_file(path, limits)?;
    let header = read_header(&bytes, path, limits)?;
    let Header { info, decoder } = header;
    if let Some(detail) = jpeg_truncation_of(info.format, &bytes) {
        return Err(PhotoError::Truncated {
            detail,
            path: path.to_path_buf(),
        });
    }
    let decoded =
        DynamicImage::from_decoder(decoder).map_err(|err| decode_error(err, info.format, path, limits))?;
    let PhotoInfo {
        size,
        stored_size,
        orientation,
        exif_focal,
        exif,
        format,
        color_type,
        mut warnings,
    } = info;
    let stored = to_rgb8(decoded, color_type, &mut warnings);
    let image = orientation.apply(stored);
    // Both come from the same header; a mismatch would be a decoder bug worth failing loudly on.
    let decoded_size = ImageSize::new(image.width(), image.height());
    if decoded_size != size {
        return Err(PhotoError::Decode {
            source: image::ImageError::Decoding(image::error::DecodingError::new(
                format.into(),
                format!("decoded size {decoded_size} differs from the header size {size}"),
            )),
            path: path.to_path_buf(),
        });
    }
    Ok(Photo {
        image,
        size,
        stored_size,
        orientation,
        exif_focal,
        exif,
        format,
        warnings,
    })
}

/// Reads the metadata of `path` (sizes, orientation, EXIF focal length) without decoding its pixels,
/// with the default [`PhotoLimits`].
///
/// A JPEG that [`load_photo`] would refuse as truncated gets a warning here instead of an error, so that
/// `depth2ply info` can still show its metadata.
pub fn inspect_photo(path: impl AsRef<Path>) -> Result<PhotoInfo, PhotoError> {
    inspect_photo_with_limits(path, &PhotoLimits::default())
}

/// [`inspect_photo`] with explicit limits.
pub fn inspect_photo_with_limits(
    path: impl AsRef<Path>,
    limits: &PhotoLimits,
) -> Result<PhotoInfo, PhotoError> {
    let path = path.as_ref();
    let bytes = read_file(path, limits)?;
    let Header { mut info, .. } = read_header(&bytes, path, limits)?;
    if let Some(detail) = jpeg_truncation_of(info.format, &bytes) {
        info.warnings
            .push(format!("the image is truncated ({detail}); loading it will fail"));
    }
    Ok(info)
}

struct Header<D> {
    info: PhotoInfo,
    decoder: D,
}

fn read_file(path: &Path, limits: &PhotoLimits) -> Result<Vec<u8>, PhotoError> {
    let io_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => PhotoError::NotFound {
            path: path.to_path_buf(),
        },
        _ => PhotoError::Io {
            source,
            path: path.to_path_buf(),
        },
    };
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    if metadata.is_dir() {
        return Err(PhotoError::Io {
            source: std::io::Error::other("it is a directory"),
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > limits.max_file_bytes {
        return Err(PhotoError::TooLarge {
            detail: format!(
                "the file has {} bytes, more than the limit of {} bytes",
                metadata.len(),
                limits.max_file_bytes
            ),
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(io_error)
}

/// Format detection, EXIF, header decoding and the size limits: everything short of decoding pixels.
fn read_header<'a>(
    bytes: &'a [u8],
    path: &Path,
    limits: &PhotoLimits,
) -> Result<Header<impl ImageDecoder + 'a>, PhotoError> {
    if let Some(format) = heif_brand(bytes) {
        return Err(PhotoError::UnsupportedFormat {
            format: format.to_string(),
            path: path.to_path_buf(),
        });
    }
    // Content first; the extension only for TGA, the one decodable format without a signature.
    let format = image::guess_format(bytes)
        .ok()
        .or_else(|| {
            ImageFormat::from_path(path)
                .ok()
                .filter(|f| *f == ImageFormat::Tga)
        })
        .ok_or_else(|| PhotoError::UnknownFormat {
            path: path.to_path_buf(),
        })?;

    let exif = read_exif(bytes);
    let mut warnings = exif.warnings.clone();

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(image_limits);
    let decoder = reader
        .into_decoder()
        .map_err(|err| match jpeg_truncation_of(format, bytes) {
            // A JPEG cut inside its headers: say so rather than relay the decoder's wording.
            Some(detail) => PhotoError::Truncated {
                detail,
                path: path.to_path_buf(),
            },
            None => decode_error(err, format, path, limits),
        })?;

    let (width, height) = decoder.dimensions();
    let stored_size = ImageSize::new(width, height);
    if width == 0 || height == 0 {
        return Err(PhotoError::Empty {
            size: stored_size,
            path: path.to_path_buf(),
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(PhotoError::TooLarge {
            detail: format!(
                "{stored_size} px is {pixels} pixels ({:.1} megapixels), more than the limit of {} pixels \
                 ({:.1} megapixels)",
                pixels as f64 / 1e6,
                limits.max_pixels,
                limits.max_pixels as f64 / 1e6
            ),
            path: path.to_path_buf(),
        });
    }
    if decoder.total_bytes() > limits.max_decoded_bytes {
        return Err(PhotoError::TooLarge {
            detail: format!(
                "decoding {stored_size} px as {:?} needs {} bytes, more than the limit of {} bytes",
                decoder.color_type(),
                decoder.total_bytes(),
                limits.max_decoded_bytes
            ),
            path: path.to_path_buf(),
        });
    }

    let orientation = exif.orientation();
    let size = orientation.oriented_size(stored_size);
    let focal = focal_from_exif(&exif, size);
    warnings.extend(focal.warnings);
    let info = PhotoInfo {
        size,
        stored_size,
        orientation,
        exif_focal: focal.focal,
        color_type: decoder.color_type(),
        exif,
        format,
        warnings,
    };
    Ok(Header { info, decoder })
}

/// Turns an `image` error into the most specific [`PhotoError`].
fn decode_error(
    err: image::ImageError,
    format: ImageFormat,
    path: &Path,
    limits: &PhotoLimits,
) -> PhotoError {
    use image::error::{ImageError, LimitErrorKind};
    match err {
        ImageError::Unsupported(_) if !format.reading_enabled() || format == ImageFormat::Avif => {
            PhotoError::UnsupportedFormat {
                format: format!("{format:?}"),
                path: path.to_path_buf(),
            }
        }
        ImageError::Limits(limit) if matches!(limit.kind(), LimitErrorKind::InsufficientMemory) => {
            PhotoError::TooLarge {
                detail: format!(
                    "decoding needs more memory than the limit of {} bytes",
                    limits.max_decoded_bytes
                ),
                path: path.to_path_buf(),
            }
        }
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => PhotoError::Truncated {
            detail: format!("the {format:?} data ends early ({io})"),
            path: path.to_path_buf(),
        },
        source => PhotoError::Decode {
            source,
            path: path.to_path_buf(),
        },
    }
}

/// `Some(name)` when the bytes are an ISO-BMFF HEIF/HEIC container, which `image` cannot decode.
fn heif_brand(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    match bytes.get(8..12)? {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" => Some("HEIC"),
        b"mif1" | b"msf1" | b"heif" => Some("HEIF"),
        _ => None,
    }
}

/// Converts any decoded image to 8-bit RGB, saying what was lost.
fn to_rgb8(image: DynamicImage, color_type: ColorType, warnings: &mut Vec<String>) -> RgbImage {
    if color_type.has_alpha() {
        warnings.push(format!(
            "the image has an alpha channel ({color_type:?}); it was dropped"
        ));
    }
    if color_type.bytes_per_pixel() / color_type.channel_count() > 1 {
        warnings.push(format!(
            "the image has {color_type:?} samples; they were converted to 8 bits"
        ));
    }
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.into_rgb8(),
    }
}

/// [`jpeg_truncation`] for JPEGs, `None` for other formats (their decoders detect truncation).
fn jpeg_truncation_of(format: ImageFormat, bytes: &[u8]) -> Option<String> {
    (format == ImageFormat::Jpeg)
        .then(|| jpeg_truncation(bytes))
        .flatten()
}

/// `Some(what is missing)` when a JPEG ends before its end-of-image (EOI) marker.
///
/// Walks the marker segments from SOI; after each start-of-scan it skips the entropy-coded data (where
/// `FF 00` is a stuffed byte and `FF D0`–`FF D7` restart markers). Any other marker continues the walk.
fn jpeg_truncation(bytes: &[u8]) -> Option<String> {
    const EOI_MISSING: &str = "the file ends before the JPEG end-of-image marker";
    let byte = |i: usize| bytes.get(i).copied();
    let mut i = 2; // after SOI
    loop {
        // Junk between segments is tolerated (as the decoder does); find the next marker prefix.
        while byte(i).is_some_and(|b| b != 0xFF) {
            i += 1;
        }
        while byte(i) == Some(0xFF) {
            i += 1;
        }
        let Some(marker) = byte(i) else {
            return Some(EOI_MISSING.into());
        };
        i += 1;
        match marker {
            0xD9 => return None,
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let (Some(hi), Some(lo)) = (byte(i), byte(i + 1)) else {
            return Some(format!(
                "the file ends inside the JPEG segment header of marker FF{marker:02X}"
            ));
        };
        let length = usize::from(u16::from_be_bytes([hi, lo]));
        if i + length > bytes.len() {
            return Some(format!(
                "the file ends inside the JPEG segment of marker FF{marker:02X}"
            ));
        }
        i += length.max(2);
        if marker == 0xDA {
            // Entropy-coded data: runs until a marker that is not stuffing or a restart marker.
            loop {
                while byte(i).is_some_and(|b| b != 0xFF) {
                    i += 1;
                }
                match byte(i + 1) {
                    None => return Some("the file ends inside the compressed JPEG image data".into()),
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0 segment, SOS with a 2-byte header, then `scan` and `tail`.
    fn stream(scan: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, b'J', b'F', 0xFF, 0xDA, 0x00, 0x02,
        ];
        v.extend_from_slice(scan);
        v.extend_from_slice(tail);
        v
    }

    #[test]
    fn complete_streams_pass() {
        // Stuffed FF 00, restart marker FF D0, fill bytes before EOI, trailing junk after EOI.
        let scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        assert_eq!(jpeg_truncation(&stream(&scan, &[0xFF, 0xD9])), None);
        assert_eq!(
            jpeg_truncation(&stream(&scan, &[0xFF, 0xFF, 0xD9, 0x00, 0x01])),
            None
        );
        // A second scan after a DHT segment (progressive JPEGs).
        let tail = [
            0xFF, 0xC4, 0x00, 0x03, 0x00, 0xFF, 0xDA, 0x00, 0x02, 0x77, 0xFF, 0xD9,
        ];
        assert_eq!(jpeg_truncation(&stream(&scan, &tail)), None);
    }

    #[test]
    fn truncated_streams_are_detected() {
        let scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        assert!(jpeg_truncation(&stream(&scan, &[])).is_some());
        assert!(jpeg_truncation(&stream(&scan, &[0xFF])).is_some());
        // A segment whose length runs past the end.
        assert!(jpeg_truncation(&[0xFF, 0xD8, 0xFF, 0xE1, 0x01, 0x00, 0x00]).is_some());
        // An EOI inside an APP1 payload (an EXIF thumbnail) does not end the image.
        assert!(jpeg_truncation(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9]).is_some());
        assert!(jpeg_truncation(&[0xFF, 0xD8]).is_some());
    }

    #[test]
    fn heif_brands() {
        assert_eq!(heif_brand(b"\0\0\0\x18ftypheic\0\0\0\0"), Some("HEIC"));
        assert_eq!(heif_brand(b"\0\0\0\x18ftypmif1\0\0\0\0"), Some("HEIF"));
        assert_eq!(heif_brand(b"\0\0\0\x18ftypavif\0\0\0\0"), None);
        assert_eq!(heif_brand(b"\xFF\xD8\xFF"), None);
    }
}
