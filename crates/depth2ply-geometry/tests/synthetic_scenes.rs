//! Back-projection, normals and filters on analytically rendered scenes.
//!
//! Every depth map here is made by casting one ray per pixel centre through the pinhole model and
//! intersecting it with planes, spheres and rectangles in closed form (z-depth = ray parameter, because
//! the ray is `((u − cx)/fx, (v − cy)/fy, 1)`), so the expected points and normals are exact formulas.
//! All images are non-square, with off-centre principal points and `fx ≠ fy` where it matters.
//!
//! Tolerances. A back-projected coordinate is `a·z` with `a = (u − cx)/fx` rounded once to f32 and the
//! product rounded once more, and the rendered depth itself is rounded to f32: at most ~3 f32 roundings,
//! a relative error ≤ 3·2⁻²⁴ ≈ 1.8e-7 of |p|. We allow `POINT_RTOL = 1e-6` of |p| (≈ 8 ulp), so a failure
//! means a wrong formula, not rounding. Normals of planes are exact up to rounding (chords of a plane
//! lie in it); on the sphere the central difference is a chord, so the error is O(pixel²/radius²).

// Helpers outside #[test] fns unwrap too; a failed unwrap is a test failure.
#![allow(clippy::unwrap_used)]

use depth2ply_geometry::filter::{flying_pixel_mask, remove_statistical_outliers, voxel_downsample};
use depth2ply_geometry::nalgebra::{Point3, Vector3};
use depth2ply_geometry::{
    cloud_from_depth, CloudConfig, DepthMap, DropReport, FilterConfig, Frame, ImageSize, Intrinsics,
    PointCloud, StatisticalOutlierConfig,
};
use image::RgbImage;
use proptest::prelude::*;

/// Allowed point error relative to |p| (see the module docs).
const POINT_RTOL: f64 = 1e-6;

type V3 = Vector3<f64>;

/// An analytic surface.
#[derive(Clone, Copy)]
enum Surface {
    /// Points `X` with `n · X = d` (`n` unit, facing the camera: `d < 0`).
    Plane { n: V3, d: f64 },
    /// Sphere with centre and radius in metres.
    Sphere { centre: V3, radius: f64 },
    /// Fronto-parallel rectangle at depth `z` (a box's front face), `x ∈ [x0, x1]`, `y ∈ [y0, y1]`.
    Rect {
        z: f64,
        x0: f64,
        x1: f64,
        y0: f64,
        y1: f64,
    },
}

impl Surface {
    /// Ray parameter (= z-depth for a ray with unit z) of the first hit, if any.
    fn hit(&self, ray: &V3) -> Option<f64> {
        match *self {
            Surface::Plane { n, d } => {
                let t = d / n.dot(ray);
                (t > 0.0).then_some(t)
            }
            Surface::Sphere { centre, radius } => {
                // |t·r − c|² = R²  →  a t² − 2 b t + c = 0.
                let a = ray.dot(ray);
                let b = ray.dot(&centre);
                let c = centre.dot(&centre) - radius * radius;
                let disc = b * b - a * c;
                (disc >= 0.0).then(|| (b - disc.sqrt()) / a).filter(|&t| t > 0.0)
            }
            Surface::Rect { z, x0, x1, y0, y1 } => {
                let (x, y) = (ray.x * z, ray.y * z);
                (x >= x0 && x <= x1 && y >= y0 && y <= y1).then_some(z)
            }
        }
    }

    /// Outward unit normal at a point on the surface (towards the camera for the planes used here).
    fn normal_at(&self, p: &V3) -> V3 {
        match *self {
            Surface::Plane { n, .. } => n,
            Surface::Sphere { centre, .. } => (p - centre).normalize(),
            Surface::Rect { .. } => -V3::z(),
        }
    }

    /// Distance of a point from the surface (metres).
    fn residual(&self, p: &V3) -> f64 {
        match *self {
            Surface::Plane { n, d } => (n.dot(p) - d).abs(),
            Surface::Sphere { centre, radius } => ((p - centre).norm() - radius).abs(),
            Surface::Rect { z, .. } => (p.z - z).abs(),
        }
    }
}

/// A plane through `point` with normal along `n` (normalised, flipped to face the camera).
fn plane(n: V3, point: V3) -> Surface {
    let n = n.normalize();
    let n = if n.dot(&point) > 0.0 { -n } else { n };
    Surface::Plane { n, d: n.dot(&point) }
}

fn ray(k: &Intrinsics, u: usize, v: usize) -> V3 {
    V3::new(
        (u as f64 - k.cx_px) / k.fx_px,
        (v as f64 - k.cy_px) / k.fy_px,
        1.0,
    )
}

/// Rendered scene: z-depth per pixel (NaN where nothing is hit) and the index of the surface hit.
struct Render {
    k: Intrinsics,
    surfaces: Vec<Surface>,
    depth: Vec<f32>,
    hit: Vec<Option<usize>>,
}

impl Render {
    fn new(k: Intrinsics, surfaces: Vec<Surface>) -> Self {
        let (w, h) = (k.size.width as usize, k.size.height as usize);
        let mut depth = vec![f32::NAN; w * h];
        let mut hit = vec![None; w * h];
        for v in 0..h {
            for u in 0..w {
                let r = ray(&k, u, v);
                let nearest = surfaces
                    .iter()
                    .enumerate()
                    .filter_map(|(s, surface)| surface.hit(&r).map(|t| (t, s)))
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                if let Some((t, s)) = nearest {
                    depth[v * w + u] = t as f32;
                    hit[v * w + u] = Some(s);
                }
            }
        }
        Self {
            k,
            surfaces,
            depth,
            hit,
        }
    }

    fn width(&self) -> usize {
        self.k.size.width as usize
    }

    fn depth_map(&self) -> DepthMap {
        DepthMap::new(self.k.size, self.depth.clone()).unwrap()
    }

    /// The pixel a camera-frame (OpenCV) point projects to, rounded; panics if outside the image.
    fn pixel_of(&self, p: &Point3<f32>) -> (usize, usize) {
        let (u, v) = self
            .k
            .pixel_from_camera([p.x as f64, p.y as f64, p.z as f64])
            .unwrap();
        let (ur, vr) = (u.round(), v.round());
        assert!(
            (u - ur).abs() < 1e-3 && (v - vr).abs() < 1e-3,
            "point {p:?} projects off-centre to ({u}, {v})"
        );
        assert!(
            ur >= 0.0 && vr >= 0.0 && (ur as u32) < self.k.size.width && (vr as u32) < self.k.size.height
        );
        (ur as usize, vr as usize)
    }

    /// Whether every pixel within Chebyshev distance `r` of `(u, v)` hit the same surface.
    fn interior(&self, u: usize, v: usize, r: usize) -> bool {
        let (w, h) = (self.width(), self.k.size.height as usize);
        let s = self.hit[v * w + u];
        s.is_some()
            && (v.saturating_sub(r)..=(v + r).min(h - 1))
                .all(|y| (u.saturating_sub(r)..=(u + r).min(w - 1)).all(|x| self.hit[y * w + x] == s))
    }
}

fn angle_deg(a: &V3, b: &V3) -> f64 {
    a.cross(b).norm().atan2(a.dot(b)).to_degrees()
}

fn p64(p: &Point3<f32>) -> V3 {
    V3::new(p.x as f64, p.y as f64, p.z as f64)
}

fn n64(n: &Vector3<f32>) -> V3 {
    V3::new(n.x as f64, n.y as f64, n.z as f64)
}

/// 200×130 camera, fx ≠ fy, principal point off the centre (99.5, 64.5).
fn camera() -> Intrinsics {
    Intrinsics::new(ImageSize::new(200, 130), 180.0, 172.0, 103.3, 61.7).unwrap()
}

/// Checks every point against its pixel's surface and returns the largest normal error in degrees over
/// points whose 5×5 neighbourhood is on one surface and whose view angle is below `max_view_deg`.
fn check_points_and_normals(scene: &Render, cloud: &PointCloud, max_view_deg: f64) -> f64 {
    let normals = cloud.normals.as_ref().unwrap();
    assert_eq!(normals.len(), cloud.len());
    let mut worst = 0.0f64;
    for (p, n) in cloud.positions.iter().zip(normals) {
        let (u, v) = scene.pixel_of(p);
        let surface = scene.surfaces[scene.hit[v * scene.width() + u].unwrap()];
        let p = p64(p);
        assert!(
            surface.residual(&p) <= POINT_RTOL * p.norm(),
            "{p:?} is {} m off",
            surface.residual(&p)
        );
        let n = n64(n);
        assert!((n.norm() - 1.0).abs() < 1e-6, "normal {n:?} not unit");
        assert!(
            n.dot(&p) < 0.0,
            "normal {n:?} at {p:?} faces away from the camera"
        );
        let truth = surface.normal_at(&p);
        if scene.interior(u, v, 2) && angle_deg(&truth, &-p) < max_view_deg {
            worst = worst.max(angle_deg(&n, &truth));
        }
    }
    worst
}

#[test]
fn fronto_parallel_plane() {
    let k = camera();
    let scene = Render::new(k, vec![plane(V3::z(), V3::new(0.0, 0.0, 2.5))]);
    let (cloud, report) = cloud_from_depth(&scene.depth_map(), &k, None, &CloudConfig::default()).unwrap();
    // Every pixel sees the plane, no depth step: nothing is dropped.
    assert_eq!(
        report,
        DropReport {
            kept: 200 * 130,
            ..DropReport::default()
        }
    );
    for (i, p) in cloud.positions.iter().enumerate() {
        let (u, v) = (i % 200, i / 200);
        let expected = k.camera_from_pixel(u as f64, v as f64, 2.5);
        assert_eq!(p.z, 2.5);
        assert!(
            (p64(p) - V3::from(expected)).norm() <= POINT_RTOL * 2.5,
            "pixel ({u}, {v})"
        );
    }
    let worst = check_points_and_normals(&scene, &cloud, 90.0);
    assert!(worst < 0.01, "worst normal error {worst}°"); // measured: 0 (exactly (0, 0, −1))
}

#[test]
fn tilted_plane() {
    let k = camera();
    // Normal tilted ~33° from the optical axis; z ranges over ~2.4 m … 4.3 m across the image.
    let scene = Render::new(k, vec![plane(V3::new(0.45, -0.3, -1.0), V3::new(0.1, 0.0, 3.0))]);
    let (cloud, report) = cloud_from_depth(&scene.depth_map(), &k, None, &CloudConfig::default()).unwrap();
    // Relative depth change per pixel ≤ ~0.5 %, well under rtol = 4 %: nothing is dropped.
    assert_eq!(report.kept, 200 * 130);
    let worst = check_points_and_normals(&scene, &cloud, 90.0);
    // Plane chords are exact: the error is f32 rounding only (measured worst 0.0015°).
    assert!(worst < 0.01, "worst normal error {worst}°");
}

fn sphere_scene() -> Render {
    Render::new(
        camera(),
        vec![
            Surface::Sphere {
                centre: V3::new(0.15, -0.1, 2.2),
                radius: 0.6,
            },
            plane(V3::new(0.1, 0.05, -1.0), V3::new(0.0, 0.0, 4.0)),
        ],
    )
}

#[test]
fn sphere_in_front_of_a_wall() {
    let scene = sphere_scene();
    let (cloud, report) =
        cloud_from_depth(&scene.depth_map(), &scene.k, None, &CloudConfig::default()).unwrap();
    assert_eq!(report.total(), 200 * 130);
    assert_eq!(report.invalid_depth, 0);
    // The rim of the sphere (steep depth) and the wall next to the silhouette are flying pixels; the
    // rest stays: measured kept 24 799 of 26 000 (95.4 %), flying-pixel 1 201.
    assert!(report.kept > 24_500, "{report}");
    // Away from the silhouette (5×5 on one surface) and from grazing views (< 75°), normals are within
    // 1° of the analytic ones; measured worst 0.51° (sphere, near 75°: the central-difference chord
    // spans ~10 cm of a 0.6 m sphere there).
    let worst = check_points_and_normals(&scene, &cloud, 75.0);
    assert!(worst < 1.0, "worst normal error {worst}°");
}

#[test]
fn opengl_is_opencv_with_y_and_z_negated() {
    let scene = sphere_scene();
    let depth = scene.depth_map();
    for filter in [
        FilterConfig::default(),
        FilterConfig {
            voxel_size_m: Some(0.05),
            ..FilterConfig::default()
        },
    ] {
        let cv = CloudConfig {
            filter,
            ..CloudConfig::default()
        };
        let gl = CloudConfig {
            frame: Frame::OpenGl,
            ..cv
        };
        let (a, ra) = cloud_from_depth(&depth, &scene.k, None, &cv).unwrap();
        let (b, rb) = cloud_from_depth(&depth, &scene.k, None, &gl).unwrap();
        assert_eq!((a.frame, b.frame), (Frame::OpenCv, Frame::OpenGl));
        assert_eq!(ra, rb);
        assert_eq!(a.len(), b.len());
        for (p, q) in a.positions.iter().zip(&b.positions) {
            assert_eq!(*q, Point3::new(p.x, -p.y, -p.z));
        }
        for (n, m) in a
            .normals
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.normals.as_ref().unwrap())
        {
            assert_eq!(*m, Vector3::new(n.x, -n.y, -n.z));
            // Still facing the camera: the change of frame is a rotation.
        }
        for (q, m) in b.positions.iter().zip(b.normals.as_ref().unwrap()) {
            assert!(m.dot(&q.coords) < 0.0);
        }
    }
}

/// Sprinkles zero, negative, NaN and infinite depths over a rendered scene; returns how many.
fn punch_holes(depth: &mut [f32]) -> usize {
    let bad = [0.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut count = 0;
    for (i, z) in depth.iter_mut().enumerate() {
        // A scattered pattern plus a solid 9×7 block (rows 20..27, columns 40..49 of a 200-wide map).
        let (u, v) = (i % 200, i / 200);
        if (i * 7919) % 97 == 0 || ((40..49).contains(&u) && (20..27).contains(&v)) {
            *z = bad[i % bad.len()];
            count += 1;
        }
    }
    count
}

#[test]
fn drop_report_sums_and_invalid_depths_are_never_projected() {
    let scene = sphere_scene();
    let mut z = scene.depth.clone();
    let holes = punch_holes(&mut z);
    let depth = DepthMap::new(scene.k.size, z.clone()).unwrap();
    let configs = [
        CloudConfig::default(),
        CloudConfig {
            filter: FilterConfig::none(),
            ..CloudConfig::default()
        },
        CloudConfig {
            estimate_normals: false,
            ..CloudConfig::default()
        },
        CloudConfig {
            filter: FilterConfig {
                min_depth_m: 1.7,
                max_depth_m: 3.9,
                max_view_angle_deg: Some(60.0),
                ..FilterConfig::default()
            },
            ..CloudConfig::default()
        },
        CloudConfig {
            filter: FilterConfig {
                voxel_size_m: Some(0.03),
                statistical_outlier: Some(StatisticalOutlierConfig::default()),
                ..FilterConfig::default()
            },
            ..CloudConfig::default()
        },
    ];
    for (c, config) in configs.iter().enumerate() {
        let (cloud, report) = cloud_from_depth(&depth, &scene.k, None, config).unwrap();
        assert_eq!(report.total(), 200 * 130, "config {c}: {report}");
        assert_eq!(report.invalid_depth, holes, "config {c}");
        assert_eq!(report.kept, cloud.len(), "config {c}");
        if config.filter.voxel_size_m.is_some() {
            assert!(report.voxel_merged > 0, "config {c}: {report}");
            continue; // averaged points no longer sit on pixel rays
        }
        for p in &cloud.positions {
            let (u, v) = scene.pixel_of(p);
            let zp = z[v * 200 + u];
            assert!(
                DepthMap::is_valid_depth(zp),
                "config {c}: invalid pixel ({u}, {v}) was projected"
            );
            assert_eq!(p.z, zp);
            assert!(p.z >= config.filter.min_depth_m && p.z <= config.filter.max_depth_m);
        }
    }
    // FilterConfig::none() keeps every valid pixel.
    let (cloud, report) = cloud_from_depth(
        &depth,
        &scene.k,
        None,
        &CloudConfig {
            filter: FilterConfig::none(),
            ..CloudConfig::default()
        },
    )
    .unwrap();
    assert_eq!(cloud.len(), 200 * 130 - holes);
    assert_eq!(report.dropped(), holes);
}

#[test]
fn colours_are_attached_to_their_pixels() {
    let scene = sphere_scene();
    let mut z = scene.depth.clone();
    punch_holes(&mut z);
    let depth = DepthMap::new(scene.k.size, z).unwrap();
    // Distinct colour per pixel of the 200×130 image: (u, v, 7·u + 3·v mod 256).
    let image = RgbImage::from_fn(200, 130, |u, v| {
        image::Rgb([u as u8, v as u8, ((7 * u + 3 * v) % 256) as u8])
    });
    for frame in [Frame::OpenCv, Frame::OpenGl] {
        let config = CloudConfig {
            frame,
            ..CloudConfig::default()
        };
        let (cloud, _) = cloud_from_depth(&depth, &scene.k, Some(&image), &config).unwrap();
        let colors = cloud.colors.as_ref().unwrap();
        assert_eq!(colors.len(), cloud.len());
        for (p, c) in cloud.positions.iter().zip(colors) {
            let p = if frame == Frame::OpenGl {
                Point3::new(p.x, -p.y, -p.z)
            } else {
                *p
            };
            let (u, v) = scene.pixel_of(&p);
            assert_eq!(*c, image.get_pixel(u as u32, v as u32).0, "pixel ({u}, {v})");
        }
    }
}

/// Separable 2-D blur of a depth map with a normalised 1-D kernel (`weights[r + i]` for offset `i`),
/// replicating the border. Models the mixed "flying" pixels of a real depth network at an edge.
fn blur(depth: &[f32], width: usize, height: usize, weights: &[f64]) -> Vec<f32> {
    let r = (weights.len() / 2) as isize;
    let clamp = |x: isize, n: usize| x.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0.0f64; depth.len()];
    for v in 0..height {
        for u in 0..width {
            tmp[v * width + u] = (-r..=r)
                .map(|i| weights[(i + r) as usize] * depth[v * width + clamp(u as isize + i, width)] as f64)
                .sum();
        }
    }
    let mut out = vec![0.0f32; depth.len()];
    for v in 0..height {
        for u in 0..width {
            out[v * width + u] = (-r..=r)
                .map(|i| weights[(i + r) as usize] * tmp[clamp(v as isize + i, height) * width + u])
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Blurred depth edge between a box's front face (1.6 m) and a tilted wall (~3.5 m). Returns
/// (fraction of mixed pixels removed, fraction of surface pixels kept, fraction of surface pixels at
/// least 2 px from any mixed pixel kept).
fn blurred_edge(weights: &[f64]) -> (f64, f64, f64) {
    let k = camera();
    let near = Surface::Rect {
        z: 1.6,
        x0: -0.3,
        x1: 0.25,
        y0: -0.2,
        y1: 0.15,
    };
    let wall = plane(V3::new(0.12, 0.06, -1.0), V3::new(0.0, 0.0, 3.5));
    let scene = Render::new(k, vec![near, wall]);
    let (w, h) = (200usize, 130usize);
    let z = blur(&scene.depth, w, h, weights);
    let depth = DepthMap::new(k.size, z.clone()).unwrap();
    let (cloud, report) = cloud_from_depth(&depth, &k, None, &CloudConfig::default()).unwrap();
    assert_eq!(report.total(), w * h);
    let mut kept = vec![false; w * h];
    for p in &cloud.positions {
        let (u, v) = scene.pixel_of(p);
        kept[v * w + u] = true;
    }
    // Mixed: more than 1 % of depth off both true surfaces along the pixel's ray. (A 1 % margin ignores
    // the far Gaussian tail, ≤ 1.1 cm at 3.5 m, which is not a flying pixel in any useful sense.)
    let mixed: Vec<bool> = (0..w * h)
        .map(|i| {
            let r = ray(&k, i % w, i / w);
            let off = |s: Surface| {
                let t = match s {
                    Surface::Rect { z, .. } => z, // the face's plane, extended past the box
                    other => other.hit(&r).unwrap(),
                };
                (z[i] as f64 - t).abs() > 0.01 * t
            };
            off(near) && off(wall)
        })
        .collect();
    let near_mixed = |i: usize| {
        let (u, v) = (i % w, i / w);
        (v.saturating_sub(2)..=(v + 2).min(h - 1))
            .any(|y| (u.saturating_sub(2)..=(u + 2).min(w - 1)).any(|x| mixed[y * w + x]))
    };
    let n_mixed = mixed.iter().filter(|&&m| m).count();
    assert!(n_mixed > 300, "the blur made only {n_mixed} mixed pixels");
    let removed = (0..w * h).filter(|&i| mixed[i] && !kept[i]).count();
    let surface: Vec<usize> = (0..w * h).filter(|&i| !mixed[i]).collect();
    let surface_kept = surface.iter().filter(|&&i| kept[i]).count();
    let inner: Vec<usize> = surface.iter().copied().filter(|&i| !near_mixed(i)).collect();
    let inner_kept = inner.iter().filter(|&&i| kept[i]).count();
    eprintln!(
        "mixed {n_mixed}, removed {removed}; surface {}, kept {surface_kept}; \
         surface ≥ 2 px from mixed {}, kept {inner_kept}; {report}",
        surface.len(),
        inner.len()
    );
    (
        removed as f64 / n_mixed as f64,
        surface_kept as f64 / surface.len() as f64,
        inner_kept as f64 / inner.len() as f64,
    )
}

#[test]
fn blurred_edge_box_filter() {
    // 5-tap box blur: a ramp of 4 mixed pixels across each edge, steps of (3.5 − 1.6)/5 ≈ 0.38 m.
    let (removed, kept, inner_kept) = blurred_edge(&[0.2; 5]);
    // Measured: 792 of 792 mixed pixels removed (100 %); 24 816 of 25 208 surface pixels kept (98.4 %;
    // the lost ones are the first plateau pixel on each side of the ramp, which MoGe's rule marks
    // too); 24 416 of 24 416 surface pixels 2 px or more away from a mixed pixel kept (100 %).
    assert!(removed >= 0.99, "removed {removed}");
    assert!(kept >= 0.98, "kept {kept}");
    assert!(inner_kept >= 0.999, "kept {inner_kept} away from the edge");
}

#[test]
fn blurred_edge_gaussian_filter() {
    // Gaussian, σ = 1 px, truncated at 3σ and renormalised.
    let raw: Vec<f64> = (-3..=3).map(|i: i32| (-(i * i) as f64 / 2.0).exp()).collect();
    let sum: f64 = raw.iter().sum();
    let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
    let (removed, kept, inner_kept) = blurred_edge(&weights);
    // Measured: 783 of 783 mixed pixels removed (100 %); 25 030 of 25 217 surface pixels kept (99.3 %);
    // 24 425 of 24 425 surface pixels 2 px or more away from a mixed pixel kept (100 %).
    assert!(removed >= 0.99, "removed {removed}");
    assert!(kept >= 0.98, "kept {kept}");
    assert!(inner_kept >= 0.999, "kept {inner_kept} away from the edge");
}

#[test]
fn grazing_angle_cut_matches_the_analytic_view_angle() {
    let k = camera();
    // A floor-like plane seen very obliquely: the view angle runs from ~70° to ~88° over the image.
    let floor = plane(V3::new(0.0, -1.0, -0.12), V3::new(0.0, 0.8, 3.0));
    let scene = Render::new(k, vec![floor]);
    let config = CloudConfig {
        filter: FilterConfig {
            flying_pixel_rtol: None,
            max_view_angle_deg: Some(80.0),
            ..FilterConfig::default()
        },
        ..CloudConfig::default()
    };
    let (cloud, report) = cloud_from_depth(&scene.depth_map(), &k, None, &config).unwrap();
    let mut kept = vec![false; 200 * 130];
    for p in &cloud.positions {
        let (u, v) = scene.pixel_of(p);
        kept[v * 200 + u] = true;
    }
    let (mut above, mut below) = (0, 0);
    for (i, &z) in scene.depth.iter().enumerate() {
        if !DepthMap::is_valid_depth(z) {
            continue;
        }
        let p = ray(&k, i % 200, i / 200) * z as f64;
        let view_deg = angle_deg(&floor.normal_at(&p), &-p);
        // Outside a ±0.05° band around the threshold the decision must match the analytic angle.
        if view_deg > 80.05 {
            assert!(!kept[i], "pixel {i} at {view_deg}° kept");
            above += 1;
        } else if view_deg < 79.95 {
            assert!(kept[i], "pixel {i} at {view_deg}° dropped");
            below += 1;
        }
    }
    assert!(
        above > 1000 && below > 1000,
        "the scene must straddle the threshold: {above} / {below}"
    );
    // Beyond ~82° the depth step between vertical neighbours exceeds edge_rtol = 4 %, so those pixels
    // have no normal and are counted as no-normal before the grazing test; between 80° and there they
    // are grazing-angle drops. Rows above the horizon hit nothing (NaN depth).
    assert!(report.grazing_angle > 1000, "{report}");
    assert_eq!(
        report.grazing_angle + report.no_normal + report.kept + report.invalid_depth,
        200 * 130
    );
}

#[test]
fn statistical_outlier_removal_drops_isolated_far_points() {
    // Pipeline: a plane at 2 m with five single-pixel spikes at 6 m. The flying-pixel test is off and
    // points without a normal are kept (a lone spike has no usable neighbour and would otherwise be
    // dropped as no-normal first), so that only SOR can catch them.
    let size = ImageSize::new(160, 120);
    let k = Intrinsics::from_focal_px(size, 150.0).unwrap();
    let mut z = vec![2.0f32; size.pixel_count()];
    let spikes = [(10, 10), (80, 60), (150, 20), (33, 101), (120, 90)];
    for (u, v) in spikes {
        z[v * 160 + u] = 6.0;
    }
    let config = CloudConfig {
        filter: FilterConfig {
            flying_pixel_rtol: None,
            drop_without_normal: false,
            statistical_outlier: Some(StatisticalOutlierConfig::default()),
            ..FilterConfig::default()
        },
        ..CloudConfig::default()
    };
    let (cloud, report) = cloud_from_depth(&DepthMap::new(size, z).unwrap(), &k, None, &config).unwrap();
    assert!(cloud.positions.iter().all(|p| p.z == 2.0), "a spike survived");
    // Measured: exactly the 5 spikes go; they inflate σ so that no plane point is near the cut. (On the
    // same plane without spikes Open3D's rule removes 560 border points, 2.9 %: the global threshold
    // fires on a perfectly clean grid, which is why SOR is off by default.)
    assert_eq!(report.statistical_outlier, 5, "{report}");

    // Direct call on an unorganised cloud: a quasi-random blob of 2000 points in a 1 m cube plus 4 far
    // points; colours encode the index so that we can check they moved with their points.
    let blob = |i: usize| {
        let f = i as f32;
        Point3::new(
            (f * 0.618).fract(),
            (f * 0.414).fract(),
            3.0 + (f * 0.732).fract(),
        )
    };
    let mut positions: Vec<Point3<f32>> = (0..2000).map(blob).collect();
    let far = [
        Point3::new(10.0, 0.0, 3.0),
        Point3::new(0.0, -9.0, 3.5),
        Point3::new(0.5, 0.5, 20.0),
        Point3::new(-7.0, 7.0, 7.0),
    ];
    positions.extend(far);
    let colors: Vec<[u8; 3]> = (0..positions.len())
        .map(|i| [(i % 256) as u8, (i / 256) as u8, 0])
        .collect();
    let mut cloud = PointCloud {
        positions,
        colors: Some(colors),
        ..PointCloud::default()
    };
    let removed = remove_statistical_outliers(&mut cloud, &StatisticalOutlierConfig::default()).unwrap();
    assert!(far.iter().all(|f| !cloud.positions.contains(f)));
    // Measured: exactly the 4 far points.
    assert_eq!(removed, 4);
    for (p, c) in cloud.positions.iter().zip(cloud.colors.as_ref().unwrap()) {
        assert_eq!(*p, blob(c[0] as usize + 256 * c[1] as usize));
    }
}

#[test]
fn voxel_downsampling_counts() {
    // 200×130 fronto-parallel plane at 1 m, f = 100 px, centred: 1 cm pixel spacing,
    // x = (u − 99.5)·0.01 ∈ [−0.995, 0.995], y = (v − 64.5)·0.01 ∈ [−0.645, 0.645].
    // 3.7 cm voxels anchored at min − 1.85 cm: column index floor((0.01·u + 0.0185)/0.037) ∈ 0..=54,
    // row index ∈ 0..=35, each occupied (0.27 index steps) and no point on a voxel boundary:
    // 55 × 36 = 1980 voxels.
    let size = ImageSize::new(200, 130);
    let k = Intrinsics::from_focal_px(size, 100.0).unwrap();
    let depth = DepthMap::new(size, vec![1.0; size.pixel_count()]).unwrap();
    let image = RgbImage::from_fn(200, 130, |u, v| image::Rgb([u as u8, v as u8, 9]));
    let config = CloudConfig {
        filter: FilterConfig {
            voxel_size_m: Some(0.037),
            ..FilterConfig::default()
        },
        ..CloudConfig::default()
    };
    let (cloud, report) = cloud_from_depth(&depth, &k, Some(&image), &config).unwrap();
    assert_eq!(cloud.len(), 1980);
    assert_eq!(report.voxel_merged, 200 * 130 - 1980);
    assert_eq!(report.total(), 200 * 130);
    // First voxel: columns u with floor((u + 1.85)/3.7) = 0 → u ∈ {0, 1}; rows v ∈ {0, 1}.
    // Mean colour (0.5, 0.5, 9) rounds half up to (1, 1, 9); mean position at pixel (0.5, 0.5).
    assert_eq!(cloud.colors.as_ref().unwrap()[0], [1, 1, 9]);
    let p = cloud.positions[0];
    assert!(
        (p.x + 0.99).abs() < 1e-6 && (p.y + 0.64).abs() < 1e-6 && p.z == 1.0,
        "{p:?}"
    );
    assert!(cloud
        .normals
        .as_ref()
        .unwrap()
        .iter()
        .all(|n| *n == Vector3::new(0.0, 0.0, -1.0)));
    // Same result through the public function on the full cloud.
    let (full, _) = cloud_from_depth(&depth, &k, Some(&image), &CloudConfig::default()).unwrap();
    assert_eq!(voxel_downsample(&full, 0.037).unwrap(), cloud);
}

#[test]
fn flying_mask_matches_pipeline_drops() {
    // The public mask and the pipeline's flying-pixel bucket agree (sphere scene: steep rim and a
    // silhouette against the wall).
    let scene = sphere_scene();
    let depth = scene.depth_map();
    let mask = flying_pixel_mask(&depth, 0.04).unwrap();
    let config = CloudConfig {
        estimate_normals: false,
        ..CloudConfig::default()
    };
    let (cloud, report) = cloud_from_depth(&depth, &scene.k, None, &config).unwrap();
    assert_eq!(report.flying_pixel, mask.iter().filter(|&&m| m).count());
    for p in &cloud.positions {
        let (u, v) = scene.pixel_of(p);
        assert!(!mask[v * 200 + u]);
    }
}

/// Uniform `f64` in `[lo, hi)` from a 40-bit integer. (proptest 1.12's float range sampler trips its
/// own debug assertion `self.low - result < initial.step` on some draws, so floats are derived from
/// integers here.)
fn uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    const STEPS: u64 = 1 << 40;
    (0..STEPS).prop_map(move |i| lo + (hi - lo) * (i as f64 / STEPS as f64))
}

proptest! {
    /// `pixel_from_camera ∘ camera_from_pixel` is the identity for any intrinsics (non-square sizes,
    /// off-centre principal points, fx ≠ fy), pixel and depth. Source: the pinhole equations.
    #[test]
    fn project_unproject_round_trip(
        width in 1u32..6000, height in 1u32..6000,
        fx in uniform(10.0, 20_000.0), fy in uniform(10.0, 20_000.0),
        cx_frac in uniform(-0.5, 1.5), cy_frac in uniform(-0.5, 1.5),
        u_frac in uniform(0.0, 1.0), v_frac in uniform(0.0, 1.0),
        depth_m in uniform(1e-3, 1e4),
    ) {
        let size = ImageSize::new(width, height);
        let k = Intrinsics::new(size, fx, fy, cx_frac * width as f64, cy_frac * height as f64).unwrap();
        let (u, v) = (u_frac * width as f64 - 0.5, v_frac * height as f64 - 0.5);
        let p = k.camera_from_pixel(u, v, depth_m);
        prop_assert!((p[2] - depth_m).abs() <= 1e-12 * depth_m);
        let (u2, v2) = k.pixel_from_camera(p).unwrap();
        prop_assert!((u2 - u).abs() <= 1e-9 * (1.0 + u.abs() + k.cx_px.abs()), "u {u} → {u2}");
        prop_assert!((v2 - v).abs() <= 1e-9 * (1.0 + v.abs() + k.cy_px.abs()), "v {v} → {v2}");
    }

    /// Every point of `cloud_from_depth` projects back onto its own integer pixel centre, for random
    /// non-square sizes and intrinsics and random depths (f32 error bound: see the module docs).
    #[test]
    fn cloud_points_project_to_their_pixels(
        width in 2u32..40, height in 2u32..40,
        fx in uniform(5.0, 5000.0), fy in uniform(5.0, 5000.0),
        cx_frac in uniform(-0.5, 1.5), cy_frac in uniform(-0.5, 1.5),
        depths_cm in proptest::collection::vec(1u32..10_000, 1600),
    ) {
        let size = ImageSize::new(width, height);
        let k = Intrinsics::new(size, fx, fy, cx_frac * width as f64, cy_frac * height as f64).unwrap();
        let depths: Vec<f32> = depths_cm[..size.pixel_count()].iter().map(|&cm| cm as f32 * 0.01).collect();
        let depth = DepthMap::new(size, depths).unwrap();
        let config = CloudConfig { estimate_normals: false, filter: FilterConfig::none(), ..CloudConfig::default() };
        let (cloud, report) = cloud_from_depth(&depth, &k, None, &config).unwrap();
        prop_assert_eq!(report.kept, size.pixel_count());
        for (i, p) in cloud.positions.iter().enumerate() {
            let (u, v) = ((i % width as usize) as f64, (i / width as usize) as f64);
            prop_assert_eq!(p.z, depth.as_slice()[i]);
            let (u2, v2) = k.pixel_from_camera([p.x as f64, p.y as f64, p.z as f64]).unwrap();
            prop_assert!((u2 - u).abs() <= 4e-7 * (1.0 + (u - k.cx_px).abs()), "u {} → {}", u, u2);
            prop_assert!((v2 - v).abs() <= 4e-7 * (1.0 + (v - k.cy_px).abs()), "v {} → {}", v, v2);
        }
    }
}
