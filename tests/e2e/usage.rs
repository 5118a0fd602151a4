//! Usage errors: exit status 2, a clap-style message, nothing written.

use crate::fixtures::{gradient, write_depth_png, write_png, H, W};
use crate::util::TestDir;

#[track_caller]
fn usage_error(dir: &TestDir, args: &[&str], fragment: &str) {
    let before = dir.files();
    let run = dir.run(args);
    run.assert_code(2).assert_stderr_has(&[fragment]);
    assert_eq!(dir.files(), before, "a usage error must write nothing");
}

fn inputs(dir: &TestDir) {
    write_png(&dir.join("p.png"), &gradient(W, H));
    write_png(&dir.join("in/q.png"), &gradient(W, H));
    write_depth_png(&dir.join("d.png"), W, H, |_, _| 2000);
}

#[test]
fn no_inputs() {
    let dir = TestDir::new();
    usage_error(&dir, &[], "<INPUTS>");
    usage_error(&dir, &["info"], "<INPUTS>");
}

#[test]
fn unknown_flag() {
    let dir = TestDir::new();
    inputs(&dir);
    usage_error(&dir, &["p.png", "--focal", "50"], "--focal");
}

#[test]
fn invalid_focal_values() {
    let dir = TestDir::new();
    inputs(&dir);
    for bad in ["0", "-50", "nan", "inf", "50mm"] {
        usage_error(
            &dir,
            &["p.png", "--depth", "d.png", "--focal-px", bad],
            "--focal-px",
        );
    }
    for bad in ["0", "180", "-5", "nan"] {
        usage_error(
            &dir,
            &["p.png", "--depth", "d.png", "--fov-deg", bad],
            "--fov-deg",
        );
    }
}

#[test]
fn invalid_intrinsics() {
    let dir = TestDir::new();
    inputs(&dir);
    usage_error(
        &dir,
        &["p.png", "--depth", "d.png", "--intrinsics", "0,50,31.5,23.5"],
        "fx",
    );
    usage_error(
        &dir,
        &["p.png", "--depth", "d.png", "--intrinsics", "50,-1,31.5,23.5"],
        "fy",
    );
    usage_error(
        &dir,
        &["p.png", "--depth", "d.png", "--intrinsics", "50,50,nan,23.5"],
        "cx",
    );
    usage_error(
        &dir,
        &["p.png", "--depth", "d.png", "--intrinsics", "50,50,31.5,inf"],
        "cy",
    );
    usage_error(
        &dir,
        &["p.png", "--depth", "d.png", "--intrinsics", "50,50,31.5"],
        "FX,FY,CX,CY",
    );
}

#[test]
fn focal_flags_are_mutually_exclusive() {
    let dir = TestDir::new();
    inputs(&dir);
    usage_error(
        &dir,
        &["p.png", "--focal-px", "50", "--fov-deg", "60"],
        "cannot be used with",
    );
    usage_error(
        &dir,
        &["p.png", "--intrinsics", "50,50,1,1", "--focal-px", "50"],
        "cannot be used with",
    );
}

#[test]
fn flag_combinations_that_cannot_work() {
    let dir = TestDir::new();
    inputs(&dir);
    // A depth file for several images.
    usage_error(
        &dir,
        &["p.png", "in", "--depth", "d.png", "--focal-px", "50"],
        "--depth",
    );
    // A PLY file name for a folder.
    usage_error(&dir, &["in", "-o", "all.ply", "--focal-px", "50"], "-o");
    usage_error(
        &dir,
        &["p.png", "--min-depth", "3", "--max-depth", "2"],
        "--min-depth",
    );
    usage_error(
        &dir,
        &["p.png", "--no-filter", "--max-depth", "2"],
        "cannot be used with",
    );
    usage_error(&dir, &["p.png", "-q", "-v"], "cannot be used with");
    usage_error(&dir, &["p.png", "--threads", "0"], "--threads");
    usage_error(&dir, &["p.png", "--frame", "ros"], "--frame");
}

#[test]
fn device_that_is_not_compiled_in() {
    let dir = TestDir::new();
    inputs(&dir);
    if !cfg!(feature = "cuda") {
        usage_error(&dir, &["p.png", "--device", "cuda"], "--features cuda");
    }
    if !cfg!(feature = "metal") {
        usage_error(&dir, &["p.png", "--device", "metal"], "--features metal");
    }
}

#[test]
fn help_and_version() {
    let dir = TestDir::new();
    let help = dir.run(["--help"]);
    help.assert_success();
    for flag in [
        "--output",
        "--depth",
        "--depth-scale",
        "--intrinsics",
        "--focal-px",
        "--fov-deg",
        "--no-filter",
        "--edge-rtol",
        "--no-normals",
        "--ascii",
        "--frame",
        "--save-depth",
        "--weights",
        "--device",
        "--threads",
        "--quiet",
        "--verbose",
        "Exit status",
    ] {
        assert!(
            help.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            help.stdout
        );
    }
    let info_help = dir.run(["info", "--help"]);
    info_help.assert_success();
    assert!(info_help.stdout.contains("--json"));
    let version = dir.run(["--version"]);
    version.assert_success();
    assert_eq!(
        version.stdout.trim(),
        format!("depth2ply {}", env!("CARGO_PKG_VERSION"))
    );
}
