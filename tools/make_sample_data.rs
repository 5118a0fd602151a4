//! Generates the sample inputs in `data/`: a synthetic photo with an EXIF focal length and its exact
//! depth map, so that a newcomer can run the whole pipeline without weights.
//!
//! Run (from the repository root; it overwrites the files):
//!
//! ```text
//! cargo run -p depth2ply --example make_sample_data -- data
//! ```
//!
//! Outputs (the file names follow the CLI's depth naming rule, `<stem>.depth.png`):
//! - `box_scene.jpg`: 512×384 (non-square on purpose) 8-bit RGB JPEG, quality 92, with EXIF
//!   `FocalLengthIn35mmFilm = 28`, `Orientation = 1`, `PixelXDimension/PixelYDimension = 512/384`,
//!   `Make = "depth2ply"`, `Model = "make_sample_data"`.
//! - `box_scene.depth.png`: 512×384 16-bit grey PNG, z-depth in **millimetres** (depth2ply's default
//!   `--depth-scale 1000`), every pixel valid.
//!
//! The scene, in the OpenCV camera frame (metres; +X right, +Y down, +Z forward), camera at the origin:
//! - a back wall, the plane `z = 3.0`;
//! - a floor, the plane `y = 0.8` (0.8 m below the camera);
//! - a box `x ∈ [0.15, 0.85], y ∈ [0.35, 0.8], z ∈ [1.7, 2.3]` standing on the floor (its front, left
//!   and top faces are visible).
//!
//! The camera is the one the EXIF implies (depth2ply's rule 1, COLMAP / Apple Depth Pro):
//! `f = 28 · √(512² + 384²) / √(36² + 24²) = 28 · 640 / 43.2666 ≈ 414.17 px`, principal point at the
//! image centre `((W − 1)/2, (H − 1)/2) = (255.5, 191.5)` (pixel centres at integer coordinates). For
//! pixel `(u, v)` the ray is `((u − cx)/f, (v − cy)/f, 1)`, so the parameter of the nearest hit is the
//! z-depth directly. Depths are rounded to whole millimetres, so back-projected points lie on the
//! analytic surfaces within 0.5 mm in z.
//!
//! Colours are flat per surface with a 25 cm checker pattern on the wall and the floor (visible in
//! viewers); box faces are shaded differently so that its edges stand out.

use std::error::Error;
use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};

const WIDTH: u32 = 512;
const HEIGHT: u32 = 384;
const FOCAL_35MM: u16 = 28;
/// √(36² + 24²): the diagonal of a 36 × 24 mm frame.
const FULL_FRAME_DIAGONAL_MM: f64 = 43.266_615_305_567_87;

const WALL_Z_M: f64 = 3.0;
const FLOOR_Y_M: f64 = 0.8;
const BOX_MIN_M: [f64; 3] = [0.15, 0.35, 1.7];
const BOX_MAX_M: [f64; 3] = [0.85, 0.8, 2.3];

#[derive(Clone, Copy)]
enum Surface {
    Wall,
    Floor,
    /// Which box face was hit: 0 = x, 1 = y, 2 = z (its normal axis).
    Box(usize),
}

/// Nearest intersection of the ray `t · dir` (dir.z = 1, so t is the z-depth) with the scene.
fn trace(dir: [f64; 3]) -> (f64, Surface, [f64; 3]) {
    let mut best = (WALL_Z_M, Surface::Wall);
    if dir[1] > 0.0 {
        let t = FLOOR_Y_M / dir[1];
        if t < best.0 {
            best = (t, Surface::Floor);
        }
    }
    // Slab method: the entry parameter is the largest of the per-axis near distances.
    let (mut t_near, mut t_far, mut axis) = (f64::NEG_INFINITY, f64::INFINITY, 2);
    for i in 0..3 {
        let (a, b) = ((BOX_MIN_M[i]) / dir[i], (BOX_MAX_M[i]) / dir[i]);
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if lo > t_near {
            t_near = lo;
            axis = i;
        }
        t_far = t_far.min(hi);
    }
    if t_near <= t_far && t_near > 0.0 && t_near < best.0 {
        best = (t_near, Surface::Box(axis));
    }
    let (t, surface) = best;
    (t, surface, [dir[0] * t, dir[1] * t, dir[2] * t])
}

fn colour(surface: Surface, point: [f64; 3]) -> Rgb<u8> {
    let checker = |a: f64, b: f64| ((a / 0.25).floor() as i64 + (b / 0.25).floor() as i64).rem_euclid(2) == 0;
    match surface {
        Surface::Wall if checker(point[0], point[1]) => Rgb([170, 190, 210]),
        Surface::Wall => Rgb([140, 160, 185]),
        Surface::Floor if checker(point[0], point[2]) => Rgb([150, 110, 70]),
        Surface::Floor => Rgb([120, 85, 50]),
        Surface::Box(0) => Rgb([170, 60, 40]),
        Surface::Box(1) => Rgb([240, 120, 80]),
        Surface::Box(_) => Rgb([215, 85, 55]),
    }
}

/// A little-endian TIFF block (what JPEG APP1 "Exif" and PNG eXIf hold) with IFD0 and an Exif IFD.
fn exif_block() -> Vec<u8> {
    // (tag, type, count, value bytes); type 2 = ASCII, 3 = SHORT, 4 = LONG.
    type Entry = (u16, u16, u32, Vec<u8>);
    fn ascii(text: &str) -> (u32, Vec<u8>) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        (bytes.len() as u32, bytes)
    }
    fn write_ifd(out: &mut Vec<u8>, entries: &[Entry], next_data: &mut Vec<u8>, data_offset: u32) {
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, typ, count, value) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if value.len() <= 4 {
                let mut inline = value.clone();
                inline.resize(4, 0);
                out.extend_from_slice(&inline);
            } else {
                out.extend_from_slice(&(data_offset + next_data.len() as u32).to_le_bytes());
                next_data.extend_from_slice(value);
                if next_data.len() % 2 == 1 {
                    next_data.push(0);
                }
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    }
    let ifd_len = |n: usize| 2 + 12 * n as u32 + 4;

    let (make_n, make) = ascii("depth2ply");
    let (model_n, model) = ascii("make_sample_data");
    let exif_entries: Vec<Entry> = vec![
        (0xA002, 4, 1, WIDTH.to_le_bytes().to_vec()),
        (0xA003, 4, 1, HEIGHT.to_le_bytes().to_vec()),
        (0xA405, 3, 1, FOCAL_35MM.to_le_bytes().to_vec()),
    ];
    let ifd0_offset = 8u32;
    let ifd0_data_offset = ifd0_offset + ifd_len(4);
    let ifd0_data_len = (make.len() + model.len()).next_multiple_of(2) as u32 + 2;
    let exif_offset = ifd0_data_offset + ifd0_data_len;
    let ifd0_entries: Vec<Entry> = vec![
        (0x010F, 2, make_n, make),
        (0x0110, 2, model_n, model),
        (0x0112, 3, 1, 1u16.to_le_bytes().to_vec()),
        (0x8769, 4, 1, exif_offset.to_le_bytes().to_vec()),
    ];

    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&ifd0_offset.to_le_bytes());
    let mut data = Vec::new();
    write_ifd(&mut out, &ifd0_entries, &mut data, ifd0_data_offset);
    data.resize(ifd0_data_len as usize, 0);
    out.extend_from_slice(&data);
    let mut exif_data = Vec::new();
    write_ifd(
        &mut out,
        &exif_entries,
        &mut exif_data,
        exif_offset + ifd_len(exif_entries.len()),
    );
    out.extend_from_slice(&exif_data);
    out
}

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data".into()));
    std::fs::create_dir_all(&out_dir)?;

    let diagonal_px = (WIDTH as f64).hypot(HEIGHT as f64);
    let focal_px = FOCAL_35MM as f64 * diagonal_px / FULL_FRAME_DIAGONAL_MM;
    let (cx, cy) = ((WIDTH as f64 - 1.0) / 2.0, (HEIGHT as f64 - 1.0) / 2.0);

    let mut rgb = RgbImage::new(WIDTH, HEIGHT);
    let mut depth_mm = Vec::with_capacity((WIDTH * HEIGHT) as usize);
    for v in 0..HEIGHT {
        for u in 0..WIDTH {
            let dir = [(u as f64 - cx) / focal_px, (v as f64 - cy) / focal_px, 1.0];
            let (z_m, surface, point) = trace(dir);
            rgb.put_pixel(u, v, colour(surface, point));
            depth_mm.push((z_m * 1000.0).round() as u16);
        }
    }

    let jpeg_path = out_dir.join("box_scene.jpg");
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 92);
    encoder.set_exif_metadata(exif_block())?;
    encoder.write_image(rgb.as_raw(), WIDTH, HEIGHT, ExtendedColorType::Rgb8)?;
    std::fs::write(&jpeg_path, jpeg)?;

    let depth_path = out_dir.join("box_scene.depth.png");
    // `write_image` takes 16-bit samples in native byte order (the encoder makes them big-endian).
    let bytes: Vec<u8> = depth_mm.iter().flat_map(|d| d.to_ne_bytes()).collect();
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(&bytes, WIDTH, HEIGHT, ExtendedColorType::L16)?;
    std::fs::write(&depth_path, png)?;

    println!(
        "wrote {} and {} ({WIDTH}×{HEIGHT}, focal {focal_px:.3} px from 28 mm equivalent)",
        jpeg_path.display(),
        depth_path.display()
    );
    Ok(())
}
