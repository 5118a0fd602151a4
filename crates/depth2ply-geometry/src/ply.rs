//! PLY output (streaming, binary little endian or ASCII) and input (via `ply-rs-bw`).
//!
//! The writer produces the layout that MeshLab, CloudCompare and Open3D all map without a dialog:
//!
//! ```text
//! ply
//! format binary_little_endian 1.0
//! comment frame=opencv units=metres
//! comment <each caller comment>
//! element vertex N
//! property float x
//! property float y
//! property float z
//! property float nx        (only with normals)
//! property float ny
//! property float nz
//! property uchar red       (only with colours)
//! property uchar green
//! property uchar blue
//! end_header
//! ```
//!
//! No `alpha` (CloudCompare drops it), no `intensity` (MeshLab then overwrites RGB with grey), no `face`
//! element, `float` not `double` (camera-frame metres need no more, and the file stays half the size).
//! Binary output is streamed from the cloud's arrays through a small reusable buffer: no second copy of
//! the cloud is built.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};

use nalgebra::{Point3, Vector3};
use ply_rs_bw::parser::{Parser, Reader};
use ply_rs_bw::ply::{Encoding, Header, PropertyAccess, PropertyAccessResult, PropertyType, ScalarType};

use crate::atomic::{write_atomically, AtomicWriteError};
use crate::camera::{FocalLength, Intrinsics};
use crate::cloud::{Frame, PointCloud};

/// Vertices packed per write call. 8192 × 27 B ≈ 216 KiB: large writes, cache-resident buffer.
const CHUNK_VERTICES: usize = 8192;
/// ASCII text buffered before each write call.
const ASCII_CHUNK_BYTES: usize = 1 << 18;

/// Payload encoding of a PLY file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PlyEncoding {
    /// `binary_little_endian`: compact and fast; the default.
    #[default]
    BinaryLittleEndian,
    /// `ascii`: human-readable, about 2–3× larger and much slower to write and read.
    Ascii,
}

impl PlyEncoding {
    /// The header keyword (`binary_little_endian` or `ascii`).
    pub const fn keyword(&self) -> &'static str {
        match self {
            Self::BinaryLittleEndian => "binary_little_endian",
            Self::Ascii => "ascii",
        }
    }
}

/// Options for [`write_ply`] and [`write_ply_file`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlyWriteOptions {
    /// Payload encoding (binary little endian by default).
    pub encoding: PlyEncoding,
    /// Free-text header comments, one line each, written after the automatic
    /// `frame=… units=metres` line. Control characters (including newlines) become spaces, non-ASCII
    /// characters are written as `\u{…}` escapes (PLY headers are ASCII), and surrounding whitespace is
    /// trimmed. See [`intrinsics_comment`] and [`focal_comment`] for the standard provenance lines.
    pub comments: Vec<String>,
}

impl PlyWriteOptions {
    /// Appends a header comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comments.push(comment.into());
        self
    }
}

/// The standard comment recording the intrinsics, e.g.
/// `intrinsics width=640 height=480 fx_px=525 fy_px=525 cx_px=319.5 cy_px=239.5`.
pub fn intrinsics_comment(intrinsics: &Intrinsics) -> String {
    format!(
        "intrinsics width={} height={} fx_px={} fy_px={} cx_px={} cy_px={}",
        intrinsics.size.width,
        intrinsics.size.height,
        intrinsics.fx_px,
        intrinsics.fy_px,
        intrinsics.cx_px,
        intrinsics.cy_px
    )
}

/// The standard comment recording the focal length and its source, e.g. `focal_px=1234.5 source=exif-35mm`.
pub fn focal_comment(focal: &FocalLength) -> String {
    format!("focal_px={} source={}", focal.focal_px(), focal.source().as_str())
}

/// A PLY file that could not be written or read. Messages involving a file end with its path.
#[derive(Debug, thiserror::Error)]
pub enum PlyError {
    /// `normals` or `colors` do not have one entry per position.
    #[error(
        "the cloud has {positions} points but {got} {attribute}; every attribute needs one entry per point{}",
        path_suffix(path)
    )]
    AttributeLength {
        /// `"normals"` or `"colors"`.
        attribute: &'static str,
        /// Number of positions.
        positions: usize,
        /// Number of entries of the attribute.
        got: usize,
        /// The file being written, if any.
        path: Option<PathBuf>,
    },
    /// A position or normal is NaN or infinite (viewers and readers break on such points).
    #[error(
        "point {index} has a non-finite {attribute} {value:?}; drop invalid points before writing{}",
        path_suffix(path)
    )]
    NonFinite {
        /// Index of the point.
        index: usize,
        /// `"position"` or `"normal"`.
        attribute: &'static str,
        /// The offending value.
        value: [f32; 3],
        /// The file being written, if any.
        path: Option<PathBuf>,
    },
    /// Writing to a stream failed.
    #[error("writing the PLY data failed: {0}")]
    Io(#[from] io::Error),
    /// Writing a file failed (the message ends with the path).
    #[error("cannot write the PLY file: {0}")]
    Write(#[from] AtomicWriteError),
    /// The file could not be opened or read.
    #[error("cannot read the PLY file ({source}); check that it exists and is readable: {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The header or an ASCII line is malformed.
    #[error("not a valid PLY file ({detail}): {}", path.display())]
    Parse {
        /// What is wrong.
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// The payload ends before all elements the header announces.
    #[error("the PLY file is truncated ({detail}); it was cut off while being written or copied: {}", path.display())]
    Truncated {
        /// What is missing.
        detail: String,
        /// The file.
        path: PathBuf,
    },
    /// Bytes follow the last element the header announces.
    #[error(
        "the PLY file has {bytes} bytes after the data its header announces (wrong vertex count?): {}",
        path.display()
    )]
    TrailingData {
        /// Number of extra bytes.
        bytes: u64,
        /// The file.
        path: PathBuf,
    },
    /// No `vertex` element with `x`, `y`, `z`.
    #[error("the PLY file has no vertex element with x, y and z properties: {}", path.display())]
    MissingVertices {
        /// The file.
        path: PathBuf,
    },
    /// A known property is stored with a type this reader does not convert.
    #[error("PLY property `{property}` has type {found}, expected {expected}: {}", path.display())]
    UnsupportedPropertyType {
        /// Property name.
        property: String,
        /// Declared type.
        found: String,
        /// Accepted types.
        expected: &'static str,
        /// The file.
        path: PathBuf,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(": {}", p.display()))
        .unwrap_or_default()
}

/// One header comment line made safe: a single ASCII line without surrounding whitespace.
fn sanitize_comment(comment: &str) -> String {
    let mut out = String::with_capacity(comment.len());
    for c in comment.chars() {
        match c {
            c if c.is_control() => out.push(' '),
            c if c.is_ascii() => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out.trim().to_string()
}

/// The complete header text (ending with `end_header\n`) that [`write_ply`] writes for `cloud`.
pub fn ply_header(cloud: &PointCloud, options: &PlyWriteOptions) -> String {
    let mut h = String::with_capacity(512);
    h.push_str("ply\n");
    let _ = writeln!(h, "format {} 1.0", options.encoding.keyword());
    let _ = writeln!(h, "comment frame={} units=metres", cloud.frame.as_str());
    for comment in &options.comments {
        let text = sanitize_comment(comment);
        // No trailing space after an empty comment.
        let _ = writeln!(h, "comment{}{text}", if text.is_empty() { "" } else { " " });
    }
    let _ = writeln!(h, "element vertex {}", cloud.len());
    h.push_str("property float x\nproperty float y\nproperty float z\n");
    if cloud.normals.is_some() {
        h.push_str("property float nx\nproperty float ny\nproperty float nz\n");
    }
    if cloud.colors.is_some() {
        h.push_str("property uchar red\nproperty uchar green\nproperty uchar blue\n");
    }
    h.push_str("end_header\n");
    h
}

/// Checks attribute lengths and finiteness before anything is written.
fn validate(cloud: &PointCloud, path: Option<&Path>) -> Result<(), PlyError> {
    let n = cloud.len();
    let path = || path.map(Path::to_path_buf);
    let lengths = [
        ("normals", cloud.normals.as_ref().map(Vec::len)),
        ("colors", cloud.colors.as_ref().map(Vec::len)),
    ];
    for (attribute, len) in lengths {
        if let Some(got) = len.filter(|&got| got != n) {
            return Err(PlyError::AttributeLength {
                attribute,
                positions: n,
                got,
                path: path(),
            });
        }
    }
    let finite = |v: [f32; 3]| v.iter().all(|c| c.is_finite());
    if let Some(index) = cloud.positions.iter().position(|p| !finite(p.coords.into())) {
        let value = cloud.positions[index].coords.into();
        return Err(PlyError::NonFinite {
            index,
            attribute: "position",
            value,
            path: path(),
        });
    }
    if let Some(normals) = &cloud.normals {
        if let Some(index) = normals.iter().position(|v| !finite((*v).into())) {
            return Err(PlyError::NonFinite {
                index,
                attribute: "normal",
                value: normals[index].into(),
                path: path(),
            });
        }
    }
    Ok(())
}

/// Writes `cloud` as PLY to `writer` (wrap files in a `BufWriter`, or use [`write_ply_file`]).
///
/// Fails before writing anything if an attribute has the wrong length or a position/normal is not finite.
///
/// ```
/// use depth2ply_geometry::ply::{write_ply, PlyWriteOptions};
/// use depth2ply_geometry::{nalgebra::Point3, PointCloud};
/// let cloud = PointCloud { positions: vec![Point3::new(0.0, 0.0, 2.0)], ..Default::default() };
/// let mut bytes = Vec::new();
/// write_ply(&mut bytes, &cloud, &PlyWriteOptions::default())?;
/// assert_eq!(bytes.len(), depth2ply_geometry::ply::ply_header(&cloud, &PlyWriteOptions::default()).len() + 12);
/// # Ok::<(), depth2ply_geometry::ply::PlyError>(())
/// ```
pub fn write_ply<W: Write>(
    mut writer: W,
    cloud: &PointCloud,
    options: &PlyWriteOptions,
) -> Result<(), PlyError> {
    validate(cloud, None)?;
    write_validated(&mut writer, cloud, options)?;
    Ok(())
}

/// Writes `cloud` as a PLY file at `path`, atomically (see [`crate::atomic::write_atomically`]): on any
/// error the destination is left untouched.
pub fn write_ply_file(path: &Path, cloud: &PointCloud, options: &PlyWriteOptions) -> Result<(), PlyError> {
    validate(cloud, Some(path))?;
    write_atomically(path, |w| write_validated(w, cloud, options))?;
    Ok(())
}

fn write_validated<W: Write>(
    writer: &mut W,
    cloud: &PointCloud,
    options: &PlyWriteOptions,
) -> io::Result<()> {
    writer.write_all(ply_header(cloud, options).as_bytes())?;
    match options.encoding {
        PlyEncoding::BinaryLittleEndian => write_binary_payload(writer, cloud),
        PlyEncoding::Ascii => write_ascii_payload(writer, cloud),
    }
}

fn put3(dst: &mut [u8], v: [f32; 3]) {
    dst[0..4].copy_from_slice(&v[0].to_le_bytes());
    dst[4..8].copy_from_slice(&v[1].to_le_bytes());
    dst[8..12].copy_from_slice(&v[2].to_le_bytes());
}

fn write_binary_payload<W: Write>(writer: &mut W, cloud: &PointCloud) -> io::Result<()> {
    let normals = cloud.normals.as_deref();
    let colors = cloud.colors.as_deref();
    let normal_offset = 12;
    let color_offset = if normals.is_some() { 24 } else { 12 };
    let stride = color_offset + if colors.is_some() { 3 } else { 0 };
    let mut chunk = vec![0u8; CHUNK_VERTICES.min(cloud.len()) * stride];
    for start in (0..cloud.len()).step_by(CHUNK_VERTICES) {
        let end = (start + CHUNK_VERTICES).min(cloud.len());
        let bytes = &mut chunk[..(end - start) * stride];
        for (i, record) in bytes.chunks_exact_mut(stride).enumerate() {
            let k = start + i;
            put3(&mut record[..12], cloud.positions[k].coords.into());
            if let Some(n) = normals {
                put3(&mut record[normal_offset..normal_offset + 12], n[k].into());
            }
            if let Some(c) = colors {
                record[color_offset..color_offset + 3].copy_from_slice(&c[k]);
            }
        }
        writer.write_all(bytes)?;
    }
    Ok(())
}

fn write_ascii_payload<W: Write>(writer: &mut W, cloud: &PointCloud) -> io::Result<()> {
    // `{}` prints the shortest decimal that parses back to the same f32, so ASCII round trips exactly.
    let mut text = String::with_capacity(ASCII_CHUNK_BYTES + 256);
    for (k, p) in cloud.positions.iter().enumerate() {
        let _ = write!(text, "{} {} {}", p.x, p.y, p.z);
        if let Some(n) = &cloud.normals {
            let _ = write!(text, " {} {} {}", n[k].x, n[k].y, n[k].z);
        }
        if let Some(c) = &cloud.colors {
            let _ = write!(text, " {} {} {}", c[k][0], c[k][1], c[k][2]);
        }
        text.push('\n');
        if text.len() >= ASCII_CHUNK_BYTES {
            writer.write_all(text.as_bytes())?;
            text.clear();
        }
    }
    writer.write_all(text.as_bytes())
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/// One vertex as ply-rs-bw hands it over; unknown properties are ignored.
#[derive(Debug, Clone, Copy, Default)]
struct VertexRecord {
    position: [f32; 3],
    normal: [f32; 3],
    color: [u8; 3],
}

impl VertexRecord {
    fn set_f32(&mut self, name: &str, v: f32) -> PropertyAccessResult {
        match name {
            "x" => self.position[0] = v,
            "y" => self.position[1] = v,
            "z" => self.position[2] = v,
            "nx" => self.normal[0] = v,
            "ny" => self.normal[1] = v,
            "nz" => self.normal[2] = v,
            _ => return PropertyAccessResult::Ignored,
        }
        PropertyAccessResult::Set
    }
}

impl PropertyAccess for VertexRecord {
    fn new() -> Self {
        Self::default()
    }
    fn set_float(&mut self, name: &str, v: f32) -> PropertyAccessResult {
        self.set_f32(name, v)
    }
    fn set_double(&mut self, name: &str, v: f64) -> PropertyAccessResult {
        // Open3D's legacy writer stores doubles; camera-frame metres fit f32.
        self.set_f32(name, v as f32)
    }
    fn set_uchar(&mut self, name: &str, v: u8) -> PropertyAccessResult {
        match name {
            "red" => self.color[0] = v,
            "green" => self.color[1] = v,
            "blue" => self.color[2] = v,
            _ => return PropertyAccessResult::Ignored,
        }
        PropertyAccessResult::Set
    }
}

/// Elements other than `vertex` (e.g. `face`) are parsed and dropped.
struct Ignored;

impl PropertyAccess for Ignored {
    fn new() -> Self {
        Ignored
    }
}

const FLOAT_PROPERTIES: [&str; 6] = ["x", "y", "z", "nx", "ny", "nz"];
const COLOR_PROPERTIES: [&str; 3] = ["red", "green", "blue"];

/// Bytes per element in a binary payload, or `None` if it has a list property (variable size).
fn fixed_element_bytes(element: &ply_rs_bw::ply::ElementDef) -> Option<u64> {
    element
        .properties
        .values()
        .try_fold(0u64, |acc, p| match &p.data_type {
            PropertyType::Scalar(s) => Some(acc + scalar_bytes(s)),
            PropertyType::List(..) => None,
        })
}

fn scalar_bytes(s: &ScalarType) -> u64 {
    match s {
        ScalarType::Char | ScalarType::UChar => 1,
        ScalarType::Short | ScalarType::UShort => 2,
        ScalarType::Int | ScalarType::UInt | ScalarType::Float => 4,
        ScalarType::Double => 8,
    }
}

/// Reads a PLY file (ASCII or binary, either endianness) into a cloud, plus its header comments in order.
///
/// Reads `x y z` (float or double), `nx ny nz` when all three are present, and `red green blue` (uchar)
/// when all three are present; other properties and elements are ignored. The frame is taken from a
/// `frame=opencv|opengl` token in the comments (default OpenCV). A truncated file or bytes after the
/// announced data are errors, never a silent short read.
pub fn read_ply(path: &Path) -> Result<(PointCloud, Vec<String>), PlyError> {
    let read_err = |source| PlyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let file_len = file.metadata().map_err(read_err)?.len();
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file));
    // Say "not a PLY" for other files instead of the parser's complaint about their first line.
    let head = reader.get_mut().fill_buf().map_err(read_err)?;
    if !(head.starts_with(b"ply\n") || head.starts_with(b"ply\r")) {
        let detail = "the file does not start with the `ply` signature line".to_string();
        return Err(PlyError::Parse {
            detail,
            path: path.to_path_buf(),
        });
    }
    let vertex_parser = Parser::<VertexRecord>::new();
    let header = vertex_parser
        .read_header(&mut reader)
        .map_err(|e| parse_error(e, path))?;

    let vertex = header
        .elements
        .get("vertex")
        .ok_or_else(|| PlyError::MissingVertices {
            path: path.to_path_buf(),
        })?;
    check_property_types(vertex, path)?;
    let has = |names: &[&str]| names.iter().all(|n| vertex.properties.contains_key(*n));
    if !has(&FLOAT_PROPERTIES[..3]) {
        return Err(PlyError::MissingVertices {
            path: path.to_path_buf(),
        });
    }
    let has_normals = has(&FLOAT_PROPERTIES[3..]);
    let has_colors = has(&COLOR_PROPERTIES);

    if header.encoding != Encoding::Ascii {
        check_binary_length(&header, &mut reader, file_len, path)?;
    }

    let mut records = Vec::new();
    for element in header.elements.values() {
        if element.name == "vertex" {
            records = vertex_parser
                .read_payload_for_element(&mut reader, element, &header)
                .map_err(|e| parse_error(e, path))?;
        } else {
            Parser::<Ignored>::new()
                .read_payload_for_element(&mut reader, element, &header)
                .map_err(|e| parse_error(e, path))?;
        }
    }
    check_no_trailing_data(&header, reader.get_mut(), path)?;

    let frame = header
        .comments
        .iter()
        .flat_map(|c| c.split_whitespace())
        .find_map(|token| match token {
            "frame=opencv" => Some(Frame::OpenCv),
            "frame=opengl" => Some(Frame::OpenGl),
            _ => None,
        })
        .unwrap_or_default();
    let cloud = PointCloud {
        positions: records.iter().map(|r| Point3::from(r.position)).collect(),
        normals: has_normals.then(|| records.iter().map(|r| Vector3::from(r.normal)).collect()),
        colors: has_colors.then(|| records.iter().map(|r| r.color).collect()),
        frame,
    };
    Ok((cloud, header.comments))
}

fn parse_error(e: ply_rs_bw::parser::ParseError, path: &Path) -> PlyError {
    let detail = e.to_string().replace(['\n', '\t'], " ");
    if e.kind() == io::ErrorKind::UnexpectedEof {
        PlyError::Truncated {
            detail,
            path: path.to_path_buf(),
        }
    } else {
        PlyError::Parse {
            detail,
            path: path.to_path_buf(),
        }
    }
}

fn check_property_types(vertex: &ply_rs_bw::ply::ElementDef, path: &Path) -> Result<(), PlyError> {
    for p in vertex.properties.values() {
        let expected = if FLOAT_PROPERTIES.contains(&p.name.as_str()) {
            "float or double"
        } else if COLOR_PROPERTIES.contains(&p.name.as_str()) {
            "uchar"
        } else {
            continue;
        };
        let ok = match &p.data_type {
            PropertyType::Scalar(ScalarType::Float | ScalarType::Double) => expected == "float or double",
            PropertyType::Scalar(ScalarType::UChar) => expected == "uchar",
            _ => false,
        };
        if !ok {
            return Err(PlyError::UnsupportedPropertyType {
                property: p.name.clone(),
                found: format!("{:?}", p.data_type),
                expected,
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// For binary files with fixed-size elements, compares the announced payload size with the file size
/// before parsing, so truncation is reported with exact numbers (and a huge bogus count costs nothing).
fn check_binary_length<R: BufRead + Seek>(
    header: &Header,
    reader: &mut Reader<R>,
    file_len: u64,
    path: &Path,
) -> Result<(), PlyError> {
    let mut expected = 0u64;
    for element in header.elements.values() {
        let Some(bytes) = fixed_element_bytes(element) else {
            return Ok(()); // list properties: the parser's own end-of-file check applies
        };
        expected = expected.saturating_add(bytes.saturating_mul(element.count as u64));
    }
    let data_start = reader
        .get_mut()
        .stream_position()
        .map_err(|source| PlyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let available = file_len.saturating_sub(data_start);
    let vertex_count = header.elements.get("vertex").map_or(0, |v| v.count);
    if available < expected {
        return Err(PlyError::Truncated {
            detail: format!(
                "the header announces {vertex_count} vertices, {expected} bytes of data, but only {available} \
                 bytes follow it"
            ),
            path: path.to_path_buf(),
        });
    }
    if available > expected {
        return Err(PlyError::TrailingData {
            bytes: available - expected,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn check_no_trailing_data<R: BufRead>(header: &Header, reader: &mut R, path: &Path) -> Result<(), PlyError> {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(|source| PlyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let extra = if header.encoding == Encoding::Ascii {
        // Trailing blank lines are harmless in ASCII files.
        rest.iter().filter(|b| !b.is_ascii_whitespace()).count()
    } else {
        rest.len()
    };
    if extra > 0 {
        return Err(PlyError::TrailingData {
            bytes: rest.len() as u64,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_cloud() -> PointCloud {
        PointCloud {
            positions: vec![Point3::new(1.0, 2.0, 3.0), Point3::new(-0.5, 0.1, 250.0)],
            normals: Some(vec![Vector3::new(0.0, 0.0, -1.0), Vector3::new(0.6, 0.0, -0.8)]),
            colors: Some(vec![[255, 0, 7], [1, 2, 3]]),
            frame: Frame::OpenCv,
        }
    }

    #[test]
    fn golden_header() {
        let options = PlyWriteOptions::default()
            .with_comment("depth2ply test")
            .with_comment("  line one\nline two\r ")
            .with_comment("café\u{7}")
            .with_comment(" \n ");
        let expected = "ply\n\
            format binary_little_endian 1.0\n\
            comment frame=opencv units=metres\n\
            comment depth2ply test\n\
            comment line one line two\n\
            comment caf\\u{e9}\n\
            comment\n\
            element vertex 2\n\
            property float x\n\
            property float y\n\
            property float z\n\
            property float nx\n\
            property float ny\n\
            property float nz\n\
            property uchar red\n\
            property uchar green\n\
            property uchar blue\n\
            end_header\n";
        assert_eq!(ply_header(&tiny_cloud(), &options), expected);

        let bare = PointCloud {
            positions: vec![Point3::origin()],
            frame: Frame::OpenGl,
            ..Default::default()
        };
        let options = PlyWriteOptions {
            encoding: PlyEncoding::Ascii,
            comments: vec![],
        };
        assert_eq!(
            ply_header(&bare, &options),
            "ply\nformat ascii 1.0\ncomment frame=opengl units=metres\nelement vertex 1\n\
             property float x\nproperty float y\nproperty float z\nend_header\n"
        );
    }

    #[test]
    fn golden_binary_payload() {
        let cloud = PointCloud {
            positions: vec![Point3::new(1.0, 2.0, 3.0)],
            ..tiny_cloud()
        };
        let cloud = PointCloud {
            normals: Some(vec![Vector3::new(0.0, 0.0, -1.0)]),
            colors: Some(vec![[255, 0, 7]]),
            ..cloud
        };
        let options = PlyWriteOptions::default();
        let mut bytes = Vec::new();
        write_ply(&mut bytes, &cloud, &options).unwrap();
        let header_len = ply_header(&cloud, &options).len();
        // IEEE 754 little endian: 1.0 = 0x3f800000, 2.0 = 0x40000000, 3.0 = 0x40400000, −1.0 = 0xbf800000.
        let expected: &[u8] = &[
            0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, // x y z
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xbf, // nx ny nz
            255, 0, 7, // red green blue
        ];
        assert_eq!(&bytes[header_len..], expected);
    }

    #[test]
    fn golden_ascii_payload() {
        let options = PlyWriteOptions {
            encoding: PlyEncoding::Ascii,
            comments: vec![],
        };
        let mut bytes = Vec::new();
        write_ply(&mut bytes, &tiny_cloud(), &options).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let payload = text.split("end_header\n").nth(1).unwrap();
        assert_eq!(payload, "1 2 3 0 0 -1 255 0 7\n-0.5 0.1 250 0.6 0 -0.8 1 2 3\n");
    }

    #[test]
    fn rejects_bad_clouds_before_writing() {
        let mut bytes = Vec::new();
        let short_colors = PointCloud {
            colors: Some(vec![[0; 3]]),
            ..tiny_cloud()
        };
        let err = write_ply(&mut bytes, &short_colors, &PlyWriteOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            PlyError::AttributeLength {
                attribute: "colors",
                positions: 2,
                got: 1,
                ..
            }
        ));
        let short_normals = PointCloud {
            normals: Some(vec![]),
            ..tiny_cloud()
        };
        let err = write_ply(&mut bytes, &short_normals, &PlyWriteOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            PlyError::AttributeLength {
                attribute: "normals",
                ..
            }
        ));

        let mut nan_point = tiny_cloud();
        nan_point.positions[1].y = f32::NAN;
        let err = write_ply(&mut bytes, &nan_point, &PlyWriteOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                PlyError::NonFinite {
                    index: 1,
                    attribute: "position",
                    ..
                }
            ),
            "{err}"
        );
        let mut inf_normal = tiny_cloud();
        inf_normal.normals.as_mut().unwrap()[0].x = f32::INFINITY;
        let err = write_ply(&mut bytes, &inf_normal, &PlyWriteOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            PlyError::NonFinite {
                index: 0,
                attribute: "normal",
                ..
            }
        ));
        assert!(bytes.is_empty(), "nothing may be written for an invalid cloud");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ply");
        let err = write_ply_file(&path, &nan_point, &PlyWriteOptions::default()).unwrap_err();
        assert!(err.to_string().ends_with(&path.display().to_string()), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn comment_sanitising() {
        assert_eq!(sanitize_comment("a\nb\r\nc\td"), "a b  c d");
        assert_eq!(sanitize_comment("  keep inner  spaces "), "keep inner  spaces");
        assert_eq!(sanitize_comment("µ"), "\\u{b5}");
    }

    #[test]
    fn provenance_comments() {
        use crate::camera::{FocalSource, ImageSize};
        let k = Intrinsics::from_focal_px(ImageSize::new(640, 480), 525.0).unwrap();
        assert_eq!(
            intrinsics_comment(&k),
            "intrinsics width=640 height=480 fx_px=525 fy_px=525 cx_px=319.5 cy_px=239.5"
        );
        let f = FocalLength::new(1234.5, FocalSource::Exif35mm).unwrap();
        assert_eq!(focal_comment(&f), "focal_px=1234.5 source=exif-35mm");
    }
}
