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
//! length) and of the focal length, plus load and inference times. A second argument `winograd4` or
//! `im2col` measures that 3×3 convolution algorithm instead of the default Winograd F(2×2, 3×3).

use std::path::PathBuf;
use std::time::Instant;

use depth2ply_core::{DepthMap, FocalLength, FocalSource, ImageSize};
use depth2ply_model::kernels::Conv3x3Algorithm;
use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Depth agreement statistics against the reference.
struct Agreement {
    /// Largest `|a − b| / |b|` over all pixels.
    max_rel: f64,
    /// Mean of the same.
    mean_rel: f64,
    /// Fraction of pixels whose relative difference exceeds 1e-4.
    frac_above_1e4: f64,
    /// Largest relative difference over pixels whose inverse depth is at least 1 % of the image's
    /// largest (depth within 100× of the nearest point): where `1/x` does not amplify tiny absolute
    /// errors of a near-zero canonical inverse depth.
    max_rel_well_conditioned: f64,
    /// Largest `|1/a − 1/b|` divided by the largest reference inverse depth.
    max_inverse_abs_over_max: f64,
}

fn agreement(ours: &DepthMap, reference: &DepthMap) -> Result<Agreement> {
    if ours.size() != reference.size() {
        return Err(format!(
            "size {} differs from the reference {}",
            ours.size(),
            reference.size()
        )
        .into());
    }
    let max_inverse = reference
        .as_slice()
        .iter()
        .map(|&z| 1.0 / z as f64)
        .fold(0.0, f64::max);
    let mut a = Agreement {
        max_rel: 0.0,
        mean_rel: 0.0,
        frac_above_1e4: 0.0,
        max_rel_well_conditioned: 0.0,
        max_inverse_abs_over_max: 0.0,
    };
    for (&o, &r) in ours.as_slice().iter().zip(reference.as_slice()) {
        let (o, r) = (o as f64, r as f64);
        let rel = ((o - r) / r).abs();
        a.max_rel = a.max_rel.max(rel);
        a.mean_rel += rel;
        a.frac_above_1e4 += f64::from(u8::from(rel > 1e-4));
        if 1.0 / r >= 0.01 * max_inverse {
            a.max_rel_well_conditioned = a.max_rel_well_conditioned.max(rel);
        }
        a.max_inverse_abs_over_max = a
            .max_inverse_abs_over_max
            .max((1.0 / o - 1.0 / r).abs() / max_inverse);
    }
    let n = ours.as_slice().len() as f64;
    a.mean_rel /= n;
    a.frac_above_1e4 /= n;
    Ok(a)
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

/// Reads a 2-D little-endian float32 `.npy` in C order (what `tools/full_parity.py` writes with
/// `np.save`) as a depth map. Kept here so that the model crate needs no depth-file reader.
fn read_npy_f32(path: &std::path::Path) -> Result<DepthMap> {
    let bytes = std::fs::read(path)?;
    let bad = || format!("{}: not a 2-D little-endian float32 C-order .npy", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad().into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad().into()),
    };
    let header = std::str::from_utf8(bytes.get(start..start + header_len).ok_or_else(bad)?)?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad().into());
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(bad)?;
    let dims: Vec<u32> = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let [height, width] = dims[..] else {
        return Err(bad().into());
    };
    let data = &bytes[start + header_len..];
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(DepthMap::new(ImageSize::new(width, height), values)?)
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
    let load = |name: &str| read_npy_f32(&dir.join(name));
    let (depth_pred_ref, depth_given_ref) = (load("depth_pred_fov.npy")?, load("depth_given_focal.npy")?);

    let algorithm = match std::env::args().nth(2).as_deref() {
        None | Some("winograd2") => Conv3x3Algorithm::Winograd2,
        Some("winograd4") => Conv3x3Algorithm::Winograd4,
        Some("im2col") => Conv3x3Algorithm::Im2col,
        Some(other) => {
            return Err(format!("unknown algorithm {other}: winograd2, winograd4 or im2col").into())
        }
    };
    let t = Instant::now();
    let model = DepthPro::load(
        &dir.join("depth_pro.pt"),
        &DepthProConfig::full(),
        DeviceChoice::Cpu,
    )?
    .with_conv3x3_algorithm(algorithm);
    let load_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let predicted = model.infer(&image, None)?;
    let infer_fov_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let given = model.infer(&image, Some(FocalLength::new(focal_given, FocalSource::User)?))?;
    let infer_given_s = t.elapsed().as_secs_f64();

    let pred = agreement(&predicted.depth, &depth_pred_ref)?;
    let given_agreement = agreement(&given.depth, &depth_given_ref)?;
    let fov = predicted.fov_deg.unwrap_or(f64::NAN);
    println!(
        "image {}x{}, weights {}, 3×3 convolutions {algorithm:?}",
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
        predicted.focal.focal_px(),
        ((predicted.focal.focal_px() - focal_ref) / focal_ref).abs()
    );
    for (what, a) in [
        ("predicted FOV".to_string(), pred),
        (format!("given focal {focal_given} px"), given_agreement),
    ] {
        println!(
            "depth ({what}): max rel diff {:.3e}, mean {:.3e}, pixels above 1e-4: {:.4}%, max rel diff where \
             inverse depth >= 1% of its max: {:.3e}, max |inverse depth diff| / max inverse depth: {:.3e}",
            a.max_rel,
            a.mean_rel,
            100.0 * a.frac_above_1e4,
            a.max_rel_well_conditioned,
            a.max_inverse_abs_over_max
        );
    }
    Ok(())
}
