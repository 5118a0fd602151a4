//! A deterministic synthetic RGB-D scene for benchmarks: a room seen by a pinhole camera, with depth
//! edges (a box and a sphere in front of a rippled back wall), a floor plane, a ceiling-free "sky" band
//! with no depth, and a textured colour image. Shared by `benches/pipeline.rs` and
//! `examples/pipeline_peak.rs` through `#[path]`.

use depth2ply_geometry::{DepthMap, ImageSize, Intrinsics};
use image::RgbImage;
use rayon::prelude::*;

/// The 12 MP size of a typical phone photo (4:3).
#[allow(dead_code)]
pub const PHOTO_SIZE: ImageSize = ImageSize::new(4032, 3024);

/// A synthetic frame: depth in metres, the colour image and the camera.
pub struct Scene {
    /// z-depth in metres; 0 where nothing was hit (the band above the wall).
    pub depth: DepthMap,
    /// Colour image of the same size.
    pub rgb: RgbImage,
    /// Pinhole camera (f = 0.8·W, about a 64° horizontal field of view, centred principal point).
    pub intrinsics: Intrinsics,
}

/// Camera height above the floor in metres (OpenCV: the floor is the plane y = +1.5).
const CAMERA_HEIGHT_M: f64 = 1.5;
/// Back wall distance at the image centre, metres.
const WALL_M: f64 = 7.0;
/// Wall top (y, metres, OpenCV y down: negative is up); above it there is no depth.
const WALL_TOP_Y_M: f64 = -2.2;
const SPHERE_CENTRE_M: [f64; 3] = [0.9, 0.35, 3.2];
const SPHERE_RADIUS_M: f64 = 0.7;
/// Front face of the box (plane z = const) and its x/y extent, metres.
const BOX_Z_M: f64 = 2.4;
const BOX_X_M: [f64; 2] = [-1.4, -0.3];
const BOX_Y_M: [f64; 2] = [0.2, 1.5];

/// Builds the scene at `size` (rows in parallel).
pub fn make_scene(size: ImageSize) -> Result<Scene, Box<dyn std::error::Error>> {
    let (w, h) = (size.width as usize, size.height as usize);
    let focal_px = 0.8 * size.width as f64;
    let intrinsics = Intrinsics::from_focal_px(size, focal_px)?;
    let mut depth = vec![0f32; w * h];
    let mut rgb = vec![0u8; 3 * w * h];
    depth
        .par_chunks_mut(w)
        .zip(rgb.par_chunks_mut(3 * w))
        .enumerate()
        .for_each(|(v, (drow, crow))| {
            for u in 0..w {
                let (z, shade, id) = trace(&intrinsics, u as f64, v as f64);
                drow[u] = z as f32;
                // Checkerboard texture per surface, shaded by distance so colours vary smoothly too.
                let checker = ((u / 64 + v / 64) % 2) as f64;
                let base: [f64; 3] = match id {
                    0 => [40.0, 60.0, 90.0],    // no depth: dark blue
                    1 => [200.0, 190.0, 170.0], // wall
                    2 => [120.0, 90.0, 60.0],   // floor
                    3 => [200.0, 60.0, 50.0],   // box
                    _ => [60.0, 160.0, 80.0],   // sphere
                };
                for c in 0..3 {
                    crow[3 * u + c] = (base[c] * shade * (0.85 + 0.15 * checker)).clamp(0.0, 255.0) as u8;
                }
            }
        });
    Ok(Scene {
        depth: DepthMap::new(size, depth)?,
        rgb: RgbImage::from_raw(size.width, size.height, rgb).ok_or("colour buffer size")?,
        intrinsics,
    })
}

/// Nearest surface along the ray of pixel (u, v): (z-depth, shade in [0.4, 1], surface id).
fn trace(k: &Intrinsics, u: f64, v: f64) -> (f64, f64, u8) {
    // Ray direction with z = 1, so t along it is the z-depth.
    let dx = (u - k.cx_px) / k.fx_px;
    let dy = (v - k.cy_px) / k.fy_px;
    let mut best = (f64::INFINITY, 1.0, 0u8);
    // Back wall, tilted slightly and rippled (1 cm amplitude) so normals are not all identical.
    let wall_z = WALL_M + 0.8 * dx + 0.01 * (dx * 40.0).sin() * (dy * 30.0).cos();
    if dy * wall_z > WALL_TOP_Y_M {
        best = (wall_z, 0.9, 1);
    }
    // Floor y = CAMERA_HEIGHT_M.
    if dy > 1e-6 {
        let z = CAMERA_HEIGHT_M / dy;
        if z < best.0 {
            best = (z, (1.0 - z / 20.0).clamp(0.4, 1.0), 2);
        }
    }
    // Box front face.
    let (bx, by) = (dx * BOX_Z_M, dy * BOX_Z_M);
    if (BOX_X_M[0]..BOX_X_M[1]).contains(&bx) && (BOX_Y_M[0]..BOX_Y_M[1]).contains(&by) && BOX_Z_M < best.0 {
        best = (BOX_Z_M, 1.0, 3);
    }
    // Sphere: |t·d − c|² = r², nearest root.
    let d = [dx, dy, 1.0];
    let c = SPHERE_CENTRE_M;
    let dd = d[0] * d[0] + d[1] * d[1] + 1.0;
    let dc = d[0] * c[0] + d[1] * c[1] + d[2] * c[2];
    let cc = c[0] * c[0] + c[1] * c[1] + c[2] * c[2];
    let disc = dc * dc - dd * (cc - SPHERE_RADIUS_M * SPHERE_RADIUS_M);
    if disc >= 0.0 {
        let t = (dc - disc.sqrt()) / dd;
        if t > 0.0 && t < best.0 {
            // Lambert-like shade from the surface normal's z component.
            let n_z = (t - c[2]) / SPHERE_RADIUS_M;
            best = (t, (0.4 + 0.6 * (-n_z).clamp(0.0, 1.0)), 4);
        }
    }
    if best.0.is_finite() {
        best
    } else {
        (0.0, 1.0, 0)
    }
}
