//! Runs the geometry pipeline once (depth + RGB → `cloud_from_depth` with default filters and normals →
//! binary PLY file) and prints wall time, PLY size and peak resident memory, so that
//! "peak RSS ≤ 3 × PLY size" can be checked. `tools/bench_open3d.py` runs it next to Open3D.
//!
//! ```text
//! pipeline_peak [--out FILE.ply] [--width W --height H]
//!     synthetic scene (default 4032×3024) generated in memory
//! pipeline_peak --rgb RGB.png --depth DEPTH.png --focal-px F [--scale UNITS_PER_M] [--out FILE.ply]
//!     inputs from files (depth through `load_depth`, scale default 1000), principal point at the centre
//! pipeline_peak --write-inputs DIR [--width W --height H]
//!     writes the synthetic scene as DIR/rgb.png, DIR/depth.png (16-bit millimetres, 0 = no depth),
//!     DIR/depth.npz (float32 metres + focallength_px, Apple's layout) and DIR/camera.json, then exits
//! ```
//!
//! Output: one `key=value` per line (`load_s`, `cloud_s`, `write_s`, `wall_s`, `points`, `ply_bytes`,
//! `peak_rss_bytes`, `peak_over_ply`). Peak RSS is `VmHWM` from `/proc/self/status` (Linux only) and
//! covers the whole process, inputs included. Build with `--release`.

#[path = "../benches/common/synthetic_scene.rs"]
mod synthetic_scene;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use depth2ply_geometry::{
    cloud_from_depth, load_depth, write_depth_npz, write_ply_file, CloudConfig, DepthLoadOptions, ImageSize,
    Intrinsics, PlyWriteOptions,
};

struct Args {
    rgb: Option<PathBuf>,
    depth: Option<PathBuf>,
    focal_px: Option<f64>,
    scale: f64,
    out: Option<PathBuf>,
    write_inputs: Option<PathBuf>,
    size: ImageSize,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        rgb: None,
        depth: None,
        focal_px: None,
        scale: 1000.0,
        out: None,
        write_inputs: None,
        size: synthetic_scene::PHOTO_SIZE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rgb" => args.rgb = Some(value()?.into()),
            "--depth" => args.depth = Some(value()?.into()),
            "--focal-px" => args.focal_px = Some(value()?.parse()?),
            "--scale" => args.scale = value()?.parse()?,
            "--out" => args.out = Some(value()?.into()),
            "--write-inputs" => args.write_inputs = Some(value()?.into()),
            "--width" => args.size.width = value()?.parse()?,
            "--height" => args.size.height = value()?.parse()?,
            other => {
                return Err(
                    format!("unknown argument {other}; see the top of examples/pipeline_peak.rs").into(),
                )
            }
        }
    }
    Ok(args)
}

/// Peak resident set size of this process in bytes (`VmHWM`), if the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn write_inputs(dir: &Path, size: ImageSize) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let scene = synthetic_scene::make_scene(size)?;
    scene.rgb.save(dir.join("rgb.png"))?;
    // Millimetres; the scene stays below 65 m, and 0 (no depth) stays 0.
    let mm: Vec<u16> = scene
        .depth
        .as_slice()
        .iter()
        .map(|&z| (z as f64 * 1000.0).round() as u16)
        .collect();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(size.width, size.height, mm)
        .ok_or("depth buffer size")?
        .save(dir.join("depth.png"))?;
    let k = scene.intrinsics;
    // The same depth as Apple's `depth-pro-run` would save it (float32 metres), plus the focal length.
    write_depth_npz(&dir.join("depth.npz"), &scene.depth, k.fx_px)?;
    let json = format!(
        "{{\"width\": {}, \"height\": {}, \"fx_px\": {}, \"fy_px\": {}, \"cx_px\": {}, \"cy_px\": {}, \
         \"depth_scale_units_per_m\": 1000}}\n",
        size.width, size.height, k.fx_px, k.fy_px, k.cx_px, k.cy_px
    );
    std::fs::write(dir.join("camera.json"), json)?;
    println!("wrote {}", dir.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    if let Some(dir) = &args.write_inputs {
        return write_inputs(dir, args.size);
    }
    let started = Instant::now();
    let (depth, rgb, intrinsics) = match (&args.rgb, &args.depth) {
        (Some(rgb_path), Some(depth_path)) => {
            let focal_px = args.focal_px.ok_or("--focal-px is required with --rgb/--depth")?;
            let depth = load_depth(
                depth_path,
                &DepthLoadOptions {
                    scale_units_per_m: args.scale,
                },
            )?;
            let rgb = image::open(rgb_path)?.into_rgb8();
            let intrinsics = Intrinsics::from_focal_px(depth.size(), focal_px)?;
            (depth, rgb, intrinsics)
        }
        (None, None) => {
            let scene = synthetic_scene::make_scene(args.size)?;
            (scene.depth, scene.rgb, scene.intrinsics)
        }
        _ => return Err("give both --rgb and --depth, or neither".into()),
    };
    let loaded = Instant::now();

    let (cloud, report) = cloud_from_depth(&depth, &intrinsics, Some(&rgb), &CloudConfig::default())?;
    let built = Instant::now();

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("depth2ply_pipeline_peak.ply"));
    write_ply_file(&out, &cloud, &PlyWriteOptions::default())?;
    let written = Instant::now();

    let ply_bytes = std::fs::metadata(&out)?.len();
    let peak = peak_rss_bytes();
    println!("input={}", if args.rgb.is_some() { "files" } else { "synthetic" });
    println!("size={}x{}", depth.size().width, depth.size().height);
    println!("load_s={:.3}", (loaded - started).as_secs_f64());
    println!("cloud_s={:.3}", (built - loaded).as_secs_f64());
    println!("write_s={:.3}", (written - built).as_secs_f64());
    println!("wall_s={:.3}", (written - started).as_secs_f64());
    println!("points={}", cloud.len());
    println!(
        "dropped_invalid={} dropped_flying={} dropped_no_normal={}",
        report.invalid_depth, report.flying_pixel, report.no_normal
    );
    println!("ply_path={}", out.display());
    println!("ply_bytes={ply_bytes}");
    match peak {
        Some(peak) => {
            println!("peak_rss_bytes={peak}");
            println!("peak_over_ply={:.2}", peak as f64 / ply_bytes as f64);
        }
        None => println!("peak_rss_bytes=unknown"),
    }
    if args.out.is_none() {
        std::fs::remove_file(&out)?;
    }
    Ok(())
}
