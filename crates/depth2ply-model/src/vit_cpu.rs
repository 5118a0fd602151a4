//! The f32 CPU path of the ViT blocks, used by [`crate::vit::Vit`] when its tensors are f32 on the CPU
//! (the generic Candle ops in `vit.rs` run everywhere else and remain the reference).
//!
//! Why: Candle runs one block as about twenty ops, each allocating and page-faulting a fresh output,
//! with scalar `erf`/`exp`, copies for every head transpose and a `577² × heads × windows` score tensor.
//! The ViTs are 73.5 % of Depth Pro's FLOPs, so here the token stream lives in a few plain buffers reused
//! by all blocks of a forward pass and:
//! - qkv, proj, fc1 and fc2 are gemm calls (the `gemm` crate under Candle's matmul, with its AVX-512
//!   kernels) writing straight into those buffers (the qkv bias is preloaded into the output);
//! - LayerScale, the proj/fc2 bias and the residual add are applied in the pass that computes the next
//!   LayerNorm, which reads the stream anyway: `x += γ ⊙ (y + b); ln = LayerNorm(x)`;
//! - attention runs one task per window (its rows are split only when there are fewer windows than
//!   threads), head after head: `q·kᵀ` into a 577² score block (L2/L3-resident), softmax with a
//!   vectorised `exp`, `p·v` written straight into the head's columns of the output (no transposes, no
//!   score tensor for all windows);
//! - GELU is the exact (erf) GELU with the fc1 bias add fused; `erf` is Abramowitz–Stegun 7.1.26
//!   (|error| ≤ 1.5e-7 in exact arithmetic, 4.5e-7 measured in f32; PyTorch's own f32 GELU is within
//!   9.4e-7 of the exact function on the same grid).
//!
//! The elementwise loops are compiled for AVX-512, AVX2+FMA or baseline x86-64 through `pulp`'s runtime
//! dispatch, and all work is split over rayon's global pool (see [`crate::runtime`]).

use candle_core::{bail, Result};
use rayon::prelude::*;

use crate::kernels::{sgemm, simd, threads, CpuF32, MatRef};

/// Most query rows per attention task. Measured (one thread, Zen 5, 577 tokens): q·kᵀ as one
/// 577 × 577 × 64 product runs at about 150 GFLOP/s, in blocks of 96–289 rows at 70–100 (the gemm
/// crate packs and drives small-k products poorly), so a whole image is one task.
const QUERY_BLOCK: usize = 640;

/// Rows per task of the row-wise kernels (LayerNorm, GELU).
const ROW_BLOCK: usize = 16;

/// Borrowed weights of one block (PyTorch layouts: Linear weights are `(out, in)` row-major).
pub(crate) struct BlockWeights<'a> {
    pub norm1: [CpuF32<'a>; 2],
    pub qkv: [CpuF32<'a>; 2],
    pub proj: [CpuF32<'a>; 2],
    pub ls1: CpuF32<'a>,
    pub norm2: [CpuF32<'a>; 2],
    pub fc1: [CpuF32<'a>; 2],
    pub fc2: [CpuF32<'a>; 2],
    pub ls2: CpuF32<'a>,
}

/// Sizes of one batched ViT run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Images (windows) in the batch.
    pub images: usize,
    /// Tokens per image (577).
    pub tokens: usize,
    /// Embedding width C.
    pub dim: usize,
    pub heads: usize,
    /// MLP hidden width.
    pub hidden: usize,
    pub eps: f32,
}

impl Geometry {
    fn rows(&self) -> usize {
        self.images * self.tokens
    }
}

/// A residual update not yet applied to the stream: `x += γ ⊙ (y + b)`.
struct Pending<'b> {
    y: &'b [f32],
    gamma: &'b [f32],
    bias: &'b [f32],
}

/// `y[rows × out] = x[rows × in] · Wᵀ` with `W` `(out, in)` row-major; adds into `y` when `accumulate`.
fn linear(y: &mut [f32], x: &[f32], rows: usize, w: &[f32], out: usize, inp: usize, accumulate: bool) {
    let a = MatRef::row_major(x, rows, inp);
    // Wᵀ as an (in × out) view of the row-major (out × in) weight.
    let b = MatRef {
        data: w,
        rows: inp,
        cols: out,
        row_stride: 1,
        col_stride: inp,
    };
    sgemm(y, out, 1, accumulate, a, b, threads());
}

/// Runs the blocks on the token stream `x` (`images · tokens × dim`, row-major) in place and returns
/// copies of the stream after each block listed in `hooks` (in the order given; only the first
/// `hook_images` images are copied), then applies the final LayerNorm (`norm`) into a new buffer.
pub(crate) fn run_blocks(
    x: &mut [f32],
    geo: Geometry,
    blocks: &[BlockWeights<'_>],
    hooks: &[usize],
    hook_images: usize,
    norm: &[CpuF32<'_>; 2],
) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let (rows, c, m) = (geo.rows(), geo.dim, geo.hidden);
    if x.len() != rows * c || geo.heads == 0 || c % geo.heads != 0 {
        bail!(
            "ViT CPU path: stream of {} values does not match {geo:?}",
            x.len()
        );
    }
    // The loops below zip rows with these vectors: a short one would silently leave stale values.
    let sizes_ok = |w: &BlockWeights<'_>| {
        let len = |d: &CpuF32<'_>| d.as_slice().len();
        [
            &w.norm1[0],
            &w.norm1[1],
            &w.proj[1],
            &w.ls1,
            &w.norm2[0],
            &w.norm2[1],
            &w.fc2[1],
            &w.ls2,
        ]
        .iter()
        .all(|d| len(d) == c)
            && len(&w.qkv[0]) == 3 * c * c
            && len(&w.qkv[1]) == 3 * c
            && len(&w.proj[0]) == c * c
            && len(&w.fc1[0]) == m * c
            && len(&w.fc1[1]) == m
            && len(&w.fc2[0]) == c * m
    };
    if !blocks.iter().all(sizes_ok) || norm.iter().any(|d| d.as_slice().len() != c) {
        bail!("ViT CPU path: block weights do not match {geo:?}");
    }
    let mut ln = vec![0f32; rows * c];
    let mut qkv = vec![0f32; rows * 3 * c];
    let mut attn = vec![0f32; rows * c];
    let mut delta = vec![0f32; rows * c];
    let mut hidden = vec![0f32; rows * m];
    let mut hook_out: Vec<Option<Vec<f32>>> = vec![None; hooks.len()];
    let hook_len = hook_images.min(geo.images) * geo.tokens * c;
    let mut pending = false;

    for (i, w) in blocks.iter().enumerate() {
        // 1. x += γ2 ⊙ (fc2 out + b2) of the previous block; ln = norm1(x).
        let prev = if pending {
            i.checked_sub(1).map(|p| Pending {
                y: &delta,
                gamma: blocks[p].ls2.as_slice(),
                bias: blocks[p].fc2[1].as_slice(),
            })
        } else {
            None
        };
        residual_layer_norm(
            x,
            prev,
            &mut ln,
            [w.norm1[0].as_slice(), w.norm1[1].as_slice()],
            c,
            geo.eps,
        );
        // 2. qkv = ln · Wqkvᵀ + b.
        fill_rows(&mut qkv, w.qkv[1].as_slice());
        linear(&mut qkv, &ln, rows, w.qkv[0].as_slice(), 3 * c, c, true);
        // 3. attention → attn (rows × c, heads side by side as timm's transpose + reshape).
        attention(&qkv, &mut attn, geo);
        // 4. delta = attn · Wprojᵀ; x += γ1 ⊙ (delta + b); ln = norm2(x).
        linear(&mut delta, &attn, rows, w.proj[0].as_slice(), c, c, false);
        let update = Pending {
            y: &delta,
            gamma: w.ls1.as_slice(),
            bias: w.proj[1].as_slice(),
        };
        residual_layer_norm(
            x,
            Some(update),
            &mut ln,
            [w.norm2[0].as_slice(), w.norm2[1].as_slice()],
            c,
            geo.eps,
        );
        // 5. hidden = gelu(ln · W1ᵀ + b1); delta = hidden · W2ᵀ (applied at the next LayerNorm).
        linear(&mut hidden, &ln, rows, w.fc1[0].as_slice(), m, c, false);
        gelu_bias(&mut hidden, w.fc1[1].as_slice());
        linear(&mut delta, &hidden, rows, w.fc2[0].as_slice(), c, m, false);
        pending = true;
        if hooks.contains(&i) {
            apply_residual(
                x,
                Pending {
                    y: &delta,
                    gamma: w.ls2.as_slice(),
                    bias: w.fc2[1].as_slice(),
                },
                c,
            );
            pending = false;
            for (slot, _) in hook_out.iter_mut().zip(hooks).filter(|(_, &id)| id == i) {
                *slot = Some(x[..hook_len].to_vec());
            }
        }
    }
    drop((qkv, attn, hidden));
    let prev = match (pending, blocks.last()) {
        (true, Some(last)) => Some(Pending {
            y: &delta,
            gamma: last.ls2.as_slice(),
            bias: last.fc2[1].as_slice(),
        }),
        _ => None,
    };
    residual_layer_norm(
        x,
        prev,
        &mut ln,
        [norm[0].as_slice(), norm[1].as_slice()],
        c,
        geo.eps,
    );
    let hooks = hook_out
        .into_iter()
        .zip(hooks)
        .map(|(h, id)| h.ok_or_else(|| candle_core::Error::Msg(format!("ViT has no block {id} to hook"))))
        .collect::<Result<Vec<_>>>()?;
    Ok((hooks, ln))
}

/// Weights of the token embedding (timm `patch_embed.proj`, `cls_token`, `pos_embed`).
pub(crate) struct EmbedWeights<'a> {
    /// Patch kernel `(C, 3·p·p)`, columns in `(channel, ky, kx)` order.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub cls: &'a [f32],
    /// `(1 + g²) × C`.
    pub pos: &'a [f32],
}

/// Patch embedding (`Conv2d(3, C, p, stride p)` as im2col + gemm), class token and position embedding
/// of `images` RGB images `(3, size, size)` stored one after the other in `x`: returns the token
/// stream `images · (1 + g²) × C`, `g = size / p`. One task per image.
pub(crate) fn embed(
    x: &[f32],
    images: usize,
    size: usize,
    patch: usize,
    w: &EmbedWeights<'_>,
) -> Result<Vec<f32>> {
    let c = w.bias.len();
    let g = size / patch.max(1);
    let tokens = g * g + 1;
    let k = 3 * patch * patch;
    let plane = size * size;
    if x.len() != images * 3 * plane
        || w.weight.len() != c * k
        || w.cls.len() != c
        || w.pos.len() != tokens * c
    {
        bail!("ViT CPU path: embedding inputs do not match {images} images of {size}² with patch {patch}");
    }
    let mut stream = vec![0f32; images * tokens * c];
    stream
        .par_chunks_mut(tokens * c)
        .enumerate()
        .for_each(|(img, out)| {
            // The class token plus its position; every patch row starts as position + conv bias and the
            // gemm adds the patch projection.
            for (t, (row, pos)) in out.chunks_exact_mut(c).zip(w.pos.chunks_exact(c)).enumerate() {
                let add = if t == 0 { w.cls } else { w.bias };
                for ((r, &p), &a) in row.iter_mut().zip(pos).zip(add) {
                    *r = p + a;
                }
            }
            let src = &x[img * 3 * plane..(img + 1) * 3 * plane];
            let mut cols = vec![0f32; g * g * k];
            for (cell, row) in cols.chunks_exact_mut(k).enumerate() {
                let (gy, gx) = (cell / g, cell % g);
                for ch in 0..3 {
                    for ky in 0..patch {
                        let start = ch * plane + (gy * patch + ky) * size + gx * patch;
                        row[(ch * patch + ky) * patch..][..patch].copy_from_slice(&src[start..start + patch]);
                    }
                }
            }
            let a = MatRef::row_major(&cols, g * g, k);
            let b = MatRef {
                data: w.weight,
                rows: k,
                cols: c,
                row_stride: 1,
                col_stride: k,
            };
            sgemm(&mut out[c..], c, 1, true, a, b, 1);
        });
    Ok(stream)
}

/// Copies `bias` into every row of `y` (rows of `bias.len()`).
fn fill_rows(y: &mut [f32], bias: &[f32]) {
    let n = bias.len().max(1);
    y.par_chunks_mut(n * ROW_BLOCK).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(n) {
            row.copy_from_slice(bias);
        }
    });
}

/// `x += γ ⊙ (y + b)` row by row.
fn apply_residual(x: &mut [f32], update: Pending<'_>, c: usize) {
    x.par_chunks_mut(c * ROW_BLOCK)
        .zip(update.y.par_chunks(c * ROW_BLOCK))
        .for_each(|(xs, ys)| {
            simd(ResidualOp {
                xs,
                ys,
                gamma: update.gamma,
                bias: update.bias,
                c,
            })
        });
}

struct ResidualOp<'a> {
    xs: &'a mut [f32],
    ys: &'a [f32],
    gamma: &'a [f32],
    bias: &'a [f32],
    c: usize,
}

impl pulp::WithSimd for ResidualOp<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (xr, yr) in self.xs.chunks_exact_mut(self.c).zip(self.ys.chunks_exact(self.c)) {
            add_scaled(xr, yr, self.gamma, self.bias);
        }
    }
}

#[inline(always)]
fn add_scaled(x: &mut [f32], y: &[f32], gamma: &[f32], bias: &[f32]) {
    for (((x, &y), &g), &b) in x.iter_mut().zip(y).zip(gamma).zip(bias) {
        *x += g * (y + b);
    }
}

/// Optionally `x += γ ⊙ (y + b)`, then `ln = LayerNorm(x) · w + b` over rows of `c`.
fn residual_layer_norm(
    x: &mut [f32],
    update: Option<Pending<'_>>,
    ln: &mut [f32],
    [weight, bias]: [&[f32]; 2],
    c: usize,
    eps: f32,
) {
    let chunk = c * ROW_BLOCK;
    x.par_chunks_mut(chunk)
        .zip(ln.par_chunks_mut(chunk))
        .enumerate()
        .for_each(|(k, (xs, ls))| {
            // The update rows of this chunk (`y` has the layout of `x`).
            let update = update
                .as_ref()
                .map(|u| (&u.y[k * chunk..k * chunk + xs.len()], u.gamma, u.bias));
            simd(LayerNormOp {
                xs,
                ls,
                update,
                weight,
                bias,
                c,
                eps,
            })
        });
}

struct LayerNormOp<'a> {
    xs: &'a mut [f32],
    ls: &'a mut [f32],
    update: Option<(&'a [f32], &'a [f32], &'a [f32])>,
    weight: &'a [f32],
    bias: &'a [f32],
    c: usize,
    eps: f32,
}

impl pulp::WithSimd for LayerNormOp<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let c = self.c;
        for (r, (xr, lr)) in self
            .xs
            .chunks_exact_mut(c)
            .zip(self.ls.chunks_exact_mut(c))
            .enumerate()
        {
            if let Some((ys, gamma, bias)) = self.update {
                add_scaled(xr, &ys[r * c..(r + 1) * c], gamma, bias);
            }
            let mean = lane_sum(xr) / c as f32;
            let var = lane_sum_sq_dev(xr, mean) / c as f32;
            let rstd = 1.0 / (var + self.eps).sqrt();
            for (((l, &x), &w), &b) in lr.iter_mut().zip(xr.iter()).zip(self.weight).zip(self.bias) {
                *l = (x - mean) * rstd * w + b;
            }
        }
    }
}

/// Independent accumulators so that the compiler can vectorise float reductions (it may not reorder
/// a single running sum).
const LANES: usize = 16;

#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    reduce_add(acc) + tail
}

#[inline(always)]
fn lane_sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            let d = v - mean;
            *a += d * d;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
    reduce_add(acc) + tail
}

#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a = a.max(v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[inline(always)]
fn reduce_add(mut acc: [f32; LANES]) -> f32 {
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] += acc[i + n];
        }
    }
    acc[0]
}

/// `eˣ` in f32 (Cephes `expf`: range reduction by ln 2 in two parts and a degree-6 polynomial; about
/// 1 ulp; n is rounded to nearest instead of Cephes' floor(x·log₂e + ½), which changes nothing), written branch-free so that loops over it vectorise. Inputs are clamped to
/// `[−87.3, 88]`, so the result is never denormal, infinite or NaN for finite inputs.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits (no float → int
    // conversion, which the compiler does not vectorise).
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x.mul_add(LOG2E, SHIFTER);
    let n = t - SHIFTER;
    let r = n.mul_add(-C2, n.mul_add(-C1, x));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5); // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let y = p.mul_add(r * r, r) + 1.0;
    // 2ⁿ from the integer n in t's mantissa: ((n + 127) << 23).
    let pow2 = (t.to_bits().wrapping_sub(SHIFTER.to_bits()).wrapping_add(127)) << 23;
    y * f32::from_bits(pow2)
}

/// `erf` by Abramowitz & Stegun 7.1.26, branch-free so that loops over it vectorise:
/// `sign(x) · (1 − t·(p1 + t·(p2 + …))·e^(−x²))`, `t = 1 / (1 + p·|x|)`.
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const P1: f32 = 0.254_829_6;
    const P2: f32 = -0.284_496_74;
    const P3: f32 = 1.421_413_7;
    const P4: f32 = -1.453_152;
    const P5: f32 = 1.061_405_4;
    let t = 1.0 / P.mul_add(x.abs(), 1.0);
    let mut r = P5.mul_add(t, P4);
    r = r.mul_add(t, P3);
    r = r.mul_add(t, P2);
    r = r.mul_add(t, P1);
    let e = exp_f32(-(x * x));
    (-(t * e)).mul_add(r, 1.0).copysign(x)
}

/// `h = gelu(h + b)` (exact GELU, `0.5·v·(1 + erf(v/√2))`) over rows of `b.len()`.
fn gelu_bias(h: &mut [f32], bias: &[f32]) {
    let n = bias.len().max(1);
    h.par_chunks_mut(n * ROW_BLOCK)
        .for_each(|rows| simd(GeluOp { rows, bias }));
}

struct GeluOp<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
}

impl pulp::WithSimd for GeluOp<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for row in self.rows.chunks_exact_mut(self.bias.len()) {
            for (h, &b) in row.iter_mut().zip(self.bias) {
                let v = *h + b;
                *h = (v * 0.5) * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

/// Softmax of every row (`n` wide) of `scores` after multiplying by `scale` (> 0).
struct SoftmaxOp<'a> {
    scores: &'a mut [f32],
    n: usize,
    scale: f32,
}

impl pulp::WithSimd for SoftmaxOp<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for row in self.scores.chunks_exact_mut(self.n) {
            let max = lane_max(row);
            let shift = -max * self.scale;
            let mut acc = [0f32; LANES];
            let mut chunks = row.chunks_exact_mut(LANES);
            for ch in &mut chunks {
                for (a, v) in acc.iter_mut().zip(ch.iter_mut()) {
                    *v = exp_f32(v.mul_add(self.scale, shift));
                    *a += *v;
                }
            }
            let mut tail = 0f32;
            for v in chunks.into_remainder() {
                *v = exp_f32(v.mul_add(self.scale, shift));
                tail += *v;
            }
            let inv = 1.0 / (reduce_add(acc) + tail);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// Multi-head self-attention of every image: `qkv` rows are `[q | k | v]` (`3c` wide, head `h` at
/// columns `h·d … h·d + d − 1` of each part); `out` gets `softmax(q·kᵀ/√d)·v` with the heads side by
/// side (`c` wide).
fn attention(qkv: &[f32], out: &mut [f32], geo: Geometry) {
    let (n, c, heads) = (geo.tokens, geo.dim, geo.heads);
    let d = c / heads;
    let scale = (d as f32).powf(-0.5);
    let stride = 3 * c;
    // Fewer images than threads (the image and FOV encoders see one): split their rows so that every
    // thread gets work.
    let per_image = threads().div_ceil(geo.images.max(1));
    let blocks = n.div_ceil(QUERY_BLOCK).max(per_image);
    let block_rows = n.div_ceil(blocks);
    out.par_chunks_mut(n * c)
        .enumerate()
        .for_each(|(image, out_img)| {
            let base = image * n * stride;
            out_img
                .par_chunks_mut(block_rows * c)
                .enumerate()
                .for_each(|(blk, out_blk)| {
                    let r0 = blk * block_rows;
                    let rows = out_blk.len() / c;
                    let mut scores = vec![0f32; rows * n];
                    for h in 0..heads {
                        let q = MatRef {
                            data: &qkv[base + r0 * stride + h * d..],
                            rows,
                            cols: d,
                            row_stride: stride,
                            col_stride: 1,
                        };
                        let kt = MatRef {
                            data: &qkv[base + c + h * d..],
                            rows: d,
                            cols: n,
                            row_stride: 1,
                            col_stride: stride,
                        };
                        sgemm(&mut scores, n, 1, false, q, kt, 1);
                        simd(SoftmaxOp {
                            scores: &mut scores,
                            n,
                            scale,
                        });
                        let v = MatRef {
                            data: &qkv[base + 2 * c + h * d..],
                            rows: n,
                            cols: d,
                            row_stride: stride,
                            col_stride: 1,
                        };
                        let p = MatRef::row_major(&scores, rows, n);
                        sgemm(&mut out_blk[h * d..], c, 1, false, p, v, 1);
                    }
                });
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        // References: f64 std exp; erf from its Taylor series (converges fast for |x| ≤ 3).
        fn erf_series(x: f64) -> f64 {
            let (mut term, mut sum) = (x, x);
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in -3000..=3000 {
            let x = i as f32 * 0.001 * 29.0; // −87 … 87
            let e = exp_f32(x) as f64;
            let r = (x as f64).exp();
            worst_exp = worst_exp.max(((e - r) / r).abs());
            let x = i as f32 * 0.001; // −3 … 3
            worst_erf = worst_erf.max((erf_f32(x) as f64 - erf_series(x as f64)).abs());
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
        // A&S 7.1.26 is good to 1.5e-7 in exact arithmetic; evaluating 1 − t·e·r in f32 adds a few
        // ulp (6e-8 each near 1). Measured: 4.5e-7. PyTorch's GELU itself is off by up to 9.4e-7.
        assert!(worst_erf < 6e-7, "erf absolute error {worst_erf}");
        assert_eq!(erf_f32(10.0), 1.0);
        assert_eq!(erf_f32(-10.0), -1.0);
        assert!(exp_f32(-200.0) > 0.0 && exp_f32(-200.0) < 1e-37);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let n = 37;
        let mut scores: Vec<f32> = (0..3 * n)
            .map(|i| ((i * 7919) % 101) as f32 * 0.3 - 15.0)
            .collect();
        let reference: Vec<f64> = scores
            .chunks(n)
            .flat_map(|row| {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let e: Vec<f64> = row.iter().map(|&v| ((v as f64 - m) * 0.125).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect();
        simd(SoftmaxOp {
            scores: &mut scores,
            n,
            scale: 0.125,
        });
        for (a, b) in scores.iter().zip(&reference) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
