//! Measures this machine's fp32 fused-multiply-add peak: the denominator of the "% peak" column of
//! `bench_forward`.
//!
//! ```sh
//! cargo run --release -p depth2ply-model --example fp32_peak -- [--threads N] [--seconds S]
//! ```
//!
//! Every thread runs independent chains of vector FMAs (`acc = acc · m + a`, 12 accumulators: enough to
//! cover the FMA latency of two pipes on current x86 cores, few enough to stay in AVX2's 16 registers) at the widest instruction set `pulp` detects (AVX-512,
//! AVX2+FMA or SSE), with no memory traffic. Prints GFLOP/s (2 FLOP per lane per FMA) for 1 thread and
//! for `--threads` (default: physical cores) and the vector width used.

use std::time::Instant;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Independent accumulators per thread.
const CHAINS: usize = 12;

/// `iterations` rounds of `CHAINS` vector FMAs; returns (a value that keeps the work alive, lanes).
struct FmaLoop {
    iterations: u64,
}

impl WithSimd for FmaLoop {
    type Output = (f32, usize);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f32, usize) {
        // |m| < 1 and a small addend: the accumulators converge to a / (1 − m) and never overflow.
        let m = simd.splat_f32s(0.999_9);
        let a = simd.splat_f32s(1e-4);
        let mut acc = [simd.splat_f32s(0.0); CHAINS];
        for (i, v) in acc.iter_mut().enumerate() {
            *v = simd.splat_f32s(i as f32);
        }
        for _ in 0..self.iterations {
            for v in acc.iter_mut() {
                *v = simd.mul_add_f32s(*v, m, a);
            }
        }
        let sum = acc.iter().fold(simd.splat_f32s(0.0), |s, &v| simd.add_f32s(s, v));
        (simd.reduce_sum_f32s(sum), S::F32_LANES)
    }
}

/// GFLOP/s of `threads` threads each running the FMA loop for about `seconds`.
fn measure(threads: usize, seconds: f64) -> Result<(f64, usize)> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    // Calibrate the iteration count on one thread.
    let probe = 1_000_000u64;
    let t = Instant::now();
    let (_, lanes) = pulp::Arch::new().dispatch(FmaLoop { iterations: probe });
    let per_iteration = t.elapsed().as_secs_f64() / probe as f64;
    let iterations = ((seconds / per_iteration.max(1e-12)) as u64).max(1);
    let start = Instant::now();
    let sink: f32 = pool.install(|| {
        (0..threads)
            .into_par_iter()
            .map(|_| pulp::Arch::new().dispatch(FmaLoop { iterations }).0)
            .sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if !sink.is_finite() {
        return Err("accumulators overflowed".into());
    }
    let flops = threads as f64 * iterations as f64 * (CHAINS * lanes * 2) as f64;
    Ok((flops / elapsed / 1e9, lanes))
}

fn main() -> Result<()> {
    let mut threads = num_cpus::get_physical();
    let mut seconds = 2.0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => threads = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            other => return Err(format!("unknown flag {other}; use --threads N, --seconds S").into()),
        }
    }
    let (one, lanes) = measure(1, seconds)?;
    println!("fp32 FMA peak, {lanes} f32 lanes per vector: 1 thread {one:.1} GFLOP/s");
    if threads > 1 {
        let (all, _) = measure(threads, seconds)?;
        println!(
            "{threads} threads {all:.1} GFLOP/s ({:.1} per thread)",
            all / threads as f64
        );
    }
    Ok(())
}
