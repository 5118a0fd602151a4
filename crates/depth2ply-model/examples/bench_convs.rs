//! Microbenchmark of the decoder / head convolution kernels (`depth2ply_model::kernels`) against
//! the Candle ops they replace, on Depth Pro's real shapes (batch 1, f32, CPU, random data).
//!
//! For every case it alternates old / new runs (so both see the same machine load), reports the
//! best time of each, GFLOP/s (direct-convolution FLOPs, 2 per multiply-add, for every variant: a
//! Winograd figure is "effective"), the speed-up, and the max |new − old| (absolute, and relative
//! to max |old|).
//!
//! ```text
//! RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo run --release -p depth2ply-model \
//!     --example bench_convs -- [--reps N] [--only SUBSTRING] [--variant SUBSTRING] [--no-old] [--list]
//! ```
//! `--only` selects cases whose name contains the substring (e.g. `768`, `convT`, `resblock`);
//! `--variant` keeps only the new variants whose label contains the substring (e.g. `Winograd2`);
//! `--no-old` skips the Candle baseline (slow at 768² and above: ~20 s per 3×3 conv per core).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use depth2ply_model::kernels::{
    conv1x1, conv3x3, conv_transpose2x2, depth_head_tail, residual_block, Conv3x3Algorithm, Conv3x3Options,
    HeadTail, ResidualTail, ResidualUnit,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn randn(shape: &[usize], scale: f64) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, 1.0, shape, &Device::Cpu)?.affine(scale, 0.0)?)
}

/// A labelled way of computing a case's tensor.
type Variant = (String, Box<dyn Fn() -> Result<Tensor>>);

/// One benchmark: an old (Candle) and new closure computing the same tensor.
struct Case {
    name: String,
    /// Direct-convolution FLOPs (2 per multiply-add).
    flops: f64,
    old: Box<dyn Fn() -> Result<Tensor>>,
    new: Vec<Variant>,
}

fn conv3x3_cases(cases: &mut Vec<Case>, ci: usize, co: usize, hw: usize, tag: &str) -> Result<()> {
    let x = randn(&[1, ci, hw, hw], 1.0)?;
    let w = randn(&[co, ci, 3, 3], (2.0 / (9.0 * ci as f64)).sqrt())?;
    let b = randn(&[co], 0.1)?;
    let (xo, wo, bo) = (x.clone(), w.clone(), b.clone());
    let mut new: Vec<Variant> = Vec::new();
    for algorithm in [
        Conv3x3Algorithm::Winograd2,
        Conv3x3Algorithm::Winograd4,
        Conv3x3Algorithm::Im2col,
    ] {
        let (x, w, b) = (x.clone(), w.clone(), b.clone());
        new.push((
            format!("{algorithm:?}"),
            Box::new(move || {
                let opts = Conv3x3Options {
                    algorithm,
                    ..Default::default()
                };
                Ok(conv3x3(&x, &w, Some(&b), &opts)?)
            }),
        ));
    }
    cases.push(Case {
        name: format!("conv3x3 {ci}->{co} @{hw}² {tag}"),
        flops: 2.0 * (ci * co * 9 * hw * hw) as f64,
        old: Box::new(move || {
            Ok(xo
                .conv2d(&wo, 1, 1, 1, 1)?
                .broadcast_add(&bo.reshape((1, (), 1, 1))?)?)
        }),
        new,
    });
    Ok(())
}

fn conv_transpose_case(cases: &mut Vec<Case>, ci: usize, co: usize, hw: usize, tag: &str) -> Result<()> {
    let x = randn(&[1, ci, hw, hw], 1.0)?;
    let w = randn(&[ci, co, 2, 2], (1.0 / ci as f64).sqrt())?;
    let packed = w.reshape((ci, co * 4))?.t()?.contiguous()?;
    let (xo, wo) = (x.clone(), w.clone());
    let (xm, pm) = (x.clone(), packed.clone());
    cases.push(Case {
        name: format!("convT2x2 {ci}->{co} {hw}²->{}² {tag}", 2 * hw),
        flops: 2.0 * (ci * co * 4 * hw * hw) as f64,
        old: Box::new(move || Ok(xo.conv_transpose2d(&wo, 0, 0, 2, 1)?)),
        new: vec![
            (
                "matmul+permute (previous network.rs)".into(),
                Box::new(move || {
                    let y = pm.matmul(&xm.reshape((ci, hw * hw))?)?;
                    Ok(y.reshape((1, co, 2, 2, hw, hw))?
                        .permute((0, 1, 4, 2, 5, 3))?
                        .contiguous()?
                        .reshape((1, co, 2 * hw, 2 * hw))?)
                }),
            ),
            (
                "kernel".into(),
                Box::new(move || Ok(conv_transpose2x2(&x, &packed, None)?)),
            ),
        ],
    });
    Ok(())
}

fn conv1x1_case(cases: &mut Vec<Case>, ci: usize, co: usize, hw: usize) -> Result<()> {
    let x = randn(&[1, ci, hw, hw], 1.0)?;
    let w = randn(&[co, ci], (1.0 / ci as f64).sqrt())?;
    let b = randn(&[co], 0.1)?;
    let (xo, wo, bo) = (x.clone(), w.clone(), b.clone());
    cases.push(Case {
        name: format!("conv1x1 {ci}->{co} @{hw}²"),
        flops: 2.0 * (ci * co * hw * hw) as f64,
        old: Box::new(move || {
            let y = wo.matmul(&xo.reshape((ci, hw * hw))?)?;
            Ok(y.broadcast_add(&bo.reshape(((), 1))?)?.reshape((1, co, hw, hw))?)
        }),
        new: vec![("kernel".into(), Box::new(move || Ok(conv1x1(&x, &w, Some(&b))?)))],
    });
    Ok(())
}

/// A whole fusion-block residual unit with skip add and tail, as the decoder runs it.
fn resblock_case(cases: &mut Vec<Case>, c: usize, hw: usize, tail: &str) -> Result<()> {
    let x = randn(&[1, c, hw, hw], 1.0)?;
    let skip = randn(&[1, c, hw, hw], 1.0)?;
    let s = (2.0 / (9.0 * c as f64)).sqrt();
    let (w1, w2) = (randn(&[c, c, 3, 3], s)?, randn(&[c, c, 3, 3], s)?);
    let (b1, b2) = (randn(&[c], 0.1)?, randn(&[c], 0.1)?);
    let wt = randn(&[c, c], (1.0 / c as f64).sqrt())?;
    let bt = randn(&[c], 0.1)?;
    let deconv = tail == "convT";
    let wt4 = randn(&[4 * c, c], (1.0 / c as f64).sqrt())?;
    let tail_flops = if deconv {
        8 * c * c * hw * hw
    } else {
        2 * c * c * hw * hw
    };
    let old = {
        let (x, skip, w1, w2, b1, b2, wt, bt, wt4) = (
            x.clone(),
            skip.clone(),
            w1.clone(),
            w2.clone(),
            b1.clone(),
            b2.clone(),
            wt.clone(),
            bt.clone(),
            wt4.clone(),
        );
        Box::new(move || -> Result<Tensor> {
            // The previous decoder: generic ops, every intermediate allocated.
            let t = x
                .relu()?
                .conv2d(&w1, 1, 1, 1, 1)?
                .broadcast_add(&b1.reshape((1, (), 1, 1))?)?;
            let d = t
                .relu()?
                .conv2d(&w2, 1, 1, 1, 1)?
                .broadcast_add(&b2.reshape((1, (), 1, 1))?)?;
            let y = (&skip + (&x + d)?)?;
            if deconv {
                let m = wt4.matmul(&y.reshape((c, hw * hw))?)?;
                Ok(m.reshape((1, c, 2, 2, hw, hw))?
                    .permute((0, 1, 4, 2, 5, 3))?
                    .contiguous()?
                    .reshape((1, c, 2 * hw, 2 * hw))?)
            } else {
                let m = wt.matmul(&y.reshape((c, hw * hw))?)?;
                Ok(m.broadcast_add(&bt.reshape(((), 1))?)?.reshape((1, c, hw, hw))?)
            }
        }) as Box<dyn Fn() -> Result<Tensor>>
    };
    let mut new: Vec<Variant> = Vec::new();
    for algorithm in [Conv3x3Algorithm::Winograd2, Conv3x3Algorithm::Winograd4] {
        let (x, skip, w1, w2, b1, b2, wt, bt, wt4) = (
            x.clone(),
            skip.clone(),
            w1.clone(),
            w2.clone(),
            b1.clone(),
            b2.clone(),
            wt.clone(),
            bt.clone(),
            wt4.clone(),
        );
        new.push((
            format!("fused {algorithm:?}"),
            Box::new(move || {
                let unit = ResidualUnit {
                    conv1_weight: &w1,
                    conv1_bias: Some(&b1),
                    conv2_weight: &w2,
                    conv2_bias: Some(&b2),
                };
                let tail = if deconv {
                    ResidualTail::ConvTranspose2x2 {
                        weight: &wt4,
                        bias: None,
                    }
                } else {
                    ResidualTail::Conv1x1 {
                        weight: &wt,
                        bias: Some(&bt),
                    }
                };
                Ok(residual_block(&x, &unit, Some(&skip), &tail, algorithm)?)
            }),
        ));
    }
    cases.push(Case {
        name: format!("resblock+{tail} {c} @{hw}²"),
        flops: 2.0 * (2 * c * c * 9 * hw * hw) as f64 + tail_flops as f64,
        old,
        new,
    });
    Ok(())
}

/// The depth head after its first conv: convT 128→128 → 3×3 128→32 → ReLU → 1×1 → ReLU.
fn head_case(cases: &mut Vec<Case>, c: usize, hw: usize) -> Result<()> {
    let x = randn(&[1, c, hw, hw], 1.0)?;
    let wt = randn(&[c, c, 2, 2], (1.0 / c as f64).sqrt())?;
    let packed = wt.reshape((c, c * 4))?.t()?.contiguous()?;
    let bt = randn(&[c], 0.1)?;
    let wc = randn(&[32, c, 3, 3], (2.0 / (9.0 * c as f64)).sqrt())?;
    let bc = randn(&[32], 0.1)?;
    let wo = randn(&[1, 32], 0.3)?;
    let bo = randn(&[1], 0.1)?;
    let old = {
        let (x, packed, bt, wc, bc, wo, bo) = (
            x.clone(),
            packed.clone(),
            bt.clone(),
            wc.clone(),
            bc.clone(),
            wo.clone(),
            bo.clone(),
        );
        Box::new(move || -> Result<Tensor> {
            let m = packed.matmul(&x.reshape((c, hw * hw))?)?;
            let y = m
                .reshape((1, c, 2, 2, hw, hw))?
                .permute((0, 1, 4, 2, 5, 3))?
                .contiguous()?
                .reshape((1, c, 2 * hw, 2 * hw))?
                .broadcast_add(&bt.reshape((1, (), 1, 1))?)?;
            let y = y
                .conv2d(&wc, 1, 1, 1, 1)?
                .broadcast_add(&bc.reshape((1, (), 1, 1))?)?
                .relu()?;
            let n = 4 * hw * hw;
            let y = wo
                .matmul(&y.reshape((32, n))?)?
                .broadcast_add(&bo.reshape(((), 1))?)?;
            Ok(y.relu()?.reshape((1, 1, 2 * hw, 2 * hw))?)
        }) as Box<dyn Fn() -> Result<Tensor>>
    };
    let mut new: Vec<Variant> = Vec::new();
    for algorithm in [Conv3x3Algorithm::Winograd2, Conv3x3Algorithm::Winograd4] {
        let (x, packed, bt, wc, bc, wo, bo) = (
            x.clone(),
            packed.clone(),
            bt.clone(),
            wc.clone(),
            bc.clone(),
            wo.clone(),
            bo.clone(),
        );
        new.push((
            format!("fused {algorithm:?}"),
            Box::new(move || {
                let tail = HeadTail {
                    deconv_weight: &packed,
                    deconv_bias: Some(&bt),
                    conv_weight: &wc,
                    conv_bias: Some(&bc),
                    out_weight: &wo,
                    out_bias: Some(&bo),
                };
                Ok(depth_head_tail(&x, &tail, algorithm)?)
            }),
        ));
    }
    let n2 = 4 * hw * hw;
    cases.push(Case {
        name: format!("head tail {c} @{hw}²->{}²", 2 * hw),
        flops: 2.0 * (c * c * 4 * hw * hw + c * 32 * 9 * n2 + 32 * n2) as f64,
        old,
        new,
    });
    Ok(())
}

/// A case name and how to build it (inputs are only generated for the selected cases).
type Builder = (String, Box<dyn Fn(&mut Vec<Case>) -> Result<()>>);

fn all_cases() -> Vec<Builder> {
    let mut b: Vec<Builder> = Vec::new();
    // fusions[k] residual units (256→256 at every level) and the decoder projections convs[k].
    for hw in [96, 192, 384, 768] {
        let tag = "(fusion resnet)";
        b.push((
            format!("conv3x3 256->256 @{hw}² {tag}"),
            Box::new(move |c| conv3x3_cases(c, 256, 256, hw, tag)),
        ));
    }
    for (ci, hw, tag) in [
        (1024, 48, "(convs[3])"),
        (1024, 96, "(convs[2])"),
        (512, 192, "(convs[1])"),
    ] {
        b.push((
            format!("conv3x3 {ci}->256 @{hw}² {tag}"),
            Box::new(move |c| conv3x3_cases(c, ci, 256, hw, tag)),
        ));
    }
    b.push((
        "conv3x3 256->128 @768² (head.0)".into(),
        Box::new(|c| conv3x3_cases(c, 256, 128, 768, "(head.0)")),
    ));
    b.push((
        "conv3x3 128->32 @1536² (head.2)".into(),
        Box::new(|c| conv3x3_cases(c, 128, 32, 1536, "(head.2)")),
    ));
    for (ci, hw, tag) in [
        (256, 384, "(fusions[1].deconv, latent0)"),
        (128, 768, "(head.1)"),
        (1024, 24, "(upsample2, lowres)"),
    ] {
        b.push((
            format!("convT2x2 {ci}->{ci} {hw}²->{}² {tag}", 2 * hw),
            Box::new(move |c| conv_transpose_case(c, ci, ci, hw, tag)),
        ));
    }
    for (ci, hw) in [(256, 768), (1024, 96)] {
        b.push((
            format!("conv1x1 {ci}->256 @{hw}²"),
            Box::new(move |c| conv1x1_case(c, ci, 256, hw)),
        ));
    }
    b.push((
        "resblock+convT 256 @384²".into(),
        Box::new(|c| resblock_case(c, 256, 384, "convT")),
    ));
    b.push((
        "resblock+1x1 256 @768²".into(),
        Box::new(|c| resblock_case(c, 256, 768, "1x1")),
    ));
    b.push((
        "head tail 128 @768²->1536²".into(),
        Box::new(|c| head_case(c, 128, 768)),
    ));
    b
}

fn errors(new: &Tensor, old: &Tensor) -> Result<(f32, f32)> {
    let d = (new - old)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let m = old.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((d, d / m.max(f32::MIN_POSITIVE)))
}

/// CPU time of all threads of this process so far, in seconds (Linux `schedstat`, ns resolution);
/// 0 where unavailable.
fn process_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Wall time, CPU time (all threads) and result of `f`.
fn time(f: &dyn Fn() -> Result<Tensor>) -> Result<(f64, f64, Tensor)> {
    let (t, c) = (Instant::now(), process_cpu_s());
    let y = f()?;
    Ok((t.elapsed().as_secs_f64(), process_cpu_s() - c, y))
}

fn main() -> Result<()> {
    let mut reps = 2usize;
    let mut only: Option<String> = None;
    let mut run_old = true;
    let mut list = false;
    let mut variant: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            "--only" => only = args.next(),
            "--no-old" => run_old = false,
            "--list" => list = true,
            "--variant" => variant = args.next(),
            other => {
                return Err(format!("unknown argument {other}; see the doc comment of bench_convs.rs").into())
            }
        }
    }
    let threads = rayon::current_num_threads();
    println!(
        "threads: rayon {threads}, CANDLE_NUM_THREADS={:?}",
        std::env::var("CANDLE_NUM_THREADS").ok()
    );
    for (name, build) in all_cases() {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        if list {
            println!("{name}");
            continue;
        }
        let mut built = Vec::new();
        build(&mut built)?;
        let Some(mut case) = built.pop() else { continue };
        if let Some(v) = &variant {
            case.new.retain(|(label, _)| label.contains(v.as_str()));
        }
        println!("\n{}  ({:.1} GFLOP direct)", case.name, case.flops / 1e9);
        // Best wall time and best CPU time of each variant.
        let mut best_old = (f64::INFINITY, f64::INFINITY);
        let mut best_new = vec![(f64::INFINITY, f64::INFINITY); case.new.len()];
        let mut reference: Option<Tensor> = None;
        let mut outputs: Vec<Option<Tensor>> = vec![None; case.new.len()];
        for _ in 0..reps.max(1) {
            if run_old {
                let (t, c, y) = time(&*case.old)?;
                best_old = (best_old.0.min(t), best_old.1.min(c));
                reference.get_or_insert(y);
            }
            for (i, (_, f)) in case.new.iter().enumerate() {
                let (t, c, y) = time(&**f)?;
                best_new[i] = (best_new[i].0.min(t), best_new[i].1.min(c));
                outputs[i].get_or_insert(y);
            }
        }
        let gf = |t: f64| case.flops / t / 1e9;
        if run_old {
            println!(
                "  {:<38} {:>9.1} ms {:>7.1} GFLOP/s | cpu {:>9.1} ms {:>7.1} GFLOP/s·core",
                "candle (old)",
                best_old.0 * 1e3,
                gf(best_old.0),
                best_old.1 * 1e3,
                gf(best_old.1)
            );
        }
        for (i, (label, _)) in case.new.iter().enumerate() {
            let (t, c) = best_new[i];
            let mut line = format!(
                "  {:<38} {:>9.1} ms {:>7.1} GFLOP/s | cpu {:>9.1} ms {:>7.1} GFLOP/s·core",
                label,
                t * 1e3,
                gf(t),
                c * 1e3,
                gf(c)
            );
            if let (Some(r), Some(y)) = (&reference, &outputs[i]) {
                let (abs, rel) = errors(&y.to_dtype(DType::F32)?, r)?;
                line.push_str(&format!(
                    "  {:>5.2}× old (cpu {:>5.2}×)  max|Δ| {abs:.2e} (rel {rel:.2e})",
                    best_old.0 / t,
                    best_old.1 / c
                ));
            }
            println!("{line}");
        }
    }
    Ok(())
}
