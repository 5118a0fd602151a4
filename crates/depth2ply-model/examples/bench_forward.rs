//! CPU benchmark of one full-size Depth Pro forward pass, stage by stage.
//!
//! ```sh
//! cargo run --release -p depth2ply-model --example bench_forward              # everything, all cores
//! cargo run --release -p depth2ply-model --example bench_forward -- --threads 1 --stages patch --windows 5
//! cargo run --release -p depth2ply-model --example bench_forward -- --weights target/full-parity/depth_pro.pt
//! ```
//!
//! Inputs: none (a 1200×800 RGB test image is generated in code). The network is the full config
//! (`DepthProConfig::full()`) with small random weights (speed does not depend on the values; random
//! rather than zero so that nothing hits a zero fast path and no denormals appear), or a real
//! checkpoint with `--weights` (then the strict load is timed as "model load").
//!
//! Output (stdout): one row per stage — wall time, analytic GFLOP (FLOP = 2·MAC, from the config; the
//! full total is spec §10.1's 19,247 GFLOP), achieved GFLOP/s, fraction of the machine's fp32 peak, peak
//! resident memory during the stage — then the total, the process peak RSS (`VmHWM`) and the model
//! build time.
//!
//! Flags:
//! - `--threads N`: threads for gemm, convolutions and elementwise ops (default: `$RAYON_NUM_THREADS`,
//!   else the physical cores), applied with `depth2ply_model::runtime::set_threads`.
//! - `--stages a,b,…`: run only these of `pre,pyramid,patch,image,fov-encoder,neck,decoder,head,fov-head,post`
//!   (`vit` = patch,image,fov-encoder; `conv` = neck,decoder,head,fov-head). Inputs of a selected stage whose
//!   producer was skipped are zeros of the right shape.
//! - `--windows N`: run the patch encoder on the first N of the 35 windows only (no merge; the FLOP
//!   count follows).
//! - `--blocks N`: build every ViT with N blocks instead of 24 (hooks clamped to N − 1).
//! - `--window-batch N`: windows per patch-ViT batch (default: the network's default).
//! - `--peak-gflops X`: fp32 peak of one core used for the "% peak" column (default 250: AVX-512, two
//!   512-bit FMA pipes; `examples/fp32_peak.rs` measured 245–248 on the Zen 5 EPYC this was written on).
//! - `--width W --height H`: size of the generated photo (default 1200×800).
//! - `--vit-ab R`: instead of the network, build one patch-encoder ViT and run it on `--windows`
//!   windows (one batch) R times alternating the hand-written f32 CPU path (A) and Candle's generic ops
//!   (B), printing wall and CPU time of each run and the largest difference of the outputs;
//!   `--vit-path fast|generic` runs only one of them (for profilers).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use depth2ply_model::decoder::DecoderOutput;
use depth2ply_model::encoder::{window_views, Encodings, PatchFeatures};
use depth2ply_model::{preprocess, runtime, DepthPro, DepthProConfig, DeviceChoice, VitConfig};
use rayon::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const STAGES: [&str; 10] = [
    "pre",
    "pyramid",
    "patch",
    "image",
    "fov-encoder",
    "neck",
    "decoder",
    "head",
    "fov-head",
    "post",
];

struct Args {
    threads: usize,
    stages: BTreeSet<&'static str>,
    windows: usize,
    blocks: Option<usize>,
    window_batch: Option<usize>,
    weights: Option<PathBuf>,
    peak_gflops_per_core: f64,
    width: u32,
    height: u32,
    vit_ab: usize,
    /// Which paths `--vit-ab` runs: 0 both, 1 fast only, 2 generic only.
    vit_paths: u8,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        threads: runtime::default_threads(),
        stages: STAGES.iter().copied().collect(),
        windows: 35,
        blocks: None,
        window_batch: None,
        weights: None,
        peak_gflops_per_core: 250.0,
        width: 1200,
        height: 800,
        vit_ab: 0,
        vit_paths: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => args.threads = value()?.parse()?,
            "--windows" => args.windows = value()?.parse::<usize>()?.clamp(1, 35),
            "--blocks" => args.blocks = Some(value()?.parse::<usize>()?.max(1)),
            "--window-batch" => args.window_batch = Some(value()?.parse()?),
            "--weights" => args.weights = Some(PathBuf::from(value()?)),
            "--peak-gflops" => args.peak_gflops_per_core = value()?.parse()?,
            "--width" => args.width = value()?.parse()?,
            "--height" => args.height = value()?.parse()?,
            "--vit-ab" => args.vit_ab = value()?.parse()?,
            "--vit-path" => {
                args.vit_paths = match value()?.as_str() {
                    "both" => 0,
                    "fast" => 1,
                    "generic" => 2,
                    other => return Err(format!("--vit-path {other}: one of both, fast, generic").into()),
                }
            }
            "--stages" => {
                args.stages.clear();
                for name in value()?.split(',') {
                    let names: &[&'static str] = match name.trim() {
                        "all" => &STAGES,
                        "vit" => &["patch", "image", "fov-encoder"],
                        "conv" => &["neck", "decoder", "head", "fov-head"],
                        other => match STAGES.iter().find(|s| **s == other) {
                            Some(s) => std::slice::from_ref(s),
                            None => {
                                return Err(format!(
                                    "unknown stage {other}; one of {STAGES:?}, vit, conv, all"
                                )
                                .into())
                            }
                        },
                    };
                    args.stages.extend(names.iter().copied());
                }
            }
            "--help" | "-h" => {
                println!("see the header of crates/depth2ply-model/examples/bench_forward.rs");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other} (try --help)").into()),
        }
    }
    Ok(args)
}

/// Small random weights, generated from a hash of the tensor name and the element index (no state,
/// so the tensors can be filled in parallel). Matrices get uniform values with variance 1 / fan-in,
/// LayerNorm weights 1 ± 0.1, LayerScale 0.1 ± 0.05, everything else ± 0.02.
struct RandomWeights;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = shape.dims();
        let n = shape.elem_count();
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_norm = name.contains("norm") && leaf == "weight";
        let (center, half_width) = if is_norm {
            (1.0, 0.1)
        } else if leaf == "gamma" {
            (0.1, 0.05)
        } else if dims.len() >= 2 && !name.ends_with("pos_embed") && !name.ends_with("cls_token") {
            let fan_in = (n / dims[0].max(1)).max(1) as f32;
            (0.0, (3.0 / fan_in).sqrt())
        } else {
            (0.0, 0.02)
        };
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut values = vec![0f32; n];
        values.par_chunks_mut(1 << 16).enumerate().for_each(|(c, chunk)| {
            for (i, v) in chunk.iter_mut().enumerate() {
                let r = splitmix64(seed ^ ((c << 16) + i) as u64);
                let u = (r >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                *v = center + half_width * (2.0 * u - 1.0);
            }
        });
        Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need a shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Analytic FLOP counts (FLOP = 2 · multiply-accumulate), from the config; spec §10.1.

fn gflop(macs: f64) -> f64 {
    2.0 * macs / 1e9
}

/// One ViT on `windows` 384² windows: patch embedding plus `depth` blocks (qkv, q·kᵀ, p·v, proj, MLP).
fn vit_gflop(v: &VitConfig, windows: usize) -> f64 {
    let (c, m, g) = (v.embed_dim as f64, v.mlp_hidden_dim as f64, v.grid_size() as f64);
    let n = v.num_tokens() as f64;
    let p = v.patch_size as f64;
    let embed = g * g * c * 3.0 * p * p;
    let block = n * c * 3.0 * c + 2.0 * n * n * c + n * c * c + 2.0 * n * c * m;
    windows as f64 * gflop(embed + v.depth as f64 * block)
}

/// Stride-1 "same" k×k convolution at h×w.
fn conv_macs(c_in: usize, c_out: usize, k: usize, hw: usize) -> f64 {
    (hw * hw) as f64 * (c_in * c_out * k * k) as f64
}

/// 2×2/stride-2 transposed convolution from h×w.
fn convt_macs(c_in: usize, c_out: usize, hw: usize) -> f64 {
    (hw * hw) as f64 * (c_in * c_out * 4) as f64
}

fn neck_gflop(cfg: &DepthProConfig) -> f64 {
    let e = cfg.patch_encoder.embed_dim;
    let ei = cfg.image_encoder.embed_dim;
    let [d0, d1, d2, d3] = cfg.encoder_feature_dims;
    let d = cfg.decoder_features;
    // Project-upsample: 1×1 at `hw`, then ConvTs doubling the size.
    let pu = |c_int: usize, c_out: usize, layers: usize, hw: usize| {
        let mut macs = conv_macs(e, c_int, 1, hw);
        let (mut c, mut s) = (c_int, hw);
        for _ in 0..layers {
            macs += convt_macs(c, c_out, s);
            c = c_out;
            s *= 2;
        }
        macs
    };
    gflop(
        pu(d0, d, 3, 96)
            + pu(d0, d0, 2, 96)
            + pu(d1, d1, 1, 96)
            + pu(d2, d2, 1, 48)
            + pu(d3, d3, 1, 24)
            + convt_macs(ei, d3, 24)
            + conv_macs(2 * d3, d3, 1, 48),
    )
}

fn decoder_gflop(cfg: &DepthProConfig) -> f64 {
    let d = cfg.decoder_features;
    let [_, d1, d2, d3] = cfg.encoder_feature_dims;
    let [d0, ..] = cfg.encoder_feature_dims;
    let convs = conv_macs(d0, d, 3, 384)
        + conv_macs(d1, d, 3, 192)
        + conv_macs(d2, d, 3, 96)
        + conv_macs(d3, d, 3, 48);
    // fusions[k] at size s (resnet1 only with a skip input; deconv except k = 0; 1×1 at the output size).
    let fusion = |s: usize, skip: bool, deconv: bool| {
        let res = 2.0 * conv_macs(d, d, 3, s);
        let mut macs = res + if skip { res } else { 0.0 };
        let out = if deconv {
            macs += convt_macs(d, d, s);
            2 * s
        } else {
            s
        };
        macs + conv_macs(d, d, 1, out)
    };
    gflop(
        convs
            + fusion(48, false, true)
            + fusion(96, true, true)
            + fusion(192, true, true)
            + fusion(384, true, true)
            + fusion(768, true, false),
    )
}

fn head_gflop(cfg: &DepthProConfig) -> f64 {
    let d = cfg.decoder_features;
    gflop(
        conv_macs(d, d / 2, 3, 768)
            + convt_macs(d / 2, d / 2, 768)
            + conv_macs(d / 2, cfg.head_features, 3, 1536)
            + conv_macs(cfg.head_features, 1, 1, 1536),
    )
}

fn fov_encoder_gflop(cfg: &DepthProConfig) -> f64 {
    cfg.fov_encoder.as_ref().map_or(0.0, |v| {
        vit_gflop(v, 1) + gflop((v.num_tokens() * v.embed_dim * cfg.decoder_features / 2) as f64)
    })
}

fn fov_head_gflop(cfg: &DepthProConfig) -> f64 {
    let d = cfg.decoder_features;
    // Stride-2 3×3 convs 48→24→12→6, then a 6×6 conv to 1×1.
    gflop(
        conv_macs(d, d / 2, 3, 24)
            + conv_macs(d / 2, d / 4, 3, 12)
            + conv_macs(d / 4, d / 8, 3, 6)
            + (d / 8 * 36) as f64,
    )
}

// ---------------------------------------------------------------------------------------------

struct Row {
    name: String,
    seconds: f64,
    /// CPU time of the whole process (all threads, user + system) during the stage.
    cpu_seconds: f64,
    /// Minor page faults during the stage (fresh pages: what a caching allocator avoids).
    faults: u64,
    gflop: f64,
    peak_rss: Option<u64>,
}

/// (CPU seconds, minor faults) of this process so far, from `/proc/self/stat` (Linux; zeros elsewhere).
fn cpu_and_faults() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3; minflt 10, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    // Clock ticks are 100 Hz on every Linux configuration in practice (USER_HZ).
    ((field(14) + field(15)) as f64 / 100.0, field(10))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / (1 << 20) as f64))
}

fn zeros(dims: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::zeros(dims, DType::F32, &Device::Cpu)
}

fn test_photo(width: u32, height: u32) -> image::RgbImage {
    // Smooth gradients plus a fine checker: bilinear resizing does real work on every pixel.
    image::RgbImage::from_fn(width, height, |x, y| {
        let checker = if (x / 3 + y / 5) % 2 == 0 { 40 } else { 0 };
        image::Rgb([
            (x * 200 / width.max(1)) as u8 + checker,
            (y * 200 / height.max(1)) as u8 + checker,
            ((x + y) % 256) as u8,
        ])
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let threads = runtime::set_threads(args.threads)?;
    let mut config = DepthProConfig::full();
    if let Some(blocks) = args.blocks {
        for vit in [&mut config.patch_encoder, &mut config.image_encoder] {
            vit.depth = blocks;
        }
        if let Some(fov) = config.fov_encoder.as_mut() {
            fov.depth = blocks;
        }
        config.hook_block_ids = config.hook_block_ids.map(|id| id.min(blocks - 1));
    }
    if args.vit_ab > 0 {
        return vit_ab(&config, &args);
    }
    let load_start = Instant::now();
    let mut model = match &args.weights {
        Some(path) => {
            if args.blocks.is_some() {
                return Err(
                    "--blocks cannot be combined with --weights (the checkpoint has 24 blocks)".into(),
                );
            }
            DepthPro::load(path, &config, DeviceChoice::Cpu)?
        }
        None => {
            let vb = VarBuilder::from_backend(Box::new(RandomWeights), DType::F32, Device::Cpu);
            DepthPro::from_var_builder(&config, vb)?
        }
    };
    let load_s = load_start.elapsed().as_secs_f64();
    if let Some(w) = args.window_batch {
        model = model.with_window_batch(w);
    }
    let rss_after_load = runtime::current_rss_bytes();
    let peak_after_load = runtime::peak_rss_bytes();
    let net = model.network();
    let image = test_photo(args.width, args.height);
    let run = |name: &str| args.stages.contains(name);

    let e = config.patch_encoder.embed_dim;
    let [d0, d1, d2, d3] = config.encoder_feature_dims;
    let d = config.decoder_features;

    let mut rows: Vec<Row> = Vec::new();
    let mut timed = |name: &str, gflop: f64, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        runtime::reset_peak_rss();
        let (cpu0, faults0) = cpu_and_faults();
        let t = Instant::now();
        f()?;
        let seconds = t.elapsed().as_secs_f64();
        let (cpu1, faults1) = cpu_and_faults();
        rows.push(Row {
            name: name.to_string(),
            seconds,
            cpu_seconds: cpu1 - cpu0,
            faults: faults1 - faults0,
            gflop,
            peak_rss: runtime::peak_rss_bytes(),
        });
        Ok(())
    };

    let total_start = Instant::now();
    let mut input = None;
    let mut size = depth2ply_core::ImageSize::new(args.width, args.height);
    if run("pre") {
        timed("preprocessing", 0.0, &mut || {
            let (x, s) = model.preprocess(&image)?;
            input = Some(x);
            size = s;
            Ok(())
        })?;
    }
    let input = match input {
        Some(x) => x,
        None => zeros(&[1, 3, 1536, 1536])?,
    };
    let mut pyramid = None;
    timed("pyramid", 0.0, &mut || {
        pyramid = Some(net.pyramid(&input)?);
        Ok(())
    })?;
    let pyramid = pyramid.ok_or("no pyramid")?;
    drop(input);

    let mut patch: Option<PatchFeatures> = None;
    if run("patch") {
        if args.windows == 35 {
            timed(
                "patch encoder (35 windows)",
                vit_gflop(&config.patch_encoder, 35),
                &mut || {
                    patch = Some(net.encode_patches(&pyramid)?);
                    Ok(())
                },
            )?;
        } else {
            let views = window_views(&pyramid)?;
            let vit = net.encoder().patch_encoder();
            let batch = net.window_batch();
            let name = format!("patch encoder ({} windows)", args.windows);
            timed(&name, vit_gflop(&config.patch_encoder, args.windows), &mut || {
                for chunk in views[..args.windows].chunks(batch) {
                    let x = Tensor::cat(chunk, 0)?;
                    let out = vit.forward(&x, &config.hook_block_ids)?;
                    drop(out);
                }
                Ok(())
            })?;
        }
    }
    let mut global = None;
    if run("image") {
        timed("image encoder", vit_gflop(&config.image_encoder, 1), &mut || {
            global = Some(net.encode_image(&pyramid)?);
            Ok(())
        })?;
    }
    let mut fov_encoded = None;
    let fov_net = net.fov_network();
    if run("fov-encoder") {
        if let Some(fov) = fov_net {
            timed("fov encoder", fov_encoder_gflop(&config), &mut || {
                fov_encoded = Some(fov.encode(&pyramid.x2)?);
                Ok(())
            })?;
        }
    }

    let mut encodings: Option<Encodings> = None;
    if run("neck") {
        let patch = match patch.take() {
            Some(p) => p,
            None => PatchFeatures {
                latent0: zeros(&[1, e, 96, 96])?,
                latent1: zeros(&[1, e, 96, 96])?,
                x0: zeros(&[1, e, 96, 96])?,
                x1: zeros(&[1, e, 48, 48])?,
                x2: zeros(&[1, e, 24, 24])?,
            },
        };
        let global = match global.take() {
            Some(g) => g,
            None => zeros(&[1, config.image_encoder.embed_dim, 24, 24])?,
        };
        let mut inputs = Some((patch, global));
        timed("neck", neck_gflop(&config), &mut || {
            let (p, g) = inputs.take().ok_or("neck inputs")?;
            encodings = Some(net.neck(p, g)?);
            Ok(())
        })?;
    }
    drop(patch);
    drop(global);

    let mut decoded: Option<DecoderOutput> = None;
    if run("decoder") {
        let enc = match encodings.take() {
            Some(enc) => enc,
            None => Encodings {
                latent0: zeros(&[1, d, 768, 768])?,
                latent1: zeros(&[1, d0, 384, 384])?,
                x0: zeros(&[1, d1, 192, 192])?,
                x1: zeros(&[1, d2, 96, 96])?,
                global: zeros(&[1, d3, 48, 48])?,
            },
        };
        let mut enc = Some(enc);
        timed("decoder", decoder_gflop(&config), &mut || {
            decoded = Some(net.decode(enc.take().ok_or("decoder input")?)?);
            Ok(())
        })?;
    }
    drop(encodings);
    let (features, lowres) = match decoded {
        Some(DecoderOutput {
            features,
            lowres_features,
        }) => (Some(features), Some(lowres_features)),
        None => (None, None),
    };

    let mut canonical = None;
    if run("head") {
        let features = match features {
            Some(f) => f,
            None => zeros(&[1, d, 768, 768])?,
        };
        timed("head", head_gflop(&config), &mut || {
            canonical = Some(net.head(&features)?);
            Ok(())
        })?;
    } else {
        drop(features);
    }

    let mut fov_deg = 60.0f32;
    if run("fov-head") {
        if let Some(fov) = fov_net {
            let encoded = match fov_encoded.take() {
                Some(t) => t,
                None => zeros(&[1, d / 2, 24, 24])?,
            };
            let lowres = match lowres {
                Some(l) => l,
                None => zeros(&[1, d, 48, 48])?,
            };
            timed("fov head", fov_head_gflop(&config), &mut || {
                let out = fov.head(&encoded, &lowres)?;
                fov_deg = out.flatten_all()?.to_vec1::<f32>()?[0];
                Ok(())
            })?;
        }
    }

    if run("post") {
        let canonical = match canonical.take() {
            Some(c) => c,
            None => zeros(&[1, 1, 1536, 1536])?,
        };
        let mut canonical = Some(canonical);
        timed("post-processing", 0.0, &mut || {
            let host = canonical
                .take()
                .ok_or("post input")?
                .flatten_all()?
                .to_vec1::<f32>()?;
            // A usable focal length even when random weights predict a nonsense FOV.
            let focal = preprocess::focal_px_from_fov(fov_deg.clamp(10.0, 170.0), size.width);
            let depth = preprocess::postprocess(&host, size, focal)?;
            std::hint::black_box(depth);
            Ok(())
        })?;
    }
    let total_s = total_start.elapsed().as_secs_f64();

    let peak_all = args.peak_gflops_per_core * threads as f64;
    let (load1, load5, _) = load_average();
    println!(
        "depth2ply bench_forward: {}×{} photo, threads {threads}, window batch {}, {} ViT blocks, \
         weights {}, load average {load1:.2} (1 min) {load5:.2} (5 min)",
        args.width,
        args.height,
        net.window_batch(),
        config.patch_encoder.depth,
        args.weights
            .as_ref()
            .map_or("random".into(), |p| p.display().to_string()),
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>10} {:>9}",
        "stage", "time s", "GFLOP", "GFLOP/s", "% peak", "peak MiB", "CPU s", "GF/CPU-s", "faults"
    );
    let (mut sum_t, mut sum_f, mut sum_cpu) = (0.0, 0.0, 0.0);
    for row in &rows {
        sum_t += row.seconds;
        sum_cpu += row.cpu_seconds;
        sum_f += row.gflop;
        let rate = row.gflop / row.seconds;
        let (rate_s, frac_s) = if row.gflop > 0.0 {
            (format!("{rate:.1}"), format!("{:.1}", 100.0 * rate / peak_all))
        } else {
            ("-".into(), "-".into())
        };
        let per_cpu = if row.gflop > 0.0 && row.cpu_seconds > 0.0 {
            format!("{:.1}", row.gflop / row.cpu_seconds)
        } else {
            "-".into()
        };
        println!(
            "{:<28} {:>9.3} {:>9.1} {:>9} {:>7} {:>10} {:>9.2} {:>10} {:>9}",
            row.name,
            row.seconds,
            row.gflop,
            rate_s,
            frac_s,
            mib(row.peak_rss),
            row.cpu_seconds,
            per_cpu,
            row.faults
        );
    }
    println!(
        "{:<28} {:>9.3} {:>9.1} {:>9.1} {:>7.1} {:>10} {:>9.2} {:>10.1}",
        "total (stages)",
        sum_t,
        sum_f,
        sum_f / sum_t,
        100.0 * sum_f / sum_t / peak_all,
        "",
        sum_cpu,
        sum_f / sum_cpu.max(1e-9),
    );
    println!(
        "wall {total_s:.3} s; model build/load {load_s:.2} s; RSS after load {} MiB; peak RSS (VmHWM) {} MiB; \
         fp32 peak assumed {peak_all:.0} GFLOP/s ({} per core)",
        mib(rss_after_load),
        mib(rows.iter().filter_map(|r| r.peak_rss).chain(peak_after_load).max()),
        args.peak_gflops_per_core
    );
    Ok(())
}

/// Same-process A/B of the two ViT paths (see `--vit-ab`).
fn vit_ab(config: &DepthProConfig, args: &Args) -> Result<()> {
    let vb = VarBuilder::from_backend(Box::new(RandomWeights), DType::F32, Device::Cpu);
    let mut vit = depth2ply_model::vit::Vit::load(&config.patch_encoder, vb)?;
    let x = Tensor::rand(-1f32, 1.0, (args.windows, 3, 384, 384), &Device::Cpu)?;
    let gflop = vit_gflop(&config.patch_encoder, args.windows);
    let hooks = config.hook_block_ids;
    let mut outputs: [Option<Tensor>; 2] = [None, None];
    println!(
        "ViT A/B: {} windows, {} blocks, threads {}, {gflop:.1} GFLOP per run",
        args.windows,
        config.patch_encoder.depth,
        rayon::current_num_threads()
    );
    for run in 0..2 * args.vit_ab {
        let fast = run % 2 == 0;
        if (fast && args.vit_paths == 2) || (!fast && args.vit_paths == 1) {
            continue;
        }
        vit.set_cpu_fast_path(fast);
        let (cpu0, faults0) = cpu_and_faults();
        let t = Instant::now();
        let out = vit.forward(&x, &hooks)?;
        let wall = t.elapsed().as_secs_f64();
        let (cpu1, faults1) = cpu_and_faults();
        let (l1, _, _) = load_average();
        println!(
            "{} wall {wall:7.3} s  {:6.1} GFLOP/s  CPU {:7.2} s  {:6.1} GFLOP/CPU-s  faults {:8}  load {l1:.2}",
            if fast { "A fast   " } else { "B generic" },
            gflop / wall,
            cpu1 - cpu0,
            gflop / (cpu1 - cpu0).max(1e-9),
            faults1 - faults0
        );
        outputs[usize::from(!fast)] = Some(out.tokens);
    }
    if let [Some(a), Some(b)] = &outputs {
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?;
        println!("max |A − B| = {diff:.3e} (max |B| = {scale:.3e})");
    }
    Ok(())
}

fn load_average() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    (
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    )
}
