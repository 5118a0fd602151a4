//! Test inputs made on the fly: non-square photos with and without EXIF, depth maps of analytic scenes
//! in the formats depth2ply reads, and deliberately broken files.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage};

/// Width of the displayed test image (non-square on purpose).
pub const W: u32 = 64;
/// Height of the displayed test image.
pub const H: u32 = 48;
/// √(36² + 24²), the diagonal of a 36 × 24 mm frame.
pub const FULL_FRAME_DIAGONAL_MM: f64 = 43.266_615_305_567_87;

/// The focal length in pixels that EXIF `FocalLengthIn35mmFilm = f35_mm` implies for a `w × h` image:
/// `f35 · √(w² + h²) / √(36² + 24²)` (COLMAP `ExifFocalLength`, Apple Depth Pro `load_rgb`).
pub fn focal_from_35mm(f35_mm: u16, w: u32, h: u32) -> f64 {
    f64::from(f35_mm) * (w as f64).hypot(h as f64) / FULL_FRAME_DIAGONAL_MM
}

/// A colour gradient so that every pixel differs (red follows u, green follows v).
pub fn gradient(w: u32, h: u32) -> RgbImage {
    ImageBuffer::from_fn(w, h, |u, v| {
        Rgb([(u * 255 / w.max(1)) as u8, (v * 255 / h.max(1)) as u8, 128])
    })
}

/// What to put in the EXIF block.
#[derive(Clone, Copy, Default)]
pub struct Exif {
    pub orientation: Option<u16>,
    pub focal_35mm: Option<u16>,
}

/// A little-endian TIFF block (the payload of a JPEG APP1 "Exif" segment or a PNG eXIf chunk): IFD0
/// with `Orientation` and a pointer to an Exif IFD holding `FocalLengthIn35mmFilm`.
pub fn exif_block(exif: Exif) -> Vec<u8> {
    // Entries are (tag, type, value); type 3 = SHORT, 4 = LONG; all values fit inline.
    let mut ifd0: Vec<(u16, u16, u32)> = Vec::new();
    if let Some(o) = exif.orientation {
        ifd0.push((0x0112, 3, u32::from(o)));
    }
    let exif_entries: Vec<(u16, u16, u32)> = exif
        .focal_35mm
        .map(|f| (0xA405, 3, u32::from(f)))
        .into_iter()
        .collect();
    let ifd_len = |n: usize| 2 + 12 * n as u32 + 4;
    let ifd0_offset = 8u32;
    let n0 = ifd0.len() + usize::from(!exif_entries.is_empty());
    let exif_offset = ifd0_offset + ifd_len(n0);
    if !exif_entries.is_empty() {
        ifd0.push((0x8769, 4, exif_offset));
    }
    let write_ifd = |out: &mut Vec<u8>, entries: &[(u16, u16, u32)]| {
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, typ, value) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            if typ == 3 {
                out.extend_from_slice(&(value as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
    };
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&ifd0_offset.to_le_bytes());
    write_ifd(&mut out, &ifd0);
    if !exif_entries.is_empty() {
        write_ifd(&mut out, &exif_entries);
    }
    out
}

/// Writes `image` as a JPEG (quality 95), with `exif` as the raw APP1 payload when given.
pub fn write_jpeg(path: &Path, image: &RgbImage, exif: Option<Vec<u8>>) {
    let mut bytes = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut bytes, 95);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    create_parent(path);
    std::fs::write(path, bytes).unwrap();
}

/// Writes `image` as an 8-bit RGB PNG without metadata.
pub fn write_png(path: &Path, image: &RgbImage) {
    create_parent(path);
    image.save(path).unwrap();
}

/// Writes `image` as an 8-bit RGB PNG with `exif` in an eXIf chunk.
pub fn write_png_with_exif(path: &Path, image: &RgbImage, exif: Vec<u8>) {
    let mut bytes = Vec::new();
    let mut encoder = PngEncoder::new(&mut bytes);
    encoder.set_exif_metadata(exif).unwrap();
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    create_parent(path);
    std::fs::write(path, bytes).unwrap();
}

/// Writes a 16-bit grey PNG depth map whose value at `(u, v)` is `depth_mm(u, v)`.
pub fn write_depth_png(path: &Path, w: u32, h: u32, depth_mm: impl Fn(u32, u32) -> u16) {
    let image: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(w, h, |u, v| Luma([depth_mm(u, v)]));
    create_parent(path);
    let mut bytes = Vec::new();
    image.write_with_encoder(PngEncoder::new(&mut bytes)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Writes a NumPy `.npy` (format 1.0) with dtype `descr` (e.g. `<f4`), `shape` and raw little-endian
/// `data`, exactly as `numpy.save` lays it out.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let shape_text = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    create_parent(path);
    std::fs::write(path, bytes).unwrap();
}

/// A float32 `(h, w)` `.npy` depth map in metres.
pub fn write_depth_npy(path: &Path, w: u32, h: u32, depth_m: impl Fn(u32, u32) -> f32) {
    let data: Vec<u8> = (0..h)
        .flat_map(|v| (0..w).map(move |u| (v, u)))
        .flat_map(|(v, u)| depth_m(u, v).to_le_bytes())
        .collect();
    write_npy(path, "<f4", &[h as usize, w as usize], &data);
}

fn create_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
}
