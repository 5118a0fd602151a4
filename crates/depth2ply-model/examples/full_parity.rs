//! Full-size parity against the PyTorch reference, on random weights in Apple's `depth_pro.pt` format.
//!
//! First let `tools/full_parity.py` write the weights, the image and the reference depth maps, then:
//!
//! ```sh
//! /work/venv-ref/bin/python tools/full_parity.py            # -> target/full-parity/
//! cargo run --release -p depth2ply-model --example full_parity -- target/full-parity
//! ```
//!
//! Prints the maximum relative difference of depth (with the predicted FOV and with the given focal
//! length) and of the focal length, plus load and inference times.

use std::path::PathBuf;
use std::time::Instant;

use depth2ply_geometry::depth_io::{load_depth, DepthLoadOptions};
use depth2ply_geometry::DepthMap;
use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Largest `|a − b| / |b|` over all pixels, and the mean of the same.
fn relative_diff(ours: &DepthMap, reference: &DepthMap) -> Result<(f64, f64)> {
    if ours.size() != reference.size() {
        return Err(format!(
            "size {} differs from the reference {}",
            ours.size(),
            reference.size()
        )
        .into());
    }
    let (mut max, mut sum) = (0f64, 0f64);
    for (&a, &b) in ours.as_slice().iter().zip(reference.as_slice()) {
        let d = ((a as f64 - b as f64) / b as f64).abs();
        max = max.max(d);
        sum += d;
    }
    Ok((max, sum / ours.as_slice().len() as f64))
}

/// Reads a number from the flat `reference.json` written by the script (no JSON dependency needed).
fn json_number(text: &str, key: &str) -> Result<f64> {
    let pattern = format!("\"{key}\":");
    let start = text
        .find(&pattern)
        .ok_or_else(|| format!("reference.json has no {key}"))?
        + pattern.len();
    let rest = text[start..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    Ok(rest[..end].trim().parse()?)
}

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/full-parity".into()),
    );
    let reference_json = std::fs::read_to_string(dir.join("reference.json"))?;
    let fov_ref = json_number(&reference_json, "fov_deg")?;
    let focal_ref = json_number(&reference_json, "focal_px_pred")?;
    let focal_given = json_number(&reference_json, "focal_px_given")?;
    let image = image::open(dir.join("image.png"))?.to_rgb8();
    let load = |name: &str| load_depth(&dir.join(name), &DepthLoadOptions::default());
    let (depth_pred_ref, depth_given_ref) = (load("depth_pred_fov.npy")?, load("depth_given_focal.npy")?);

    let t = Instant::now();
    let model = DepthPro::load(
        &dir.join("depth_pro.pt"),
        &DepthProConfig::full(),
        DeviceChoice::Cpu,
    )?;
    let load_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let predicted = model.infer(&image, None)?;
    let infer_fov_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let given = model.infer(&image, Some(focal_given))?;
    let infer_given_s = t.elapsed().as_secs_f64();

    let (max_pred, mean_pred) = relative_diff(&predicted.depth, &depth_pred_ref)?;
    let (max_given, mean_given) = relative_diff(&given.depth, &depth_given_ref)?;
    let fov = predicted.fov_deg.unwrap_or(f64::NAN);
    println!(
        "image {}x{}, weights {}",
        image.width(),
        image.height(),
        dir.join("depth_pro.pt").display()
    );
    println!("load {load_s:.1} s, infer with FOV head {infer_fov_s:.1} s, infer with given focal {infer_given_s:.1} s");
    println!(
        "fov_deg ours {fov:.6} reference {fov_ref:.6} rel diff {:.3e}",
        ((fov - fov_ref) / fov_ref).abs()
    );
    println!(
        "focal_px ours {:.4} reference {focal_ref:.4} rel diff {:.3e}",
        predicted.focal_px,
        ((predicted.focal_px - focal_ref) / focal_ref).abs()
    );
    println!("depth (predicted FOV): max rel diff {max_pred:.3e}, mean {mean_pred:.3e}");
    println!("depth (given focal {focal_given} px): max rel diff {max_given:.3e}, mean {mean_given:.3e}");
    Ok(())
}
