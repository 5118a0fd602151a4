//! `depth2ply info`: sizes after orientation, EXIF focal length and its source, without any model.

use serde_json::Value;

use crate::fixtures::{exif_block, focal_from_35mm, gradient, write_jpeg, write_png, Exif, H, W};
use crate::util::TestDir;

fn records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_fields_for_exif_and_plain_images() {
    let dir = TestDir::new();
    // Stored 48 × 64 with orientation 6 (rotated 90° clockwise for display): 64 × 48 displayed.
    write_jpeg(
        &dir.join("photos/a_rotated.jpg"),
        &gradient(H, W),
        Some(exif_block(Exif {
            orientation: Some(6),
            focal_35mm: Some(28),
        })),
    );
    write_png(&dir.join("photos/b_plain.png"), &gradient(W, H));
    let run = dir.run(["info", "--json", "photos"]);
    run.assert_success();
    let records = records(&run.stdout);
    assert_eq!(records.len(), 2, "{}", run.stdout);

    let a = &records[0];
    assert!(a["path"].as_str().unwrap().ends_with("a_rotated.jpg"));
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(W.into()), Some(H.into()))
    );
    assert_eq!(a["orientation"], 6);
    let f = a["focal_px"].as_f64().expect("focal_px is a number");
    // The 35 mm rule on the displayed (rotation-invariant) diagonal.
    assert!((f - focal_from_35mm(28, W, H)).abs() < 1e-9, "{f}");
    assert_eq!(a["focal_source"], "exif-35mm");
    assert!(a["warnings"].is_array());

    let b = &records[1];
    assert!(b["path"].as_str().unwrap().ends_with("b_plain.png"));
    assert_eq!(
        (b["width"].as_u64(), b["height"].as_u64()),
        (Some(W.into()), Some(H.into()))
    );
    assert_eq!(b["orientation"], 1);
    assert!(b["focal_px"].is_null());
    assert!(b["focal_source"].is_null());
    assert!(b["warnings"].is_array());

    // Exactly these keys: scripts rely on them.
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "focal_px",
            "focal_source",
            "height",
            "orientation",
            "path",
            "warnings",
            "width"
        ]
    );
}

#[test]
fn plain_output_and_a_bad_file() {
    let dir = TestDir::new();
    write_png(&dir.join("ok.png"), &gradient(W, H));
    std::fs::write(dir.join("bad.jpg"), b"not an image").unwrap();
    let run = dir.run(["info", "ok.png", "bad.jpg"]);
    run.assert_code(1).assert_error_ends_with("bad.jpg".as_ref());
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.starts_with("ok.png: 64×48"), "{}", run.stdout);
    assert!(run.stdout.contains("focal unknown"), "{}", run.stdout);
}

#[test]
fn info_never_needs_the_network_or_writes_files() {
    let dir = TestDir::new();
    write_jpeg(
        &dir.join("x.jpg"),
        &gradient(W, H),
        Some(exif_block(Exif {
            focal_35mm: Some(50),
            ..Exif::default()
        })),
    );
    let before = dir.files();
    let run = dir.run(["info", "x.jpg"]);
    run.assert_success();
    assert!(run.stdout.contains("(exif-35mm"), "{}", run.stdout);
    assert_eq!(dir.files(), before);
}
