//! Successful conversions: where files go, what the PLY holds, and what each output flag changes.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use depth2ply_geometry::depth_io::{load_depth, load_npz_focal_px, DepthLoadOptions};
use depth2ply_geometry::ply::read_ply;
use depth2ply_geometry::PointCloud;

use crate::fixtures::{
    exif_block, focal_from_35mm, gradient, write_depth_npy, write_depth_png, write_jpeg, write_png, Exif, H,
    W,
};
use crate::util::{Run, TestDir};

/// Pixels of the test image.
const N: usize = (W * H) as usize;

/// A PNG photo without EXIF and a 16-bit depth PNG of the plane z = `z_mm` millimetres.
fn plane(dir: &TestDir, stem: &str, z_mm: u16) -> (PathBuf, PathBuf) {
    let image = dir.join(format!("{stem}.png"));
    let depth = dir.join(format!("{stem}.depth.png"));
    write_png(&image, &gradient(W, H));
    write_depth_png(&depth, W, H, |_, _| z_mm);
    (image, depth)
}

/// Runs depth2ply in `dir` on `image` with the depth map `depth` and the test focal length of 50 px,
/// then the `extra` flags.
fn run_focal_50(dir: &TestDir, image: impl AsRef<OsStr>, depth: impl AsRef<OsStr>, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec![
        image.as_ref().into(),
        "--depth".into(),
        depth.as_ref().into(),
        "--focal-px".into(),
        "50".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    dir.run(args)
}

fn read(path: &Path) -> (PointCloud, Vec<String>) {
    read_ply(path).unwrap_or_else(|e| panic!("cannot read back {}: {e}", path.display()))
}

/// Largest |x| and |y| of the cloud.
fn extent(cloud: &PointCloud) -> (f32, f32) {
    cloud
        .positions
        .iter()
        .fold((0.0f32, 0.0f32), |(x, y), p| (x.max(p.x.abs()), y.max(p.y.abs())))
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs expected {expected} ± {tolerance}"
    );
}

/// Copies a PLY for `tools/check_ply.py` when `DEPTH2PLY_E2E_PLY_DIR` is set (see main.rs).
fn export_for_check(ply: &Path, name: &str, check_args: &str) {
    let Some(dir) = std::env::var_os("DEPTH2PLY_E2E_PLY_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(ply, dir.join(format!("{name}.ply"))).unwrap();
    let line = format!("{name}.ply {check_args}\n");
    use std::io::Write;
    let mut manifest = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("manifest.txt"))
        .unwrap();
    manifest.write_all(line.as_bytes()).unwrap();
}

#[test]
fn ply_next_to_the_image_on_the_analytic_plane() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "photo", 2000);
    let run = run_focal_50(&dir, &image, &depth, &[]);
    run.assert_success()
        .assert_stderr_has(&[&format!("{N} points"), "focal 50.0 px (user)", "photo.ply"]);

    let ply = dir.join("photo.ply");
    assert_eq!(dir.files(), ["photo.depth.png", "photo.ply", "photo.png"]);
    let (cloud, comments) = read(&ply);
    // A plane has no depth edge: nothing may be dropped.
    assert_eq!(cloud.len(), N);
    assert!(
        cloud.positions.iter().all(|p| (p.z - 2.0).abs() < 1e-6),
        "z must be 2 m everywhere"
    );
    // x = (u − cx)·z/f with cx = (64 − 1)/2, f = 50: the extremes are ±31.5·2/50; y likewise with 23.5.
    let (x, y) = extent(&cloud);
    assert_close(x.into(), 31.5 * 2.0 / 50.0, 1e-5, "max |x|");
    assert_close(y.into(), 23.5 * 2.0 / 50.0, 1e-5, "max |y|");
    // Normals face the camera: (0, 0, −1) on a fronto-parallel plane in the OpenCV frame.
    let normals = cloud.normals.as_ref().expect("normals by default");
    assert!(
        normals.iter().all(|n| n.z < -0.999),
        "normals must face the camera"
    );
    let colors = cloud.colors.as_ref().expect("colours");
    // Row-major pixel order: the first point is pixel (0, 0) of the gradient, the last (63, 47).
    assert_eq!(colors[0], [0, 0, 128]);
    assert_eq!(colors[N - 1], [(63 * 255 / 64) as u8, (47 * 255 / 48) as u8, 128]);

    let header = comments.join("\n");
    for expected in [
        "frame=opencv units=metres",
        "generator=depth2ply ",
        "source_image=",
        "photo.png",
        "intrinsics width=64 height=48 fx_px=50 fy_px=50 cx_px=31.5 cy_px=23.5",
        "focal_px=50 source=user",
        "depth_source=",
        "photo.depth.png",
        "camera=pinhole pixel_centres=integer depth_type=z frame=opencv",
        "points kept 3072 of 3072",
    ] {
        assert!(
            header.contains(expected),
            "header comments lack {expected:?}:\n{header}"
        );
    }
    export_for_check(
        &ply,
        "plane_binary",
        &format!("--vertices {N} --normals --colors --plane-z 2 --camera-facing --comment source=user"),
    );
}

#[test]
fn exif_focal_is_used_and_recorded() {
    let dir = TestDir::new();
    let image = dir.join("cam.jpg");
    write_jpeg(
        &image,
        &gradient(W, H),
        Some(exif_block(Exif {
            focal_35mm: Some(28),
            ..Exif::default()
        })),
    );
    write_depth_png(&dir.join("cam.depth.png"), W, H, |_, _| 1500);
    let run = dir.run(["cam.jpg", "--depth", "cam.depth.png"]);
    run.assert_success().assert_stderr_has(&["(exif-35mm)"]);

    let f = focal_from_35mm(28, W, H);
    let (cloud, comments) = read(&dir.join("cam.ply"));
    assert_eq!(cloud.len(), N);
    let (x, _) = extent(&cloud);
    assert_close(x.into(), 31.5 * 1.5 / f, 1e-5, "max |x| with the EXIF focal");
    assert_close(recorded_focal(&comments, "exif-35mm"), f, 1e-9, "recorded focal");
}

/// The focal length in the `focal_px=… source=…` header comment, checking its source.
fn recorded_focal(comments: &[String], source: &str) -> f64 {
    let line = comments
        .iter()
        .find(|c| c.starts_with("focal_px="))
        .expect("focal comment");
    assert!(line.ends_with(&format!(" source={source}")), "{line}");
    line["focal_px=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn user_focal_wins_over_exif() {
    let dir = TestDir::new();
    let image = dir.join("cam.jpg");
    write_jpeg(
        &image,
        &gradient(W, H),
        Some(exif_block(Exif {
            focal_35mm: Some(28),
            ..Exif::default()
        })),
    );
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 1000);
    dir.run(["cam.jpg", "--depth", "d.png", "--fov-deg", "90"])
        .assert_success()
        .assert_stderr_has(&["(user)"]);
    let (cloud, comments) = read(&dir.join("cam.ply"));
    // 90° horizontal FOV: f = (W/2)/tan(45°) = 32 px.
    assert_close(recorded_focal(&comments, "user"), 32.0, 1e-9, "recorded focal");
    assert_close(extent(&cloud).0.into(), 31.5 / 32.0, 1e-5, "max |x|");
}

#[test]
fn intrinsics_flag_sets_all_four_values() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let run = dir.run([
        image.as_os_str(),
        "--depth".as_ref(),
        depth.as_os_str(),
        "--intrinsics".as_ref(),
        "50,60,10,20".as_ref(),
        "--no-filter".as_ref(),
    ]);
    run.assert_success();
    // The camera is given: that the PNG has no EXIF is not worth a warning.
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let (cloud, comments) = read(&dir.join("p.ply"));
    assert!(comments
        .iter()
        .any(|c| c == "intrinsics width=64 height=48 fx_px=50 fy_px=60 cx_px=10 cy_px=20"));
    // Pixel (0, 0) comes first: x = (0 − 10)·2/50, y = (0 − 20)·2/60.
    assert_close(cloud.positions[0].x.into(), -0.4, 1e-6, "x of pixel (0, 0)");
    assert_close(
        cloud.positions[0].y.into(),
        -40.0 / 60.0,
        1e-6,
        "y of pixel (0, 0)",
    );
}

#[test]
fn rotated_photo_uses_the_displayed_orientation() {
    let dir = TestDir::new();
    // Stored 48 wide × 64 high, EXIF orientation 6 (rotate 90° clockwise): displayed 64 × 48.
    let exif = exif_block(Exif {
        orientation: Some(6),
        focal_35mm: Some(35),
    });
    write_jpeg(&dir.join("r.jpg"), &gradient(H, W), Some(exif));
    write_depth_png(&dir.join("r.depth.png"), W, H, |_, _| 2000);
    dir.run(["r.jpg", "--depth", "r.depth.png"]).assert_success();
    let (cloud, comments) = read(&dir.join("r.ply"));
    assert_eq!(cloud.len(), N);
    let f = focal_from_35mm(35, W, H);
    assert!(
        comments
            .iter()
            .any(|c| c.starts_with("intrinsics width=64 height=48 ")),
        "{comments:?}"
    );
    assert_close(
        extent(&cloud).0.into(),
        31.5 * 2.0 / f,
        1e-5,
        "max |x| uses the displayed width",
    );
}

#[test]
fn output_flag_names_the_file_for_one_input() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let out = dir.join("clouds/new/cloud.ply");
    let run = run_focal_50(&dir, &image, &depth, &["-o", out.to_str().unwrap()]);
    run.assert_success();
    assert_eq!(dir.files(), ["clouds/new/cloud.ply", "p.depth.png", "p.png"]);
    assert_eq!(read(&out).0.len(), N);
}

#[test]
fn folder_mode_mirrors_the_tree_and_finds_depth_maps() {
    let dir = TestDir::new();
    write_png(&dir.join("in/a/x.png"), &gradient(W, H));
    write_png(&dir.join("in/b/c/y.png"), &gradient(W, H));
    write_depth_png(&dir.join("depth/a/x.depth.png"), W, H, |_, _| 2000);
    write_depth_npy(&dir.join("depth/b/c/y.npy"), W, H, |_, _| 1.25);
    let run = dir.run(["in", "--depth", "depth", "--focal-px", "50", "-o", "out"]);
    run.assert_success()
        .assert_stderr_has(&["2 of 2 images converted"]);
    let (x, _) = read(&dir.join("out/a/x.ply"));
    let (y, _) = read(&dir.join("out/b/c/y.ply"));
    assert!(x.positions.iter().all(|p| (p.z - 2.0).abs() < 1e-6));
    assert!(y.positions.iter().all(|p| (p.z - 1.25).abs() < 1e-6));
    let written: Vec<String> = dir.files().into_iter().filter(|f| f.ends_with(".ply")).collect();
    assert_eq!(written, ["out/a/x.ply", "out/b/c/y.ply"]);
}

#[test]
fn folder_mode_with_depth_maps_next_to_the_images() {
    let dir = TestDir::new();
    // `x.depth.png` sits next to `x.png`; it is found as x's depth and not taken for a photo.
    let (_, _) = plane(&dir, "scans/x", 2000);
    let (_, _) = plane(&dir, "scans/sub/z", 3000);
    dir.run(["scans", "--depth", "scans", "--focal-px", "50"])
        .assert_success();
    assert_eq!(
        dir.files(),
        [
            "scans/sub/z.depth.png",
            "scans/sub/z.ply",
            "scans/sub/z.png",
            "scans/x.depth.png",
            "scans/x.ply",
            "scans/x.png"
        ]
    );
    assert!(read(&dir.join("scans/sub/z.ply"))
        .0
        .positions
        .iter()
        .all(|p| (p.z - 3.0).abs() < 1e-6));
}

#[test]
fn depth_scale_divides_integer_depth() {
    let dir = TestDir::new();
    write_png(&dir.join("t.png"), &gradient(W, H));
    // TUM RGB-D convention: 5000 units per metre, so 10000 is 2 m.
    write_depth_png(&dir.join("t.depth.png"), W, H, |_, _| 10000);
    dir.run([
        "t.png",
        "--depth",
        "t.depth.png",
        "--focal-px",
        "50",
        "--depth-scale",
        "5000",
    ])
    .assert_success();
    assert!(read(&dir.join("t.ply"))
        .0
        .positions
        .iter()
        .all(|p| (p.z - 2.0).abs() < 1e-6));
}

#[test]
fn ascii_output_reads_back_the_same() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    run_focal_50(&dir, &image, &depth, &["-o", "a.ply", "--ascii"]).assert_success();
    run_focal_50(&dir, &image, &depth, &["-o", "b.ply"]).assert_success();
    let text = std::fs::read(dir.join("a.ply")).unwrap();
    assert!(text.starts_with(b"ply\nformat ascii 1.0\n"));
    assert!(std::fs::read(dir.join("b.ply"))
        .unwrap()
        .starts_with(b"ply\nformat binary_little_endian 1.0\n"));
    let (a, _) = read(&dir.join("a.ply"));
    let (b, _) = read(&dir.join("b.ply"));
    assert_eq!(a.len(), b.len());
    for (p, q) in a.positions.iter().zip(&b.positions) {
        assert!(
            (p - q).norm() < 1e-5,
            "ASCII and binary positions differ: {p} vs {q}"
        );
    }
    assert_eq!(a.colors, b.colors);
    export_for_check(
        &dir.join("a.ply"),
        "plane_ascii",
        &format!("--vertices {N} --normals --colors --format ascii --plane-z 2 --camera-facing"),
    );
}

#[test]
fn opengl_frame_negates_y_and_z() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let run = run_focal_50(&dir, &image, &depth, &["--frame", "opengl", "--no-filter"]);
    run.assert_success();
    let (cloud, comments) = read(&dir.join("p.ply"));
    assert!(
        comments.iter().any(|c| c.contains("frame=opengl")),
        "{comments:?}"
    );
    assert!(
        cloud.positions.iter().all(|p| (p.z + 2.0).abs() < 1e-6),
        "z = −2 m in the OpenGL frame"
    );
    // Pixel (0, 0) is top left: OpenCV y = (0 − 23.5)·2/50 < 0 becomes OpenGL y > 0.
    assert_close(
        cloud.positions[0].y.into(),
        23.5 * 2.0 / 50.0,
        1e-6,
        "y of pixel (0, 0)",
    );
    assert!(
        cloud.normals.unwrap().iter().all(|n| n.z > 0.999),
        "normals still face the camera"
    );
    export_for_check(
        &dir.join("p.ply"),
        "plane_opengl",
        &format!("--vertices {N} --normals --colors --plane-z -2 --camera-facing --comment frame=opengl"),
    );
}

#[test]
fn no_normals_leaves_them_out() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let run = run_focal_50(&dir, &image, &depth, &["--no-normals"]);
    run.assert_success();
    let ply = dir.join("p.ply");
    let (cloud, _) = read(&ply);
    assert!(cloud.normals.is_none());
    assert!(cloud.colors.is_some());
    let bytes = std::fs::read(&ply).unwrap();
    let header =
        String::from_utf8_lossy(&bytes[..bytes.windows(10).position(|w| w == b"end_header").unwrap()]);
    assert!(!header.contains("property float nx"), "{header}");
    export_for_check(
        &ply,
        "plane_no_normals",
        &format!("--vertices {N} --no-normals --colors --plane-z 2"),
    );
}

/// Depth with a step: columns u < 32 at 2 m, u ≥ 32 at 4 m, and pixel (0, 0) without depth.
fn step(dir: &TestDir) {
    write_png(&dir.join("s.png"), &gradient(W, H));
    write_depth_png(&dir.join("s.depth.png"), W, H, |u, v| match (u, v) {
        (0, 0) => 0,
        (u, _) if u < 32 => 2000,
        _ => 4000,
    });
}

#[test]
fn default_filter_drops_flying_pixels_and_no_filter_keeps_them() {
    let dir = TestDir::new();
    step(&dir);
    let filtered = run_focal_50(&dir, "s.png", "s.depth.png", &["-o", "f.ply"]);
    filtered
        .assert_success()
        .assert_stderr_has(&["flying-pixel 96", "invalid-depth 1"]);
    let kept = run_focal_50(&dir, "s.png", "s.depth.png", &["-o", "k.ply", "--no-filter"]);
    kept.assert_success();
    // Every valid pixel: all but (0, 0).
    assert_eq!(read(&dir.join("k.ply")).0.len(), N - 1);
    // MoGe's rule at rtol 0.04: columns 31 and 32 see both 2 m and 4 m in their 3×3 window
    // ((4 − 2)/z > 0.04 for z = 2 and z = 4), so 2 × 48 pixels go; nothing else has a depth range.
    assert_eq!(read(&dir.join("f.ply")).0.len(), N - 1 - 96);
    // A tolerance above the step (2/2 = 1 relative on the near side) keeps them.
    run_focal_50(
        &dir,
        "s.png",
        "s.depth.png",
        &["-o", "t.ply", "--edge-rtol", "1.5"],
    )
    .assert_success();
    assert_eq!(read(&dir.join("t.ply")).0.len(), N - 1);
}

#[test]
fn max_depth_clips_far_points() {
    let dir = TestDir::new();
    step(&dir);
    let run = run_focal_50(&dir, "s.png", "s.depth.png", &["--max-depth", "3"]);
    run.assert_success().assert_stderr_has(&["out-of-range"]);
    let (cloud, _) = read(&dir.join("s.ply"));
    assert!(!cloud.is_empty());
    assert!(cloud.positions.iter().all(|p| p.z <= 3.0));
}

#[test]
fn save_depth_writes_npz_and_preview() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let run = run_focal_50(&dir, &image, &depth, &["--save-depth", "-o", "out/cloud.ply"]);
    run.assert_success();
    assert_eq!(
        dir.files(),
        [
            "out/cloud.depth.png",
            "out/cloud.npz",
            "out/cloud.ply",
            "p.depth.png",
            "p.png"
        ]
    );
    let npz = dir.join("out/cloud.npz");
    let saved = load_depth(&npz, &DepthLoadOptions::default()).unwrap();
    assert_eq!((saved.size().width, saved.size().height), (W, H));
    assert!(saved.as_slice().iter().all(|&z| (z - 2.0).abs() < 1e-6));
    assert_eq!(load_npz_focal_px(&npz).unwrap(), Some(50.0));
    let preview = image::open(dir.join("out/cloud.depth.png")).unwrap();
    assert_eq!((preview.width(), preview.height()), (W, H));
    assert_eq!(preview.color(), image::ColorType::Rgb8);
}

#[test]
fn quiet_prints_nothing_and_verbose_prints_timings() {
    let dir = TestDir::new();
    let (image, depth) = plane(&dir, "p", 2000);
    let quiet = run_focal_50(&dir, &image, &depth, &["-q"]);
    quiet.assert_success();
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, "");
    let verbose = run_focal_50(&dir, &image, &depth, &["-v"]);
    verbose
        .assert_success()
        .assert_stderr_has(&["image load", "peak memory"]);
}

#[test]
fn corrupt_exif_is_a_warning_not_a_failure() {
    let dir = TestDir::new();
    write_jpeg(
        &dir.join("c.jpg"),
        &gradient(W, H),
        Some(b"MM\0*\0\0\0\x08\xff\xff garbage".to_vec()),
    );
    write_depth_png(&dir.join("c.depth.png"), W, H, |_, _| 2000);
    let run = run_focal_50(&dir, "c.jpg", "c.depth.png", &[]);
    run.assert_success().assert_stderr_has(&["depth2ply: warning: "]);
    assert_eq!(read(&dir.join("c.ply")).0.len(), N);
}

#[test]
fn output_into_an_existing_folder_with_one_thread() {
    let dir = TestDir::new();
    let (_, _) = plane(&dir, "p", 2000);
    std::fs::create_dir(dir.join("clouds")).unwrap();
    let run = run_focal_50(&dir, "p.png", "p.depth.png", &["-o", "clouds", "--threads", "1"]);
    run.assert_success();
    // -o names an existing folder: the PLY goes inside it, named after the image.
    assert_eq!(read(&dir.join("clouds/p.ply")).0.len(), N);
}

#[test]
fn rgbd_layout_with_separate_color_and_depth_folders() {
    let dir = TestDir::new();
    // Redwood / TUM style: color/<n>.jpg and depth/<n>.png (same stem, no `.depth` infix).
    for (n, z_mm) in [("00000", 1000), ("00001", 2500)] {
        write_jpeg(&dir.join(format!("color/{n}.jpg")), &gradient(W, H), None);
        write_depth_png(&dir.join(format!("depth/{n}.png")), W, H, |_, _| z_mm);
    }
    let run = dir.run([
        "color",
        "--depth",
        "depth",
        "--intrinsics",
        "50,50,31.5,23.5",
        "-o",
        "clouds",
    ]);
    run.assert_success();
    for (n, z) in [("00000", 1.0), ("00001", 2.5)] {
        let (cloud, _) = read(&dir.join(format!("clouds/{n}.ply")));
        assert_eq!(cloud.len(), N);
        assert!(cloud.positions.iter().all(|p| (p.z - z).abs() < 1e-6));
    }
}
