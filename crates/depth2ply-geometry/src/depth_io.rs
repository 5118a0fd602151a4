//! Loading and saving depth maps: `.npy`, `.npz`, 16-bit PNG, PFM and float TIFF.
//!
//! Every loader returns a [`DepthMap`] of **z-depth in metres** (`f32`, row-major `H × W`). The format is
//! chosen by the file extension and then checked against the file's first bytes, so a mislabelled file
//! gives a clear error instead of garbage.
//!
//! | Extension | Content accepted | Unit |
//! |---|---|---|
//! | `.npy` | C- or Fortran-order array of `float32`, `float64`, `float16` or `uint16`, little or big endian; shape `(H, W)`, `(H, W, 1)`, `(1, H, W)` or `(1, 1, H, W)` | floats: metres; `uint16`: `value / scale_units_per_m` |
//! | `.npz` | the array named `depth` (as written by Apple's `depth-pro-run`, `np.savez_compressed(..., depth=depth)`), same rules as `.npy` | same |
//! | `.png` | single-channel **16-bit** grayscale | `value / scale_units_per_m` (1000 = millimetres; TUM RGB-D uses 5000) |
//! | `.pfm` | grayscale `Pf`, either endianness (sign of the scale line), rows stored **bottom to top** | metres |
//! | `.tif`, `.tiff` | single-channel `float32` (also `float64`, `float16`; `uint16` divided by the scale) | metres |
//!
//! Values are not validated: zero, negative, NaN and infinite depths are kept and mean "no depth"
//! (see [`DepthMap::is_valid_depth`]); integer `0` therefore stays an invalid pixel.
//!
//! Shapes: a singleton axis is dropped only at the positions listed above. When a 3-D shape could be read
//! both ways (`(1, N, 1)`), the trailing-channel reading `(H, W, 1)` wins.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::atomic::{write_atomically, AtomicWriteError};
use crate::camera::ImageSize;
use depth2ply_core::DepthMap;

/// Values converted per read call while streaming array data (keeps the byte buffer small).
const CHUNK_VALUES: usize = 1 << 16;
/// Largest `.npy` header we accept; numpy's own reader refuses headers above 10 000 bytes by default.
const MAX_NPY_HEADER_BYTES: usize = 1 << 16;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

const ACCEPTED_NPY_DTYPES: &str = "float32 ('<f4'), float64 ('<f8') or float16 ('<f2') in metres, or uint16 \
                                   ('<u2') divided by the scale (big-endian '>' variants too)";
const ACCEPTED_SHAPES: &str = "(H, W), (H, W, 1), (1, H, W) or (1, 1, H, W)";
const ACCEPTED_PNG: &str = "single-channel 16-bit grayscale (values divided by the scale, 0 = no depth)";
const ACCEPTED_TIFF: &str =
    "single-channel float32, float64 or float16 in metres, or uint16 divided by the scale";

/// Options for [`load_depth`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthLoadOptions {
    /// Integer units per metre for integer depth (16-bit PNG/TIFF, `uint16` arrays): depth in metres is
    /// `value / scale_units_per_m`. Default 1000 (millimetres); the TUM RGB-D benchmark uses 5000. Float
    /// formats are already in metres and ignore it, but it must still be finite and `> 0`.
    pub scale_units_per_m: f64,
}

impl Default for DepthLoadOptions {
    fn default() -> Self {
        Self {
            scale_units_per_m: 1000.0,
        }
    }
}

/// A depth file format known to [`load_depth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepthFormat {
    /// NumPy `.npy` array.
    Npy,
    /// NumPy `.npz` archive holding a `depth` array.
    Npz,
    /// 16-bit grayscale PNG.
    Png16,
    /// Portable float map, grayscale (`Pf`).
    Pfm,
    /// TIFF with one float (or 16-bit) sample per pixel.
    Tiff,
}

impl DepthFormat {
    /// The format implied by a path's extension (case-insensitive), or `None` for an unknown one.
    ///
    /// ```
    /// use depth2ply_geometry::depth_io::DepthFormat;
    /// assert_eq!(DepthFormat::from_path("scan/0001.PNG".as_ref()), Some(DepthFormat::Png16));
    /// assert_eq!(DepthFormat::from_path("depth.exr".as_ref()), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "npy" => Some(Self::Npy),
            "npz" => Some(Self::Npz),
            "png" => Some(Self::Png16),
            "pfm" => Some(Self::Pfm),
            "tif" | "tiff" => Some(Self::Tiff),
            _ => None,
        }
    }

    /// Human-readable name, e.g. `".npy array"`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Npy => ".npy array",
            Self::Npz => ".npz archive",
            Self::Png16 => "PNG image",
            Self::Pfm => "PFM image",
            Self::Tiff => "TIFF image",
        }
    }

    /// The usual extension, without the dot.
    pub const fn extension(&self) -> &'static str {
        match self {
            Self::Npy => "npy",
            Self::Npz => "npz",
            Self::Png16 => "png",
            Self::Pfm => "pfm",
            Self::Tiff => "tif",
        }
    }

    /// The format whose signature starts `bytes`, if any.
    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(NPY_MAGIC) {
            Some(Self::Npy)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(Self::Npz)
        } else if bytes.starts_with(PNG_MAGIC) {
            Some(Self::Png16)
        } else if (bytes.starts_with(b"Pf") || bytes.starts_with(b"PF"))
            && bytes.get(2).is_some_and(|b| b.is_ascii_whitespace())
        {
            Some(Self::Pfm)
        } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
            .iter()
            .any(|m| bytes.starts_with(*m))
        {
            Some(Self::Tiff)
        } else {
            None
        }
    }
}

impl std::fmt::Display for DepthFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A depth file that could not be read or written. Messages end with the file path.
#[derive(Debug, thiserror::Error)]
pub enum DepthIoError {
    /// The extension is not one of the supported formats.
    #[error(
        "unsupported depth file extension: use .npy, .npz, .png (16-bit grayscale), .pfm or .tif/.tiff: {}",
        path.display()
    )]
    UnknownExtension {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be opened or read.
    #[error("cannot read the depth file ({source}); check that it exists and is readable: {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The content does not match the format the extension names.
    #[error("{}: {}", mismatch_message(*expected, *found), path.display())]
    FormatMismatch {
        /// The format the extension names.
        expected: DepthFormat,
        /// The format the content looks like, if recognised.
        found: Option<DepthFormat>,
        /// The file.
        path: PathBuf,
    },
    /// The sample type cannot hold metric depth or is not supported.
    #[error("unsupported depth data type {found}; accepted: {accepted}: {}", path.display())]
    UnsupportedDtype {
        /// What the file holds.
        found: String,
        /// What would be accepted.
        accepted: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The array or image does not have exactly one channel.
    #[error("unsupported depth array shape {found}; expected one channel, {accepted}: {}", path.display())]
    UnsupportedShape {
        /// The shape found.
        found: String,
        /// The shapes accepted.
        accepted: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A `.npz` archive without a `depth` array.
    #[error(
        "the .npz archive has no array named `depth` (arrays present: {}); save it with \
         np.savez_compressed(file, depth=depth_m): {}",
        if keys.is_empty() { "none".to_string() } else { keys.join(", ") },
        path.display()
    )]
    MissingNpzKey {
        /// Names of the arrays that are present.
        keys: Vec<String>,
        /// The file.
        path: PathBuf,
    },
    /// The file is truncated, has extra bytes, or its header is malformed.
    #[error("the depth file is truncated or corrupt ({detail}); export it again: {}", path.display())]
    Corrupt {
        /// What is wrong.
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// `scale_units_per_m` is not finite and positive.
    #[error(
        "invalid depth scale {scale} units per metre: use a finite value > 0 (1000 for millimetres, 5000 for \
         TUM RGB-D): {}",
        path.display()
    )]
    InvalidScale {
        /// The rejected scale.
        scale: f64,
        /// The file.
        path: PathBuf,
    },
    /// A focal length to be saved is not finite and positive.
    #[error("invalid focal length {focal_px} px: it must be finite and > 0: {}", path.display())]
    InvalidFocal {
        /// The rejected focal length in pixels.
        focal_px: f64,
        /// The file.
        path: PathBuf,
    },
    /// Writing a depth file failed (the message ends with the path).
    #[error("cannot save the depth map: {0}")]
    Write(#[from] AtomicWriteError),
}

fn mismatch_message(expected: DepthFormat, found: Option<DepthFormat>) -> String {
    match found {
        Some(found) => format!(
            "the file is named like a {expected} but contains a {found}; rename it with the .{} extension",
            found.extension()
        ),
        None => format!(
            "the file is named like a {expected} but does not start with that format's signature; check that \
             it is not damaged or mislabelled"
        ),
    }
}

/// Loads a depth map (z-depth in metres) from `path`; see the [module docs](self) for the formats.
///
/// ```no_run
/// use depth2ply_geometry::depth_io::{load_depth, DepthLoadOptions};
/// // A TUM RGB-D depth PNG: 5000 units per metre.
/// let depth = load_depth("rgbd/depth/0001.png".as_ref(), &DepthLoadOptions { scale_units_per_m: 5000.0 })?;
/// println!("{} valid pixels of {}", depth.valid_count(), depth.size());
/// # Ok::<(), depth2ply_geometry::depth_io::DepthIoError>(())
/// ```
pub fn load_depth(path: &Path, options: &DepthLoadOptions) -> Result<DepthMap, DepthIoError> {
    let scale = options.scale_units_per_m;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(DepthIoError::InvalidScale {
            scale,
            path: path.to_path_buf(),
        });
    }
    let format = DepthFormat::from_path(path).ok_or_else(|| DepthIoError::UnknownExtension {
        path: path.to_path_buf(),
    })?;
    let ctx = Ctx {
        path,
        scale_units_per_m: scale,
    };

    let mut file = File::open(path).map_err(|e| ctx.read(e))?;
    let file_len = file.metadata().map_err(|e| ctx.read(e))?.len();
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| ctx.read(e))?;
    if head.is_empty() {
        return Err(ctx.corrupt("the file is empty"));
    }
    let found = DepthFormat::sniff(&head);
    if found != Some(format) {
        return Err(DepthIoError::FormatMismatch {
            expected: format,
            found,
            path: path.to_path_buf(),
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| ctx.read(e))?;
    let reader = BufReader::new(file);

    match format {
        DepthFormat::Npy => read_npy(reader, file_len, &ctx),
        DepthFormat::Npz => load_npz(reader, &ctx),
        DepthFormat::Png16 => load_png16(reader, &ctx),
        DepthFormat::Pfm => load_pfm(reader, file_len, &ctx),
        DepthFormat::Tiff => load_tiff(reader, &ctx),
    }
}

/// Reads the scalar `focallength_px` stored next to `depth` in a `.npz` written by
/// [`write_depth_npz`] (Apple's CLI does not store it). `Ok(None)` when the archive has no such array.
pub fn load_npz_focal_px(path: &Path) -> Result<Option<f64>, DepthIoError> {
    let ctx = Ctx {
        path,
        scale_units_per_m: 1.0,
    };
    let file = File::open(path).map_err(|e| ctx.read(e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| ctx.zip(e))?;
    let Some(name) = npz_entry_name(&archive, "focallength_px") else {
        return Ok(None);
    };
    let mut entry = archive.by_name(&name).map_err(|e| ctx.zip(e))?;
    let size = entry.size();
    let header = read_npy_header(&mut entry, &ctx)?;
    if header.shape.iter().product::<u64>() != 1 {
        return Err(ctx.shape(format!("{:?} for focallength_px", header.shape), "a scalar ()"));
    }
    let mut values = Vec::with_capacity(1);
    read_values(
        &mut entry,
        header.dtype,
        1,
        size.saturating_sub(header.total_len as u64),
        &mut values,
        &ctx,
    )?;
    Ok(values.first().map(|&f| f as f64))
}

/// Writes `depth` as a NumPy `.npy` file (`float32`, shape `(H, W)`, C order), atomically.
pub fn write_depth_npy(path: &Path, depth: &DepthMap) -> Result<(), DepthIoError> {
    write_atomically(path, |w| write_npy_f32(w, depth.size(), depth.as_slice()))?;
    Ok(())
}

/// Writes a NumPy `.npz` archive with `depth` (`float32`, `(H, W)`, metres) and the scalar
/// `focallength_px` (`float32`), atomically, deflate-compressed like `np.savez_compressed`.
///
/// The `depth` key is what Apple's `depth-pro-run` writes, so tools that read its output read this file;
/// `np.load(path)["focallength_px"]` gives the focal length used (Apple's CLI only logs it).
pub fn write_depth_npz(path: &Path, depth: &DepthMap, focal_px: f64) -> Result<(), DepthIoError> {
    if !(focal_px.is_finite() && focal_px > 0.0) {
        return Err(DepthIoError::InvalidFocal {
            focal_px,
            path: path.to_path_buf(),
        });
    }
    write_atomically(path, |w| {
        let mut zip = zip::ZipWriter::new(w);
        // Level 1: float depth barely compresses better at higher levels but takes several times longer.
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1));
        zip.start_file("depth.npy", options).map_err(io::Error::other)?;
        write_npy_f32(&mut zip, depth.size(), depth.as_slice())?;
        zip.start_file("focallength_px.npy", options)
            .map_err(io::Error::other)?;
        write_npy_header(&mut zip, "<f4", &[])?;
        zip.write_all(&(focal_px as f32).to_le_bytes())?;
        zip.finish().map_err(io::Error::other)?;
        Ok(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers

/// The file being read, for error messages, and the integer scale.
struct Ctx<'a> {
    path: &'a Path,
    scale_units_per_m: f64,
}

impl Ctx<'_> {
    fn read(&self, source: io::Error) -> DepthIoError {
        DepthIoError::Read {
            path: self.path.to_path_buf(),
            source,
        }
    }
    fn corrupt(&self, detail: impl Into<String>) -> DepthIoError {
        DepthIoError::Corrupt {
            detail: detail.into(),
            path: self.path.to_path_buf(),
        }
    }
    fn dtype(&self, found: impl Into<String>, accepted: &'static str) -> DepthIoError {
        DepthIoError::UnsupportedDtype {
            found: found.into(),
            accepted,
            path: self.path.to_path_buf(),
        }
    }
    fn shape(&self, found: impl Into<String>, accepted: &'static str) -> DepthIoError {
        DepthIoError::UnsupportedShape {
            found: found.into(),
            accepted,
            path: self.path.to_path_buf(),
        }
    }
    /// A read error in the middle of the data: an early end of file means truncation.
    fn data(&self, e: io::Error) -> DepthIoError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.corrupt("the file ends before all pixels were read")
        } else {
            self.read(e)
        }
    }
    fn zip(&self, e: zip::result::ZipError) -> DepthIoError {
        match e {
            zip::result::ZipError::Io(e) => self.data(e),
            other => self.corrupt(format!("invalid zip archive: {other}")),
        }
    }
    fn image_size(&self, width: u64, height: u64) -> Result<ImageSize, DepthIoError> {
        match (u32::try_from(width), u32::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok(ImageSize::new(w, h)),
            _ => Err(self.shape(
                format!("{height} × {width} (H × W)"),
                "a non-empty image below 2³² pixels a side",
            )),
        }
    }
    fn depth_map(&self, size: ImageSize, values: Vec<f32>) -> Result<DepthMap, DepthIoError> {
        DepthMap::new(size, values).map_err(|e| self.corrupt(e.to_string()))
    }
}

/// Reads exactly `count` samples of `dtype` from `reader`, converting to metres and appending to `out`.
/// `available` is the number of data bytes the container says follow; it must match exactly (checked
/// before anything is allocated, so a lying header cannot trigger a huge allocation).
fn read_values<R: Read>(
    reader: &mut R,
    dtype: Dtype,
    count: usize,
    available: u64,
    out: &mut Vec<f32>,
    ctx: &Ctx<'_>,
) -> Result<(), DepthIoError> {
    let item = dtype.kind.item_bytes();
    let needed = (count as u64)
        .checked_mul(item as u64)
        .ok_or_else(|| ctx.corrupt("the array is too large"))?;
    if available < needed {
        return Err(ctx.corrupt(format!(
            "the header announces {count} values ({needed} bytes) but only {available} bytes of data follow"
        )));
    }
    if available > needed {
        return Err(ctx.corrupt(format!(
            "{} unexpected bytes after the {count} values the header announces",
            available - needed
        )));
    }
    out.reserve_exact(count);
    let scale = ctx.scale_units_per_m;
    let mut bytes = vec![0u8; CHUNK_VALUES.min(count.max(1)) * item];
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK_VALUES);
        let chunk = &mut bytes[..n * item];
        reader.read_exact(chunk).map_err(|e| ctx.data(e))?;
        dtype.convert(chunk, scale, out);
        left -= n;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// .npy / .npz

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DtypeKind {
    F16,
    F32,
    F64,
    U16,
}

impl DtypeKind {
    const fn item_bytes(self) -> usize {
        match self {
            Self::F16 | Self::U16 => 2,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtype {
    kind: DtypeKind,
    big_endian: bool,
}

impl Dtype {
    /// Parses a numpy `descr` such as `'<f4'`; `None` for anything not accepted.
    fn from_descr(descr: &str) -> Option<Self> {
        let (order, code) = descr.split_at_checked(1)?;
        let big_endian = match order {
            "<" => false,
            ">" => true,
            _ => return None,
        };
        let kind = match code {
            "f2" => DtypeKind::F16,
            "f4" => DtypeKind::F32,
            "f8" => DtypeKind::F64,
            "u2" => DtypeKind::U16,
            _ => return None,
        };
        Some(Self { kind, big_endian })
    }

    /// Converts raw samples to metres (integers are divided by `scale`).
    fn convert(self, bytes: &[u8], scale: f64, out: &mut Vec<f32>) {
        let be = self.big_endian;
        match self.kind {
            DtypeKind::F32 => out.extend(bytes.chunks_exact(4).map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if be {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            })),
            DtypeKind::F64 => out.extend(bytes.chunks_exact(8).map(|c| {
                let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
                (if be {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }) as f32
            })),
            DtypeKind::F16 => out.extend(bytes.chunks_exact(2).map(|c| {
                let b = [c[0], c[1]];
                f16_to_f32(if be {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                })
            })),
            DtypeKind::U16 => out.extend(bytes.chunks_exact(2).map(|c| {
                let b = [c[0], c[1]];
                let v = if be {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                };
                (v as f64 / scale) as f32
            })),
        }
    }
}

/// IEEE 754 binary16 → binary32 (exact; every half value is representable as an f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let mant = (h & 0x3ff) as f32;
    match exp {
        0 => sign * mant * (-24f32).exp2(),
        31 if mant == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + mant / 1024.0) * (e as f32 - 15.0).exp2(),
    }
}

/// The parts of a `.npy` header we use.
#[derive(Debug)]
struct NpyHeader {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<u64>,
    /// Bytes from the start of the file to the first data byte.
    total_len: usize,
}

fn read_npy_header<R: Read>(reader: &mut R, ctx: &Ctx<'_>) -> Result<NpyHeader, DepthIoError> {
    let header_err = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ctx.corrupt("the .npy header is cut short")
        } else {
            ctx.read(e)
        }
    };
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(header_err)?;
    if &prefix[..6] != NPY_MAGIC {
        return Err(ctx.corrupt("missing the \\x93NUMPY signature of a .npy array"));
    }
    let major = prefix[6];
    let (len_bytes, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        v => {
            return Err(ctx.corrupt(format!(
                ".npy format version {v} is not supported (1, 2 or 3 are)"
            )))
        }
    };
    let mut len_buf = [0u8; 4];
    reader.read_exact(&mut len_buf[..len_bytes]).map_err(header_err)?;
    let header_len = u32::from_le_bytes(len_buf) as usize;
    if header_len > MAX_NPY_HEADER_BYTES {
        return Err(ctx.corrupt(format!("the .npy header claims {header_len} bytes")));
    }
    let mut text = vec![0u8; header_len];
    reader.read_exact(&mut text).map_err(header_err)?;
    let text = match (utf8, std::str::from_utf8(&text)) {
        (_, Ok(t)) if utf8 || t.is_ascii() => t.to_string(),
        _ => return Err(ctx.corrupt("the .npy header is not text")),
    };
    let dict = match py_literal::parse(&text) {
        Some(py_literal::Value::Dict(d)) => d,
        _ => return Err(ctx.corrupt(format!("cannot parse the .npy header {:?}", text.trim_end()))),
    };
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let dtype = match get("descr") {
        Some(py_literal::Value::Str(descr)) => {
            Dtype::from_descr(descr).ok_or_else(|| ctx.dtype(format!("'{descr}'"), ACCEPTED_NPY_DTYPES))?
        }
        Some(py_literal::Value::List(_)) => {
            return Err(ctx.dtype("a structured (record) dtype", ACCEPTED_NPY_DTYPES))
        }
        _ => return Err(ctx.corrupt("the .npy header has no 'descr'")),
    };
    let fortran_order = match get("fortran_order") {
        Some(py_literal::Value::Bool(b)) => *b,
        _ => return Err(ctx.corrupt("the .npy header has no 'fortran_order'")),
    };
    let shape = match get("shape") {
        Some(py_literal::Value::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                py_literal::Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| ctx.corrupt("the .npy 'shape' is not a tuple of integers"))?,
        _ => return Err(ctx.corrupt("the .npy header has no 'shape'")),
    };
    Ok(NpyHeader {
        dtype,
        fortran_order,
        shape,
        total_len: 6 + 2 + len_bytes + header_len,
    })
}

/// `(height, width)` of a single-channel shape, or `None`.
fn depth_dims(shape: &[u64]) -> Option<(u64, u64)> {
    match *shape {
        [h, w] | [h, w, 1] | [1, h, w] | [1, 1, h, w] => Some((h, w)),
        _ => None,
    }
}

fn format_shape(shape: &[u64]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Reads a whole `.npy` stream; `stream_len` is its length in bytes.
fn read_npy<R: Read>(mut reader: R, stream_len: u64, ctx: &Ctx<'_>) -> Result<DepthMap, DepthIoError> {
    let header = read_npy_header(&mut reader, ctx)?;
    let Some((h, w)) = depth_dims(&header.shape) else {
        let found = format_shape(&header.shape);
        let hint = match header.shape.as_slice() {
            [_, _, 3] | [_, _, 4] | [3, _, _] => " (this looks like a colour image, not depth)",
            _ => "",
        };
        return Err(ctx.shape(format!("{found}{hint}"), ACCEPTED_SHAPES));
    };
    let size = ctx.image_size(w, h)?;
    let available = stream_len.saturating_sub(header.total_len as u64);
    let mut values = Vec::new();
    read_values(
        &mut reader,
        header.dtype,
        size.pixel_count(),
        available,
        &mut values,
        ctx,
    )?;
    if header.fortran_order {
        values = transpose_column_major(&values, size);
    }
    ctx.depth_map(size, values)
}

/// Column-major `H × W` → row-major. Singleton axes do not change the element order, so this covers
/// every accepted shape.
fn transpose_column_major(values: &[f32], size: ImageSize) -> Vec<f32> {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut out = vec![0.0; values.len()];
    for (col, column) in values.chunks_exact(h).enumerate() {
        for (row, &v) in column.iter().enumerate() {
            out[row * w + col] = v;
        }
    }
    out
}

/// Entry name of array `key` in an npz (`key.npy`, or a bare `key` as some writers use).
fn npz_entry_name<R: Read + Seek>(archive: &zip::ZipArchive<R>, key: &str) -> Option<String> {
    let with_ext = format!("{key}.npy");
    archive
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| *n == with_ext || *n == key)
        .map(|n| n.into_owned())
}

fn load_npz<R: Read + Seek>(reader: R, ctx: &Ctx<'_>) -> Result<DepthMap, DepthIoError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| ctx.zip(e))?;
    let Some(name) = npz_entry_name(&archive, "depth") else {
        let mut keys: Vec<String> = archive
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.strip_suffix(".npy").unwrap_or(&n).to_string())
            .collect();
        keys.sort();
        return Err(DepthIoError::MissingNpzKey {
            keys,
            path: ctx.path.to_path_buf(),
        });
    };
    let mut entry = archive.by_name(&name).map_err(|e| ctx.zip(e))?;
    let size = entry.size();
    let depth = read_npy(&mut entry, size, ctx)?;
    // Reading to the end makes the zip reader verify the CRC of what we decoded.
    let mut rest = Vec::new();
    entry.read_to_end(&mut rest).map_err(|e| ctx.data(e))?;
    if !rest.is_empty() {
        return Err(ctx.corrupt("the depth array has more bytes than its header announces"));
    }
    Ok(depth)
}

/// Writes a version 1.0 `.npy` header, padded so the data starts on a 64-byte boundary as numpy does.
fn write_npy_header<W: Write>(w: &mut W, descr: &str, shape: &[u64]) -> io::Result<()> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        format_shape(shape)
    );
    let unpadded = NPY_MAGIC.len() + 2 + 2 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = u16::try_from(dict.len() + padding + 1).map_err(io::Error::other)?;
    w.write_all(NPY_MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&header_len.to_le_bytes())?;
    w.write_all(dict.as_bytes())?;
    w.write_all(&vec![b' '; padding])?;
    w.write_all(b"\n")
}

fn write_npy_f32<W: Write>(w: &mut W, size: ImageSize, values: &[f32]) -> io::Result<()> {
    write_npy_header(w, "<f4", &[size.height as u64, size.width as u64])?;
    let mut bytes = Vec::with_capacity(CHUNK_VALUES * 4);
    for chunk in values.chunks(CHUNK_VALUES) {
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        w.write_all(&bytes)?;
    }
    Ok(())
}

/// A parser for the Python literal subset used in `.npy` headers: dicts, tuples, lists, strings,
/// non-negative integers, `True`/`False`/`None`.
mod py_literal {
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Value {
        Dict(Vec<(String, Value)>),
        Tuple(Vec<Value>),
        List(Vec<Value>),
        Str(String),
        Int(u64),
        Bool(bool),
        None,
    }

    pub(super) fn parse(text: &str) -> Option<Value> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.skip_ws();
        (p.i == p.s.len()).then_some(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
        depth: usize,
    }

    impl Parser<'_> {
        fn skip_ws(&mut self) {
            while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.skip_ws();
            self.s.get(self.i).copied()
        }
        fn eat(&mut self, b: u8) -> bool {
            let hit = self.peek() == Some(b);
            self.i += hit as usize;
            hit
        }
        fn value(&mut self) -> Option<Value> {
            // Guards against stack exhaustion on hostile input.
            self.depth += 1;
            if self.depth > 32 {
                return None;
            }
            let v = match self.peek()? {
                b'{' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    while !self.eat(b'}') {
                        let Value::Str(k) = self.value()? else { return None };
                        if !self.eat(b':') {
                            return None;
                        }
                        items.push((k, self.value()?));
                        if !self.eat(b',') && self.peek()? != b'}' {
                            return None;
                        }
                    }
                    Value::Dict(items)
                }
                open @ (b'(' | b'[') => {
                    self.i += 1;
                    let close = if open == b'(' { b')' } else { b']' };
                    let mut items = Vec::new();
                    while !self.eat(close) {
                        items.push(self.value()?);
                        if !self.eat(b',') && self.peek()? != close {
                            return None;
                        }
                    }
                    if open == b'(' {
                        Value::Tuple(items)
                    } else {
                        Value::List(items)
                    }
                }
                q @ (b'\'' | b'"') => {
                    let start = self.i + 1;
                    let len = self.s[start..].iter().position(|&b| b == q)?;
                    self.i = start + len + 1;
                    Value::Str(String::from_utf8(self.s[start..start + len].to_vec()).ok()?)
                }
                _ => {
                    let start = self.i;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    {
                        self.i += 1;
                    }
                    let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                    match word {
                        "True" => Value::Bool(true),
                        "False" => Value::Bool(false),
                        "None" => Value::None,
                        // Python 2 wrote long integers with an `L` suffix.
                        w => Value::Int(w.strip_suffix('L').unwrap_or(w).parse().ok()?),
                    }
                }
            };
            self.depth -= 1;
            Some(v)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// PNG

fn load_png16<R: io::BufRead + Seek>(reader: R, ctx: &Ctx<'_>) -> Result<DepthMap, DepthIoError> {
    use image::{ExtendedColorType, ImageDecoder};
    let decode_err = |e: image::ImageError| match e {
        image::ImageError::IoError(e) => ctx.data(e),
        other => ctx.corrupt(other.to_string()),
    };
    let decoder = image::codecs::png::PngDecoder::new(reader).map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    match decoder.original_color_type() {
        ExtendedColorType::L16 => {}
        ExtendedColorType::L1 | ExtendedColorType::L2 | ExtendedColorType::L4 | ExtendedColorType::L8 => {
            return Err(ctx.dtype(
                format!(
                    "{}-bit grayscale PNG (too few levels for metric depth)",
                    decoder.original_color_type().bits_per_pixel()
                ),
                ACCEPTED_PNG,
            ));
        }
        other => {
            return Err(ctx.shape(
                format!("{other:?} PNG ({} channels)", other.channel_count()),
                "a single-channel 16-bit grayscale PNG",
            ));
        }
    }
    let size = ctx.image_size(width as u64, height as u64)?;
    let image = image::DynamicImage::from_decoder(decoder)
        .map_err(decode_err)?
        .into_luma16();
    let scale = ctx.scale_units_per_m;
    let values = image
        .into_raw()
        .into_iter()
        .map(|v| (v as f64 / scale) as f32)
        .collect();
    ctx.depth_map(size, values)
}

// ---------------------------------------------------------------------------------------------------------
// PFM

/// Reads one whitespace-delimited header token (at most 64 bytes) and the single whitespace byte after it.
fn pfm_token<R: io::BufRead>(reader: &mut R, what: &str, ctx: &Ctx<'_>) -> Result<String, DepthIoError> {
    let mut token = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => return Err(ctx.corrupt(format!("the PFM header ends before its {what}"))),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ctx.read(e)),
        }
        let b = byte[0];
        if b.is_ascii_whitespace() {
            if token.is_empty() {
                continue; // leading whitespace between tokens
            }
            break;
        }
        token.push(b);
        if token.len() > 64 {
            return Err(ctx.corrupt(format!("the PFM {what} is not a number")));
        }
    }
    String::from_utf8(token).map_err(|_| ctx.corrupt(format!("the PFM {what} is not text")))
}

fn load_pfm<R: io::BufRead + Seek>(
    mut reader: R,
    file_len: u64,
    ctx: &Ctx<'_>,
) -> Result<DepthMap, DepthIoError> {
    let magic = pfm_token(&mut reader, "signature", ctx)?;
    match magic.as_str() {
        "Pf" => {}
        "PF" => {
            return Err(ctx.shape(
                "a colour PFM (PF, 3 channels)",
                "a grayscale PFM (Pf) with one float per pixel",
            ));
        }
        _ => return Err(ctx.corrupt("missing the Pf signature")),
    }
    let parse_dim = |s: String, what: &str| {
        s.parse::<u64>()
            .map_err(|_| ctx.corrupt(format!("the PFM {what} {s:?} is not a positive integer")))
    };
    let width = parse_dim(pfm_token(&mut reader, "width", ctx)?, "width")?;
    let height = parse_dim(pfm_token(&mut reader, "height", ctx)?, "height")?;
    let scale_text = pfm_token(&mut reader, "scale", ctx)?;
    let scale: f64 = scale_text
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s != 0.0)
        .ok_or_else(|| ctx.corrupt(format!("the PFM scale {scale_text:?} is not a non-zero number")))?;
    // Negative scale = little endian. Its magnitude is a unit hint that depth writers leave at 1; ignored.
    let dtype = Dtype {
        kind: DtypeKind::F32,
        big_endian: scale > 0.0,
    };
    let size = ctx.image_size(width, height)?;
    // Tokens may be separated by any amount of whitespace, so ask where the data starts.
    let data_start = reader.stream_position().map_err(|e| ctx.read(e))?;
    let available = file_len.saturating_sub(data_start);
    let mut values = Vec::new();
    read_values(
        &mut reader,
        dtype,
        size.pixel_count(),
        available,
        &mut values,
        ctx,
    )?;
    // PFM stores the bottom row first; swap rows in place (no second 12 MP buffer).
    let (w, h) = (size.width as usize, size.height as usize);
    for r in 0..h / 2 {
        let (top, bottom) = values.split_at_mut((h - 1 - r) * w);
        top[r * w..(r + 1) * w].swap_with_slice(&mut bottom[..w]);
    }
    ctx.depth_map(size, values)
}

// ---------------------------------------------------------------------------------------------------------
// TIFF

fn load_tiff<R: Read + Seek>(reader: R, ctx: &Ctx<'_>) -> Result<DepthMap, DepthIoError> {
    use tiff::decoder::{Decoder, DecodingResult};
    let tiff_err = |e: tiff::TiffError| match e {
        tiff::TiffError::IoError(e) => ctx.data(e),
        other => ctx.corrupt(other.to_string()),
    };
    let mut decoder = Decoder::new(reader).map_err(tiff_err)?;
    let (width, height) = decoder.dimensions().map_err(tiff_err)?;
    match decoder.colortype().map_err(tiff_err)? {
        tiff::ColorType::Gray(_) => {}
        other => {
            return Err(ctx.shape(format!("a {other:?} TIFF"), "a single-channel (grayscale) TIFF"));
        }
    }
    let size = ctx.image_size(width as u64, height as u64)?;
    let scale = ctx.scale_units_per_m;
    let values: Vec<f32> = match decoder.read_image().map_err(tiff_err)? {
        DecodingResult::F32(v) => v,
        DecodingResult::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        DecodingResult::F16(v) => v.into_iter().map(|x| x.to_f32()).collect(),
        DecodingResult::U16(v) => v.into_iter().map(|x| (x as f64 / scale) as f32).collect(),
        DecodingResult::U8(_) => {
            return Err(ctx.dtype("8-bit TIFF (too few levels for metric depth)", ACCEPTED_TIFF))
        }
        DecodingResult::I8(_) => return Err(ctx.dtype("int8 TIFF", ACCEPTED_TIFF)),
        DecodingResult::I16(_) => return Err(ctx.dtype("int16 TIFF", ACCEPTED_TIFF)),
        DecodingResult::U32(_) => return Err(ctx.dtype("uint32 TIFF", ACCEPTED_TIFF)),
        DecodingResult::I32(_) => return Err(ctx.dtype("int32 TIFF", ACCEPTED_TIFF)),
        DecodingResult::U64(_) => return Err(ctx.dtype("uint64 TIFF", ACCEPTED_TIFF)),
        DecodingResult::I64(_) => return Err(ctx.dtype("int64 TIFF", ACCEPTED_TIFF)),
    };
    ctx.depth_map(size, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert_exactly() {
        // Bit patterns from IEEE 754-2008 binary16: 0x3c00 = 1, 0xc000 = −2, 0x7bff = 65504 (max),
        // 0x0001 = 2⁻²⁴ (smallest subnormal), 0x0400 = 2⁻¹⁴ (smallest normal), 0x3555 ≈ 0.33325.
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x3555), 0.33325195);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(0x8000).is_sign_negative() && f16_to_f32(0x8000) == 0.0);
    }

    #[test]
    fn npy_header_dicts_parse() {
        use py_literal::Value;
        let v =
            py_literal::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (480, 640), }  \n").unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![
                ("descr".into(), Value::Str("<f4".into())),
                ("fortran_order".into(), Value::Bool(false)),
                (
                    "shape".into(),
                    Value::Tuple(vec![Value::Int(480), Value::Int(640)])
                ),
            ])
        );
        assert_eq!(py_literal::parse("(5,)"), Some(Value::Tuple(vec![Value::Int(5)])));
        assert_eq!(py_literal::parse("()"), Some(Value::Tuple(vec![])));
        assert_eq!(
            py_literal::parse("(3L, 4L)"),
            Some(Value::Tuple(vec![Value::Int(3), Value::Int(4)]))
        );
        assert!(matches!(
            py_literal::parse("[('x', '<f4')]"),
            Some(Value::List(_))
        ));
        for bad in [
            "{'descr': '<f4'",
            "{'a' 1}",
            "(1, 2",
            "{'a': 1} x",
            "",
            "{1: 2}",
            &"(".repeat(100),
        ] {
            assert_eq!(py_literal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dtypes() {
        let le = |kind| {
            Some(Dtype {
                kind,
                big_endian: false,
            })
        };
        assert_eq!(Dtype::from_descr("<f4"), le(DtypeKind::F32));
        assert_eq!(Dtype::from_descr("<f8"), le(DtypeKind::F64));
        assert_eq!(Dtype::from_descr("<f2"), le(DtypeKind::F16));
        assert_eq!(Dtype::from_descr("<u2"), le(DtypeKind::U16));
        assert_eq!(
            Dtype::from_descr(">f4"),
            Some(Dtype {
                kind: DtypeKind::F32,
                big_endian: true
            })
        );
        for bad in ["<i4", "|u1", "<u4", "=f4", "f4", "", "<c8", "|b1"] {
            assert_eq!(Dtype::from_descr(bad), None, "{bad}");
        }
    }

    #[test]
    fn accepted_shapes() {
        assert_eq!(depth_dims(&[2, 3]), Some((2, 3)));
        assert_eq!(depth_dims(&[2, 3, 1]), Some((2, 3)));
        assert_eq!(depth_dims(&[1, 2, 3]), Some((2, 3)));
        assert_eq!(depth_dims(&[1, 1, 2, 3]), Some((2, 3)));
        assert_eq!(
            depth_dims(&[1, 5, 1]),
            Some((1, 5)),
            "trailing-channel reading wins"
        );
        for bad in [&[6][..], &[2, 3, 3], &[3, 2, 3], &[2, 2, 2, 2], &[]] {
            assert_eq!(depth_dims(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn npy_header_is_64_byte_aligned() {
        for shape in [&[][..], &[7], &[480, 640], &[123_456, 7]] {
            let mut bytes = Vec::new();
            write_npy_header(&mut bytes, "<f4", shape).unwrap();
            assert_eq!(bytes.len() % 64, 0, "{shape:?}");
            assert_eq!(bytes.last(), Some(&b'\n'));
        }
    }

    #[test]
    fn sniffing() {
        assert_eq!(DepthFormat::sniff(b"\x93NUMPY\x01\x00"), Some(DepthFormat::Npy));
        assert_eq!(DepthFormat::sniff(b"PK\x03\x04...."), Some(DepthFormat::Npz));
        assert_eq!(DepthFormat::sniff(PNG_MAGIC), Some(DepthFormat::Png16));
        assert_eq!(DepthFormat::sniff(b"Pf\n3 2\n-1\n"), Some(DepthFormat::Pfm));
        assert_eq!(DepthFormat::sniff(b"PF 3 2"), Some(DepthFormat::Pfm));
        assert_eq!(DepthFormat::sniff(b"MM\0*\0\0\0\x08"), Some(DepthFormat::Tiff));
        assert_eq!(DepthFormat::sniff(b"II*\0\x08\0\0\0"), Some(DepthFormat::Tiff));
        assert_eq!(DepthFormat::sniff(b"Pfoo"), None);
        assert_eq!(DepthFormat::sniff(b"\xff\xd8\xff\xe0"), None);
    }
}
