//! The network path without `--depth`, on the model crate's tiny random-weights fixture
//! (`crates/depth2ply-model/tests/fixtures`, made by `tools/make_parity_fixtures.py` with Hugging Face
//! `transformers`; see its README). The real weights are never needed. One run only: the tiny network
//! still sees a 1536² input and takes seconds per image in a debug build.

use std::path::PathBuf;

use depth2ply_geometry::ply::read_ply;

use crate::fixtures::{exif_block, focal_from_35mm, write_png_with_exif, Exif};
use crate::util::TestDir;

/// `stats.focal_px_pred` in the fixture's `meta.json`: the focal length the reference implementation
/// predicts for `image.png` (101 × 67) from the tiny model's FOV head (47.0°).
const REFERENCE_FOCAL_PX: f64 = 116.132_431_030_273_44;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../depth2ply-model/tests/fixtures")
        .join(name)
}

fn focal_comment(comments: &[String]) -> (f64, String) {
    let line = comments
        .iter()
        .find(|c| c.starts_with("focal_px="))
        .expect("focal comment");
    let mut parts = line["focal_px=".len()..].split(" source=");
    (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().to_string(),
    )
}

#[test]
fn network_predicts_or_uses_the_known_focal_and_loads_once() {
    let dir = TestDir::new();
    // a.png: the fixture image without EXIF (the FOV head predicts the focal length).
    // b/c.png: the same pixels with EXIF FocalLengthIn35mmFilm = 83 (a known focal, passed to the network).
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::copy(fixture("image.png"), dir.join("in/a.png")).unwrap();
    let image = image::open(fixture("image.png")).unwrap().into_rgb8();
    let exif = exif_block(Exif {
        focal_35mm: Some(83),
        ..Exif::default()
    });
    write_png_with_exif(&dir.join("in/b/c.png"), &image, exif);

    let weights = fixture("tiny_apple.safetensors");
    let run = dir.run([
        "in".as_ref(),
        "-o".as_ref(),
        "out".as_ref(),
        "-v".as_ref(),
        "--save-depth".as_ref(),
        "--no-filter".as_ref(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "--model-config".as_ref(),
        "tiny".as_ref(),
    ]);
    run.assert_success()
        .assert_stderr_has(&["(model)", "(exif-35mm)", "depth from depth-pro", "inference"]);
    assert_eq!(
        run.stderr.matches("model load").count(),
        1,
        "the network must load once:\n{}",
        run.stderr
    );

    let (a, a_comments) = read_ply(&dir.join("out/a.ply")).unwrap();
    let (b, b_comments) = read_ply(&dir.join("out/b/c.ply")).unwrap();
    let (fa, source_a) = focal_comment(&a_comments);
    let (fb, source_b) = focal_comment(&b_comments);
    assert_eq!((source_a.as_str(), source_b.as_str()), ("model", "exif-35mm"));
    assert!(
        (fa - REFERENCE_FOCAL_PX).abs() <= 1e-4 * REFERENCE_FOCAL_PX,
        "predicted focal {fa}"
    );
    assert!(
        (fb - focal_from_35mm(83, 101, 67)).abs() < 1e-9,
        "EXIF focal {fb}"
    );
    assert!(
        a_comments.iter().any(|c| c == "depth_source=depth-pro"),
        "{a_comments:?}"
    );
    let saved = depth2ply_geometry::depth_io::load_npz_focal_px(&dir.join("out/a.npz"))
        .unwrap()
        .unwrap();
    assert!(
        (saved - fa).abs() <= 1e-4 * fa,
        "the .npz holds the focal length used"
    );

    // Depth Pro's metric depth is proportional to the focal length it is given
    // (depth = f_px / (W · canonical inverse depth)): same pixels, so z scales by fb / fa, except where
    // Apple's clamp to [1e-4, 1e4] m applies. --no-filter keeps every pixel, in the same order.
    assert_eq!((a.len(), b.len()), (101 * 67, 101 * 67));
    let ratio = (fb / fa) as f32;
    let mut compared = 0;
    for (p, q) in a.positions.iter().zip(&b.positions) {
        if p.z < 9_000.0 && q.z < 9_000.0 && p.z > 1e-3 {
            assert!(
                (q.z / p.z / ratio - 1.0).abs() < 1e-3,
                "z {} vs {} (ratio {ratio})",
                q.z,
                p.z
            );
            compared += 1;
        }
    }
    assert!(compared > 6000, "only {compared} unclamped pixels");
}
