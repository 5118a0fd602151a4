//! Parity of the Candle port with the PyTorch reference, stage by stage.
//!
//! Expected values: `tests/fixtures/reference.safetensors`, written by `tools/make_parity_fixtures.py`
//! from Hugging Face `DepthProForDepthEstimation` (transformers 5.23, torch 2.15, fp32, CPU) at the tiny
//! config of `DepthProConfig::tiny()` with every weight random (see `tests/fixtures/README.md`). The
//! script also checked those tensors against an independent re-implementation of Apple's forward pass
//! on the Apple-named weights (max |Δ| = 0).
//!
//! The three weight files (Apple `.pt` fp16, Apple safetensors fp32, HF safetensors fp16) hold the
//! same fp16-rounded values; each one is loaded strictly and run through the whole network.
//!
//! Tolerances (reasoning):
//! - preprocessing: our bilinear evaluates PyTorch's formula in the same f32 order with the same fused
//!   multiply-adds as its x86-64 AVX2 kernel (bit-identical here); a PyTorch build without FMA would
//!   differ by 1 ulp, so |Δ| ≤ 1e-6 on values in [−1, 1];
//! - pyramid: exact block means, |Δ| ≤ 1e-6;
//! - everything after a matmul or convolution: f32 sums in another order (gemm blocking, im2col vs
//!   oneDNN) give ~1e-6 relative per layer; across two ViT blocks, merge, neck and ten decoder convs
//!   we allow `max|Δ| ≤ 1e-4 · max|reference|` over the stored samples;
//! - FOV: |Δ| ≤ 1e-3° (the head output is ~47°, 1e-4 relative of its inputs' scale);
//! - final depth: elementwise `|Δ| / depth ≤ 1e-4` wherever the reference inverse depth is at least
//!   1e-2 of its maximum (below that, depth = 1 / inverse amplifies the absolute error of a near-zero
//!   inverse depth without bound; those pixels are checked on the inverse depth instead), plus
//!   `|Δ inverse depth| ≤ 1e-4 · max` everywhere.

// Test helpers panic on failure by design (clippy allows that only inside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use depth2ply_core::{FocalLength, FocalSource, ImageSize};
use depth2ply_model::decoder::DecoderStage;
use depth2ply_model::encoder::window_views;
use depth2ply_model::preprocess;
use depth2ply_model::{DepthPro, DepthProConfig, DeviceChoice};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One `[start, stop, step]` per dimension (Python slice semantics).
#[derive(Debug, Clone)]
struct StoredSlice {
    of: String,
    slice: Vec<[usize; 3]>,
}

struct Reference {
    tensors: HashMap<String, Tensor>,
    slices: HashMap<String, StoredSlice>,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    /// max |ours − reference| over the stored samples.
    max_abs: f32,
    /// max |reference| over the stored samples.
    max_ref: f32,
    /// Number of compared values.
    count: usize,
}

impl Stats {
    fn rel(&self) -> f32 {
        self.max_abs / self.max_ref.max(f32::MIN_POSITIVE)
    }
}

impl Reference {
    fn load() -> Reference {
        let path = fixture("reference.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("slices"))
            .expect("slices metadata")
            .clone();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        let mut slices = HashMap::new();
        for (stored, info) in meta.as_object().unwrap() {
            let slice = info["slice"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let d: Vec<usize> = d
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as usize)
                        .collect();
                    [d[0], d[1], d[2]]
                })
                .collect();
            slices.insert(
                stored.clone(),
                StoredSlice {
                    of: info["of"].as_str().unwrap().to_string(),
                    slice,
                },
            );
        }
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        Reference { tensors, slices }
    }

    fn full(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("no reference tensor {name}"))
    }

    /// Compares every stored sample of `name` with the same samples of `ours`.
    fn compare(&self, name: &str, ours: &Tensor) -> Stats {
        let mut stats = Stats {
            max_abs: 0.0,
            max_ref: 0.0,
            count: 0,
        };
        let mut found = false;
        for (stored, s) in self.slices.iter().filter(|(_, s)| s.of == name) {
            found = true;
            let reference = self.full(stored);
            let mine = take_slice(&ours.to_dtype(DType::F32).unwrap(), &s.slice);
            assert_eq!(mine.dims(), reference.dims(), "{stored}: shape of our slice");
            let diff = (&mine - reference).unwrap().abs().unwrap().flatten_all().unwrap();
            stats.max_abs = stats
                .max_abs
                .max(diff.max(0).unwrap().to_scalar::<f32>().unwrap());
            let r = reference
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            stats.max_ref = stats.max_ref.max(r);
            stats.count += reference.elem_count();
        }
        assert!(found, "no reference samples of {name}");
        stats
    }

    /// Compares and asserts `max|Δ| ≤ rel · max|reference|`; prints the figures.
    fn check_rel(&self, label: &str, name: &str, ours: &Tensor, rel: f32) -> Stats {
        let s = self.compare(name, ours);
        println!(
            "{label:>10} {name:<28} n={:>7} max|Δ|={:.3e} max|ref|={:.3e} rel={:.3e}",
            s.count,
            s.max_abs,
            s.max_ref,
            s.rel()
        );
        assert!(
            s.rel() <= rel,
            "{label} {name}: max|Δ| {} > {rel} · max|ref| {}",
            s.max_abs,
            s.max_ref
        );
        s
    }

    /// Compares and asserts `max|Δ| ≤ abs`.
    fn check_abs(&self, label: &str, name: &str, ours: &Tensor, abs: f32) -> Stats {
        let s = self.compare(name, ours);
        println!(
            "{label:>10} {name:<28} n={:>7} max|Δ|={:.3e} max|ref|={:.3e}",
            s.count, s.max_abs, s.max_ref
        );
        assert!(s.max_abs <= abs, "{label} {name}: max|Δ| {} > {abs}", s.max_abs);
        s
    }
}

/// `t[start:stop:step, …]`.
fn take_slice(t: &Tensor, slice: &[[usize; 3]]) -> Tensor {
    assert_eq!(t.rank(), slice.len(), "rank of {:?} vs slice {slice:?}", t.dims());
    let mut t = t.clone();
    for (dim, &[start, stop, step]) in slice.iter().enumerate() {
        t = t.narrow(dim, start, stop - start).unwrap();
        if step > 1 {
            let ids: Vec<u32> = (0..(stop - start) as u32).step_by(step).collect();
            let n = ids.len();
            t = t
                .contiguous()
                .unwrap()
                .index_select(&Tensor::from_vec(ids, n, &Device::Cpu).unwrap(), dim)
                .unwrap();
        }
    }
    t
}

fn test_image() -> image::RgbImage {
    image::open(fixture("image.png")).unwrap().to_rgb8()
}

/// Depth check of the brief's final-depth criterion (see the module docs for the masking).
fn check_depth(label: &str, ours: &[f32], reference: &Tensor, inverse_reference: &Tensor) {
    let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let inverse = inverse_reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len());
    let inv_max = inverse.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (mut worst_rel, mut worst_inv, mut checked, mut worst_all) = (0f32, 0f32, 0usize, 0f32);
    for ((&d, &r), &inv) in ours.iter().zip(&reference).zip(&inverse) {
        worst_inv = worst_inv.max((1.0 / d - 1.0 / r).abs());
        worst_all = worst_all.max((d - r).abs() / r);
        if inv >= 1e-2 * inv_max {
            worst_rel = worst_rel.max((d - r).abs() / r);
            checked += 1;
        }
    }
    println!(
        "{label:>10} depth: max rel {worst_rel:.3e} on {checked}/{} px ({worst_all:.3e} on all), \
         max|Δ inverse| {worst_inv:.3e} (max {inv_max:.3e})",
        ours.len()
    );
    assert!(worst_rel <= 1e-4, "{label}: depth relative error {worst_rel}");
    assert!(
        worst_inv <= 1e-4 * inv_max,
        "{label}: inverse depth error {worst_inv}"
    );
}

#[test]
fn preprocessing_matches_reference() {
    let reference = Reference::load();
    let image = test_image();
    // The PNG decodes to the reference pixels.
    let u8_ref = reference
        .full("image_u8")
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    assert_eq!(image.as_raw(), &u8_ref);
    let x = preprocess::preprocess(&image).unwrap();
    assert_eq!(x.source_size, ImageSize::new(101, 67));
    let t = x.into_tensor(&Device::Cpu, DType::F32).unwrap();
    reference.check_abs("pre", "input", &t, 1e-6);
    let pyramid = depth2ply_model::encoder::Pyramid::new(&t).unwrap();
    reference.check_abs("pre", "pyramid_x1", &pyramid.x1, 1e-6);
    reference.check_abs("pre", "pyramid_x2", &pyramid.x2, 1e-6);
    // Post-processing constants (complete reference tensors).
    let fov = reference.full("fov_deg").to_vec1::<f32>().unwrap()[0];
    let focal = preprocess::focal_px_from_fov(fov, 101);
    let focal_ref = reference.full("focal_px_pred").to_vec1::<f32>().unwrap()[0];
    println!("focal from the reference FOV {fov}°: ours {focal} reference {focal_ref}");
    assert!((focal - focal_ref).abs() <= 1e-5 * focal_ref);
}

/// Loads one weight file strictly and compares every stage.
fn run_parity(file: &str, label: &str) {
    let reference = Reference::load();
    let start = Instant::now();
    let model = DepthPro::load(&fixture(file), &DepthProConfig::tiny(), DeviceChoice::Cpu).unwrap();
    let load_s = start.elapsed().as_secs_f64();
    let net = model.network();
    let image = test_image();
    let size = ImageSize::new(image.width(), image.height());

    let t0 = Instant::now();
    let (x, _) = model.preprocess(&image).unwrap();
    let pyramid = net.pyramid(&x).unwrap();

    // Tokens of single windows: window 0 (1536² level, top left) and window 34 (the 384² image).
    let t1 = Instant::now();
    let views = window_views(&pyramid).unwrap();
    let vit = net.encoder().patch_encoder();
    let win0 = vit.forward(&views[0].contiguous().unwrap(), &[0, 1]).unwrap();
    reference.check_rel(label, "patch_tokens_block0_win0", &win0.hooks[0], 1e-4);
    reference.check_rel(label, "patch_tokens_block1_win0", &win0.hooks[1], 1e-4);
    reference.check_rel(label, "patch_tokens_final_win0", &win0.tokens, 1e-4);
    let win34 = vit.forward_tokens(&views[34].contiguous().unwrap()).unwrap();
    reference.check_rel(label, "patch_tokens_final_win34", &win34, 1e-4);
    let image_tokens = net.encoder().image_encoder().forward_tokens(&pyramid.x2).unwrap();
    reference.check_rel(label, "image_tokens_final", &image_tokens, 1e-4);
    let fov_net = net.fov_network().unwrap();
    let fov_tokens = fov_net.vit().forward_tokens(&pyramid.x2).unwrap();
    reference.check_rel(label, "fov_tokens_final", &fov_tokens, 1e-4);

    // Encoder.
    let t2 = Instant::now();
    let patch = net.encode_patches(&pyramid).unwrap();
    let t_patch = t2.elapsed();
    reference.check_rel(label, "x_latent0", &patch.latent0, 1e-4);
    reference.check_rel(label, "x_latent1", &patch.latent1, 1e-4);
    reference.check_rel(label, "x0", &patch.x0, 1e-4);
    reference.check_rel(label, "x1", &patch.x1, 1e-4);
    reference.check_rel(label, "x2", &patch.x2, 1e-4);
    let global = net.encode_image(&pyramid).unwrap();
    reference.check_rel(label, "x_global", &global, 1e-4);
    let t3 = Instant::now();
    let enc = net.neck(patch, global).unwrap();
    let t_neck = t3.elapsed();
    reference.check_rel(label, "enc_latent0", &enc.latent0, 1e-4);
    reference.check_rel(label, "enc_latent1", &enc.latent1, 1e-4);
    reference.check_rel(label, "enc_x0", &enc.x0, 1e-4);
    reference.check_rel(label, "enc_x1", &enc.x1, 1e-4);
    reference.check_rel(label, "enc_fused", &enc.global, 1e-4);

    // Decoder, every level.
    let t4 = Instant::now();
    let mut levels: Vec<(DecoderStage, Tensor)> = Vec::new();
    let dec = net
        .decoder()
        .decode_with(enc, &mut |stage, t| levels.push((stage, t.clone())))
        .unwrap();
    let t_dec = t4.elapsed();
    for (stage, t) in &levels {
        let name = match stage {
            DecoderStage::LowresFeatures => "dec_lowres_features".to_string(),
            DecoderStage::Fusion(k) => format!("dec_fusion{k}"),
        };
        reference.check_rel(label, &name, t, 1e-4);
    }
    assert_eq!(levels.len(), 6);
    drop(levels);

    let t5 = Instant::now();
    let canonical = net.head(&dec.features).unwrap();
    let t_head = t5.elapsed();
    reference.check_rel(label, "canonical_inverse_depth", &canonical, 1e-4);

    let t6 = Instant::now();
    let fov_enc = fov_net.encode(&pyramid.x2).unwrap();
    reference.check_rel(label, "fov_encoder_features", &fov_enc, 1e-4);
    let fov = fov_net.head(&fov_enc, &dec.lowres_features).unwrap();
    let t_fov = t6.elapsed();
    reference.check_abs(label, "fov_deg", &fov.flatten_all().unwrap(), 1e-3);

    // Post-processing with the predicted FOV and with the given focal length.
    let t7 = Instant::now();
    let canonical = canonical.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let fov = fov.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let focal = preprocess::focal_px_from_fov(fov, size.width);
    let focal_ref = reference.full("focal_px_pred").to_vec1::<f32>().unwrap()[0];
    println!("{label:>10} focal_px_pred ours {focal} reference {focal_ref}");
    assert!((focal - focal_ref).abs() <= 1e-4 * focal_ref);
    let depth = preprocess::postprocess(&canonical, size, focal).unwrap();
    check_depth(
        label,
        depth.as_slice(),
        reference.full("depth_pred_fov"),
        reference.full("inverse_depth_pred_fov"),
    );
    let given = reference.full("focal_px_given").to_vec1::<f32>().unwrap()[0];
    let depth = preprocess::postprocess(&canonical, size, given).unwrap();
    check_depth(
        label,
        depth.as_slice(),
        reference.full("depth_given_focal"),
        reference.full("inverse_depth_given_focal"),
    );
    let t_post = t7.elapsed();
    println!(
        "{label:>10} times: load {load_s:.2}s, preprocess+pyramid {:.2}s, single windows {:.2}s, patch encoder \
         {:.2}s, neck {:.2}s, decoder {:.2}s, head {:.2}s, fov {:.2}s, post {:.2}s",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        t_patch.as_secs_f64(),
        t_neck.as_secs_f64(),
        t_dec.as_secs_f64(),
        t_head.as_secs_f64(),
        t_fov.as_secs_f64(),
        t_post.as_secs_f64(),
    );
}

#[test]
fn parity_apple_pt_fp16() {
    run_parity("tiny_apple_fp16.pt", "apple.pt");
}

#[test]
fn parity_apple_safetensors_fp32() {
    run_parity("tiny_apple.safetensors", "apple.st");
}

#[test]
fn parity_hf_safetensors_fp16() {
    run_parity("tiny_hf.safetensors", "hf.st");
}

/// The public API end to end (preprocessing, network, post-processing) on the real `.pt` format.
#[test]
fn infer_end_to_end() {
    let reference = Reference::load();
    let model = DepthPro::load(
        &fixture("tiny_apple_fp16.pt"),
        &DepthProConfig::tiny(),
        DeviceChoice::Cpu,
    )
    .unwrap();
    let image = test_image();

    let p = model.infer(&image, None).unwrap();
    assert_eq!(p.focal.source(), FocalSource::Model);
    assert_eq!(p.depth.size(), ImageSize::new(101, 67));
    let focal_ref = reference.full("focal_px_pred").to_vec1::<f32>().unwrap()[0] as f64;
    let fov_ref = reference.full("fov_deg").to_vec1::<f32>().unwrap()[0] as f64;
    println!(
        "infer: focal {} (reference {focal_ref}), fov {:?} (reference {fov_ref})",
        p.focal.focal_px(),
        p.fov_deg
    );
    assert!((p.focal.focal_px() - focal_ref).abs() <= 1e-4 * focal_ref);
    assert!((p.fov_deg.unwrap() - fov_ref).abs() <= 1e-3);
    check_depth(
        "infer",
        p.depth.as_slice(),
        reference.full("depth_pred_fov"),
        reference.full("inverse_depth_pred_fov"),
    );

    // Known focal length: the FOV network is skipped and the given value is used as is.
    let given = reference.full("focal_px_given").to_vec1::<f32>().unwrap()[0] as f64;
    let given = FocalLength::new(given, FocalSource::Exif35mm).unwrap();
    let p = model.infer(&image, Some(given)).unwrap();
    assert_eq!((p.focal, p.fov_deg), (given, None));
    check_depth(
        "infer",
        p.depth.as_slice(),
        reference.full("depth_given_focal"),
        reference.full("inverse_depth_given_focal"),
    );
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if available.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The full-size network (3 × ViT-L/16, decoder 256) with all-zero weights on a non-square image:
/// output shapes, per-stage wall times and peak memory at 1536² (speed does not depend on the
/// weight values). About 19 TFLOP, so it is ignored by default; run it with
/// `cargo test -p depth2ply-model --test parity -- --ignored --nocapture full_size`.
#[test]
#[ignore = "full-size model: minutes of CPU time and about 6 GB of memory"]
fn full_size_zero_weights_stage_times() {
    let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
    let model = DepthPro::from_var_builder(&DepthProConfig::full(), vb).unwrap();
    let net = model.network();
    let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut times = Vec::new();
    let mut lap = Instant::now();
    let mut mark = |name: &'static str, times: &mut Vec<(&'static str, f64)>| {
        times.push((name, lap.elapsed().as_secs_f64()));
        lap = Instant::now();
    };
    let (x, size) = model.preprocess(&image).unwrap();
    mark("preprocess", &mut times);
    let pyramid = net.pyramid(&x).unwrap();
    let patch = net.encode_patches(&pyramid).unwrap();
    mark("patch encoder (35 windows)", &mut times);
    assert_eq!(patch.x0.dims(), &[1, 1024, 96, 96]);
    assert_eq!(patch.x1.dims(), &[1, 1024, 48, 48]);
    let global = net.encode_image(&pyramid).unwrap();
    mark("image encoder", &mut times);
    let enc = net.neck(patch, global).unwrap();
    mark("neck", &mut times);
    assert_eq!(enc.latent0.dims(), &[1, 256, 768, 768]);
    assert_eq!(enc.global.dims(), &[1, 1024, 48, 48]);
    let dec = net.decode(enc).unwrap();
    mark("decoder", &mut times);
    let canonical = net.head(&dec.features).unwrap();
    mark("head", &mut times);
    assert_eq!(canonical.dims(), &[1, 1, 1536, 1536]);
    let fov = net.fov(&pyramid, &dec.lowres_features).unwrap().unwrap();
    mark("fov network", &mut times);
    assert_eq!(fov.dims(), &[1, 1, 1, 1]);
    let canonical = canonical.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let depth = preprocess::postprocess(&canonical, size, 500.0).unwrap();
    mark("post-processing", &mut times);
    assert_eq!(depth.size(), ImageSize::new(640, 480));
    let total: f64 = times.iter().map(|(_, t)| t).sum();
    for (name, t) in &times {
        println!("{name:>28}: {t:8.2} s");
    }
    println!(
        "{:>28}: {total:8.2} s, peak RSS {:?} MiB",
        "total",
        peak_rss_mib()
    );
}
