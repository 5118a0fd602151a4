//! Bad inputs: each gives one actionable error line naming the file, exit status 1, and no output.

use crate::fixtures::{
    exif_block, gradient, write_depth_npy, write_depth_png, write_jpeg, write_npy, write_png, Exif, H, W,
};
use crate::util::TestDir;

/// A PNG photo without EXIF (`p.png`).
fn photo(dir: &TestDir) {
    write_png(&dir.join("p.png"), &gradient(W, H));
}

/// Runs, expects exit 1 and that nothing but the inputs is left in the folder.
fn fails_cleanly(dir: &TestDir, args: &[&str]) -> crate::util::Run {
    let before = dir.files();
    let run = dir.run(args);
    run.assert_code(1);
    assert_eq!(
        run.error_lines(),
        1,
        "exactly one error line expected:\n{}",
        run.stderr
    );
    assert_eq!(
        dir.files(),
        before,
        "a failed run must leave no output (not even temporary files)"
    );
    run
}

#[test]
fn missing_image() {
    let dir = TestDir::new();
    let run = fails_cleanly(&dir, &["nope.jpg", "--focal-px", "50"]);
    run.assert_stderr_has(&["not found"])
        .assert_error_ends_with("nope.jpg".as_ref());
}

#[test]
fn corrupt_image() {
    let dir = TestDir::new();
    std::fs::write(dir.join("bad.jpg"), b"this is not a photo at all").unwrap();
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    let run = fails_cleanly(&dir, &["bad.jpg", "--depth", "d.png", "--focal-px", "50"]);
    run.assert_error_ends_with("bad.jpg".as_ref());
}

#[test]
fn truncated_jpeg() {
    let dir = TestDir::new();
    write_jpeg(&dir.join("full.jpg"), &gradient(W, H), None);
    let bytes = std::fs::read(dir.join("full.jpg")).unwrap();
    std::fs::write(dir.join("cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(dir.join("full.jpg")).unwrap();
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    let run = fails_cleanly(&dir, &["cut.jpg", "--depth", "d.png", "--focal-px", "50"]);
    run.assert_stderr_has(&["truncated"])
        .assert_error_ends_with("cut.jpg".as_ref());
}

#[test]
fn depth_of_another_size_names_both_sizes() {
    let dir = TestDir::new();
    photo(&dir);
    write_depth_png(&dir.join("d.png"), 32, 24, |_, _| 2000);
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.png", "--focal-px", "50"]);
    run.assert_stderr_has(&["32×24", "64×48"])
        .assert_error_ends_with("d.png".as_ref());
}

#[test]
fn depth_in_stored_instead_of_displayed_orientation() {
    let dir = TestDir::new();
    // Stored 48 × 64 with orientation 6: displayed 64 × 48, so a 48 × 64 depth map is the wrong way round.
    write_jpeg(
        &dir.join("r.jpg"),
        &gradient(H, W),
        Some(exif_block(Exif {
            orientation: Some(6),
            focal_35mm: Some(28),
        })),
    );
    write_depth_png(&dir.join("d.png"), H, W, |_, _| 2000);
    let run = fails_cleanly(&dir, &["r.jpg", "--depth", "d.png"]);
    run.assert_stderr_has(&["48×64", "64×48", "orientation"])
        .assert_error_ends_with("d.png".as_ref());
}

#[test]
fn depth_of_the_wrong_dtype() {
    let dir = TestDir::new();
    photo(&dir);
    let data: Vec<u8> = (0..W * H).flat_map(|_| 2i32.to_le_bytes()).collect();
    write_npy(&dir.join("d.npy"), "<i4", &[H as usize, W as usize], &data);
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.npy", "--focal-px", "50"]);
    run.assert_stderr_has(&["unsupported depth data type", "<i4"])
        .assert_error_ends_with("d.npy".as_ref());
}

#[test]
fn depth_of_the_wrong_shape() {
    let dir = TestDir::new();
    photo(&dir);
    let data: Vec<u8> = (0..W * H * 3).flat_map(|_| 2f32.to_le_bytes()).collect();
    write_npy(&dir.join("d.npy"), "<f4", &[H as usize, W as usize, 3], &data);
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.npy", "--focal-px", "50"]);
    run.assert_stderr_has(&["shape"])
        .assert_error_ends_with("d.npy".as_ref());
}

#[test]
fn depth_that_is_an_8_bit_png() {
    let dir = TestDir::new();
    photo(&dir);
    write_png(&dir.join("d.png"), &gradient(W, H));
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.png", "--focal-px", "50"]);
    run.assert_error_ends_with("d.png".as_ref());
}

#[test]
fn depth_without_a_valid_pixel() {
    let dir = TestDir::new();
    photo(&dir);
    write_depth_npy(
        &dir.join("d.npy"),
        W,
        H,
        |u, _| if u % 2 == 0 { 0.0 } else { f32::NAN },
    );
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.npy", "--focal-px", "50"]);
    run.assert_stderr_has(&["no valid pixel"])
        .assert_error_ends_with("d.npy".as_ref());
}

#[test]
fn missing_depth_file() {
    let dir = TestDir::new();
    photo(&dir);
    let run = fails_cleanly(&dir, &["p.png", "--depth", "none.png", "--focal-px", "50"]);
    run.assert_error_ends_with("none.png".as_ref());
}

#[test]
fn depth_without_any_focal_says_which_flag_to_pass() {
    let dir = TestDir::new();
    photo(&dir);
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    let run = fails_cleanly(&dir, &["p.png", "--depth", "d.png"]);
    run.assert_stderr_has(&["--focal-px", "--fov-deg", "--intrinsics"])
        .assert_error_ends_with("p.png".as_ref());
}

#[test]
fn corrupt_exif_without_a_focal_flag_still_fails_only_for_the_focal() {
    let dir = TestDir::new();
    write_jpeg(
        &dir.join("c.jpg"),
        &gradient(W, H),
        Some(b"II*\0\xff\xff\xff\x7f".to_vec()),
    );
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    let run = fails_cleanly(&dir, &["c.jpg", "--depth", "d.png"]);
    run.assert_stderr_has(&["--focal-px"])
        .assert_error_ends_with("c.jpg".as_ref());
}

#[test]
fn unwritable_output_folder() {
    let dir = TestDir::new();
    photo(&dir);
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    // A regular file where the output folder should be: fails for every user, root included.
    std::fs::write(dir.join("blocker"), b"").unwrap();
    let run = fails_cleanly(
        &dir,
        &[
            "p.png",
            "--depth",
            "d.png",
            "--focal-px",
            "50",
            "-o",
            "blocker/out/p.ply",
        ],
    );
    run.assert_stderr_has(&[
        "cannot create the output folder",
        "blocker is a file, not a folder",
    ])
    .assert_error_ends_with("blocker/out/p.ply".as_ref());
}

#[test]
fn output_that_is_a_folder_in_the_way() {
    let dir = TestDir::new();
    photo(&dir);
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
    // `p.ply` exists as a folder (with content): the PLY cannot replace it. With --save-depth the
    // .npz and the preview are written first and must be removed again.
    std::fs::create_dir_all(dir.join("out/p.ply/keep")).unwrap();
    let run = fails_cleanly(
        &dir,
        &[
            "p.png",
            "--depth",
            "d.png",
            "--focal-px",
            "50",
            "-o",
            "out",
            "--ascii",
            "--save-depth",
        ],
    );
    run.assert_error_ends_with("p.ply".as_ref());
}

#[test]
fn network_unavailable_is_an_error_not_a_panic() {
    let dir = TestDir::new();
    photo(&dir);
    // No --depth: the network is needed, and the test environment points DEPTH2PLY_WEIGHTS at a
    // missing file (util.rs), so the error names that variable and the file, and offers --depth.
    let run = fails_cleanly(&dir, &["p.png", "--focal-px", "50"]);
    run.assert_stderr_has(&["--depth", "DEPTH2PLY_WEIGHTS"])
        .assert_error_ends_with(&dir.join("no-weights-here/depth_pro.pt"));

    // --weights wins over the environment and names its own file.
    let run = fails_cleanly(&dir, &["p.png", "--weights", "missing.safetensors"]);
    run.assert_stderr_has(&["--weights"])
        .assert_error_ends_with("missing.safetensors".as_ref());
}

#[test]
fn one_failure_among_several_gives_exit_1_and_the_others_are_written() {
    let dir = TestDir::new();
    write_png(&dir.join("in/good.png"), &gradient(W, H));
    write_png(&dir.join("in/lost.png"), &gradient(W, H));
    write_depth_png(&dir.join("in/good.depth.png"), W, H, |_, _| 2000);
    let run = dir.run(["in", "--depth", "in", "--focal-px", "50"]);
    run.assert_code(1)
        .assert_stderr_has(&["1 of 2 images converted, 1 failed", "lost.depth.npz"]);
    run.assert_error_ends_with(&std::path::Path::new("in").join("lost.png"));
    assert!(dir.join("in/good.ply").is_file());
    assert!(!dir.join("in/lost.ply").exists());
}

#[test]
fn two_images_with_the_same_output_name() {
    let dir = TestDir::new();
    write_png(&dir.join("in/x.png"), &gradient(W, H));
    write_jpeg(&dir.join("in/x.jpg"), &gradient(W, H), None);
    write_depth_png(&dir.join("in/x.depth.png"), W, H, |_, _| 2000);
    let run = dir.run(["in", "--depth", "in", "--focal-px", "50"]);
    run.assert_code(1).assert_stderr_has(&["would overwrite"]);
    assert!(
        dir.join("in/x.ply").is_file(),
        "the first of the two is still written"
    );
}

#[test]
fn folder_without_images() {
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.join("empty/sub")).unwrap();
    std::fs::write(dir.join("empty/notes.txt"), b"no photos").unwrap();
    let run = fails_cleanly(&dir, &["empty", "--focal-px", "50"]);
    run.assert_stderr_has(&["no images found"])
        .assert_error_ends_with("empty".as_ref());
}

#[test]
fn save_depth_never_overwrites_the_depth_input() {
    let dir = TestDir::new();
    photo(&dir);
    // --save-depth writes p.npz next to p.ply, which is the depth map being read.
    write_depth_npz_like_apple(&dir, "p.npz");
    let run = fails_cleanly(
        &dir,
        &["p.png", "--depth", "p.npz", "--focal-px", "50", "--save-depth"],
    );
    run.assert_stderr_has(&["overwrite"])
        .assert_error_ends_with("p.npz".as_ref());
}

/// A `.npz` holding `depth` (2 m everywhere), written by the library's own writer.
fn write_depth_npz_like_apple(dir: &TestDir, name: &str) {
    let depth = depth2ply_geometry::DepthMap::new(
        depth2ply_geometry::ImageSize::new(W, H),
        vec![2.0; (W * H) as usize],
    )
    .unwrap();
    depth2ply_geometry::depth_io::write_depth_npz(&dir.join(name), &depth, 50.0).unwrap();
}
