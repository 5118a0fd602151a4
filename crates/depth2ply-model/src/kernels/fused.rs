//! Whole decoder and head stages streamed in row bands, so that their full-size intermediates never
//! exist: a pre-activation residual unit (with the fusion block's skip add and the following 1×1
//! or transposed convolution), and the tail of the depth head.
//!
//! Each image is split into two row chunks per thread (rayon balances them when a core is busy
//! elsewhere); a chunk is processed in bands of [`BAND_ROWS`] output rows, keeping only a band (plus
//! halo) of every intermediate, and only the first band of a chunk recomputes its halo.

use std::ops::Range;

use candle_core::{bail, Device, Result, Tensor};
use rayon::prelude::*;

use super::conv::{
    conv1x1, conv3x3, conv_transpose2x2, conv_transpose_rows, Band, Conv3x3Algorithm, Conv3x3Job,
    Conv3x3Kernel, Conv3x3Options, Conv3x3Scratch,
};
use super::gemm::{sgemm, MatRef};
use super::{channel_rows, check_not_empty, split_blocks, split_range, supported, threads, CpuF32};

/// Output rows per band (a multiple of 4, the largest Winograd tile).
const BAND_ROWS: usize = 8;
/// Output rows per band of the head tail (its transposed convolution is recomputed on a 2-row halo
/// per band, so bands are longer).
const HEAD_BAND_ROWS: usize = 32;

/// The weights of a pre-activation residual unit `y = x + conv2(relu(conv1(relu(x))))`: two
/// `(c, c, 3, 3)` convolutions with their `(c)` biases.
#[derive(Debug, Clone, Copy)]
pub struct ResidualUnit<'a> {
    /// First convolution (`residual.1`).
    pub conv1_weight: &'a Tensor,
    /// Its bias.
    pub conv1_bias: Option<&'a Tensor>,
    /// Second convolution (`residual.3`).
    pub conv2_weight: &'a Tensor,
    /// Its bias.
    pub conv2_bias: Option<&'a Tensor>,
}

/// What [`residual_block`] applies to its result before returning it.
#[derive(Debug, Clone, Copy, Default)]
pub enum ResidualTail<'a> {
    /// Nothing.
    #[default]
    None,
    /// A 1×1 convolution, weight `(c_out, c)` (see [`super::conv1x1`]).
    Conv1x1 {
        /// `(c_out, c)`.
        weight: &'a Tensor,
        /// `(c_out)`.
        bias: Option<&'a Tensor>,
    },
    /// A 2×2 / stride 2 transposed convolution, weight `(4·c_out, c)` (see
    /// [`super::conv_transpose2x2`]).
    ConvTranspose2x2 {
        /// `(4·c_out, c)`, row `o·4 + dy·2 + dx`.
        weight: &'a Tensor,
        /// `(c_out)`.
        bias: Option<&'a Tensor>,
    },
}

/// `tail(skip + (x + conv2(relu(conv1(relu(x)) + b1)) + b2))` for `x` `(b, c, h, w)` and an
/// optional `skip` of the same shape: a Depth Pro `ResidualBlock` (with the `FeatureFusionBlock2d`
/// skip add `x0 + resnet1(x1)` when `skip = x0`), and the fusion block's following layer.
///
/// On f32 CPU tensors the image is processed in row bands: only a band of `relu(conv1(…))` and of
/// the sum exists at a time, and each band goes through the tail right away.
pub fn residual_block(
    x: &Tensor,
    unit: &ResidualUnit<'_>,
    skip: Option<&Tensor>,
    tail: &ResidualTail<'_>,
    algorithm: Conv3x3Algorithm,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    for (weight, what) in [(unit.conv1_weight, "conv1"), (unit.conv2_weight, "conv2")] {
        if weight.dims() != [c, c, 3, 3] {
            bail!(
                "residual_block: {what} weight must be ({c}, {c}, 3, 3), got {:?}",
                weight.dims()
            );
        }
    }
    for (bias, what) in [(unit.conv1_bias, "conv1"), (unit.conv2_bias, "conv2")] {
        if bias.is_some_and(|b| b.dims() != [c]) {
            bail!("residual_block: {what} bias must be ({c})");
        }
    }
    if skip.is_some_and(|s| s.dims() != x.dims()) {
        bail!("residual_block: skip input must be shaped like x {:?}", x.dims());
    }
    let (tail_weight, tail_bias, tail_rows) = match *tail {
        ResidualTail::None => (None, None, 0),
        ResidualTail::Conv1x1 { weight, bias } => (Some(weight), bias, 1),
        ResidualTail::ConvTranspose2x2 { weight, bias } => (Some(weight), bias, 4),
    };
    let tail_out = match tail_weight {
        Some(weight) => {
            let (rows, cols) = weight.dims2()?;
            if cols != c || rows % tail_rows != 0 {
                bail!(
                    "residual_block: tail weight {:?} does not fit {c} channels",
                    weight.dims()
                );
            }
            if tail_bias.is_some_and(|b| b.dims() != [rows / tail_rows]) {
                bail!("residual_block: tail bias must be ({})", rows / tail_rows);
            }
            rows / tail_rows
        }
        None => c,
    };
    let tensors = [
        Some(x),
        Some(unit.conv1_weight),
        unit.conv1_bias,
        Some(unit.conv2_weight),
        unit.conv2_bias,
        skip,
        tail_weight,
        tail_bias,
    ];
    check_not_empty("residual_block", tensors.iter().flatten().copied())?;
    if !tensors.iter().flatten().all(|t| supported(t)) {
        return residual_block_generic(x, unit, skip, tail, algorithm);
    }
    let x = x.contiguous()?;
    let (w1, w2) = (unit.conv1_weight.contiguous()?, unit.conv2_weight.contiguous()?);
    let [b1, b2, skip, tw, tb] = [unit.conv1_bias, unit.conv2_bias, skip, tail_weight, tail_bias]
        .map(|t| t.map(Tensor::contiguous).transpose());
    let (b1, b2, skip, tw, tb) = (b1?, b2?, skip?, tw?, tb?);
    let xs = CpuF32::new(&x, "residual_block input")?;
    let b1s = CpuF32::optional(b1.as_ref(), "residual_block bias")?;
    let b2s = CpuF32::optional(b2.as_ref(), "residual_block bias")?;
    let skips = CpuF32::optional(skip.as_ref(), "residual_block skip")?;
    let tws = CpuF32::optional(tw.as_ref(), "residual_block tail")?;
    let tbs = CpuF32::optional(tb.as_ref(), "residual_block tail bias")?;
    let k1 = Conv3x3Kernel::new(
        algorithm,
        CpuF32::new(&w1, "residual_block conv1")?.as_slice(),
        c,
        c,
    );
    let k2 = Conv3x3Kernel::new(
        algorithm,
        CpuF32::new(&w2, "residual_block conv2")?.as_slice(),
        c,
        c,
    );
    let scale = if tail_rows == 4 { 2 } else { 1 };
    let (oh, ow) = (scale * h, scale * w);
    let image = c * h * w;
    let out_image = tail_out * oh * ow;
    let mut out = vec![0f32; b * out_image];
    let threads = threads();
    for (i, out_i) in out.chunks_mut(out_image.max(1)).enumerate().take(b) {
        let xi = &xs.as_slice()[i * image..][..image];
        let ski = skips.as_ref().map(|s| &s.as_slice()[i * image..][..image]);
        let plan = ResidualPlan {
            c,
            h,
            w,
            x: xi,
            skip: ski,
            k1: &k1,
            k2: &k2,
            b1: b1s.as_ref().map(CpuF32::as_slice),
            b2: b2s.as_ref().map(CpuF32::as_slice),
            tail: tws.as_ref().map(|t| (t.as_slice(), tail_rows)),
            tail_bias: tbs.as_ref().map(CpuF32::as_slice),
            tail_out,
        };
        let chunk_rows = split_range(h, 2 * threads, BAND_ROWS);
        let planes = channel_rows(out_i, tail_out, oh, ow, 0, oh);
        for_each_chunk(
            split_blocks(planes, ow, chunk_rows * scale),
            threads,
            |ci, planes, gemm_threads| {
                plan.run_chunk(
                    ci * chunk_rows..((ci + 1) * chunk_rows).min(h),
                    planes,
                    gemm_threads,
                )
            },
        );
    }
    Tensor::from_vec(out, (b, tail_out, oh, ow), &Device::Cpu)
}

/// Runs `run(chunk_index, planes, gemm_threads)` for every chunk of output planes: one rayon task per
/// chunk (each gemm single-threaded), or, for a single chunk, on this thread with `threads` for gemm.
fn for_each_chunk<F>(chunks: Vec<Vec<&mut [f32]>>, threads: usize, run: F)
where
    F: Fn(usize, &mut [&mut [f32]], usize) + Sync,
{
    if chunks.len() <= 1 {
        for (ci, mut planes) in chunks.into_iter().enumerate() {
            run(ci, &mut planes, threads);
        }
    } else {
        chunks
            .into_par_iter()
            .enumerate()
            .for_each(|(ci, mut planes)| run(ci, &mut planes, 1));
    }
}

/// [`residual_block`] with the generic ops.
fn residual_block_generic(
    x: &Tensor,
    unit: &ResidualUnit<'_>,
    skip: Option<&Tensor>,
    tail: &ResidualTail<'_>,
    algorithm: Conv3x3Algorithm,
) -> Result<Tensor> {
    let t = conv3x3(
        x,
        unit.conv1_weight,
        unit.conv1_bias,
        &Conv3x3Options {
            algorithm,
            input_relu: true,
            output_relu: true,
            residuals: &[],
        },
    )?;
    let residuals: Vec<&Tensor> = std::iter::once(x).chain(skip).collect();
    let y = conv3x3(
        &t,
        unit.conv2_weight,
        unit.conv2_bias,
        &Conv3x3Options {
            algorithm,
            residuals: &residuals,
            ..Default::default()
        },
    )?;
    match *tail {
        ResidualTail::None => Ok(y),
        ResidualTail::Conv1x1 { weight, bias } => conv1x1(&y, weight, bias),
        ResidualTail::ConvTranspose2x2 { weight, bias } => conv_transpose2x2(&y, weight, bias),
    }
}

/// One image of [`residual_block`] on the CPU.
struct ResidualPlan<'a> {
    c: usize,
    h: usize,
    w: usize,
    x: &'a [f32],
    skip: Option<&'a [f32]>,
    k1: &'a Conv3x3Kernel,
    k2: &'a Conv3x3Kernel,
    b1: Option<&'a [f32]>,
    b2: Option<&'a [f32]>,
    /// Tail weight and its rows per output channel (1: 1×1, 4: transposed 2×2).
    tail: Option<(&'a [f32], usize)>,
    tail_bias: Option<&'a [f32]>,
    tail_out: usize,
}

impl ResidualPlan<'_> {
    /// Produces input rows `rows` (output rows `scale · rows`) into `out` (one slice per output
    /// channel covering exactly those rows).
    fn run_chunk(&self, rows: Range<usize>, out: &mut [&mut [f32]], gemm_threads: usize) {
        let (c, h, w) = (self.c, self.h, self.w);
        let cap = BAND_ROWS + 2;
        // relu(conv1(relu(x)) + b1) for image rows `held`, at rows 0.. of `t1` (channel stride cap·w).
        let mut t1 = vec![0f32; c * cap * w];
        let mut held = 0..0;
        let mut sum = if self.tail.is_some() {
            vec![0f32; c * BAND_ROWS * w]
        } else {
            Vec::new()
        };
        let mut tail_tmp = match self.tail {
            Some((_, per)) => vec![0f32; per * self.tail_out * BAND_ROWS * w],
            None => Vec::new(),
        };
        let mut scratch: Conv3x3Scratch = self.k1.scratch(w);
        let x_band = Band::full(self.x, h);
        let mut residuals = vec![x_band];
        residuals.extend(self.skip.map(|s| Band::full(s, h)));
        let mut y0 = rows.start;
        while y0 < rows.end {
            let y1 = (y0 + BAND_ROWS).min(rows.end);
            let need = y0.saturating_sub(1)..(y1 + 1).min(h);
            // Keep the rows of the previous band that are still needed, move them to the top.
            let keep = need.start.max(held.start)..need.end.min(held.end);
            if !keep.is_empty() {
                for plane in t1.chunks_mut(cap * w) {
                    plane.copy_within((keep.start - held.start) * w..(keep.end - held.start) * w, 0);
                }
            }
            let fresh = if keep.is_empty() { need.start } else { keep.end };
            {
                let job = Conv3x3Job {
                    c_in: c,
                    c_out: c,
                    height: h,
                    width: w,
                    input_relu: true,
                    output_relu: true,
                    bias: self.b1,
                    residuals: &[],
                    input: x_band,
                    out_rows: fresh..need.end,
                };
                let mut planes = channel_rows(&mut t1, c, cap, w, fresh - need.start, need.end - need.start);
                self.k1.run(&job, &mut planes, &mut scratch, gemm_threads);
            }
            held = need.clone();
            // skip + (x + conv2(t1) + b2) for rows y0..y1.
            let job = Conv3x3Job {
                c_in: c,
                c_out: c,
                height: h,
                width: w,
                input_relu: false,
                output_relu: false,
                bias: self.b2,
                residuals: &residuals,
                input: Band {
                    data: &t1,
                    first_row: need.start,
                    rows: cap,
                },
                out_rows: y0..y1,
            };
            let local = y0 - rows.start;
            let n = (y1 - y0) * w;
            match self.tail {
                None => {
                    let mut planes: Vec<&mut [f32]> =
                        out.iter_mut().map(|p| &mut p[local * w..local * w + n]).collect();
                    self.k2.run(&job, &mut planes, &mut scratch, gemm_threads);
                }
                Some((weight, per)) => {
                    {
                        let mut planes = channel_rows(&mut sum, c, BAND_ROWS, w, 0, y1 - y0);
                        self.k2.run(&job, &mut planes, &mut scratch, gemm_threads);
                    }
                    if per == 4 {
                        let mut planes: Vec<&mut [f32]> = out
                            .iter_mut()
                            .map(|p| &mut p[4 * local * w..4 * (local * w + n)])
                            .collect();
                        conv_transpose_rows(
                            &sum,
                            BAND_ROWS,
                            w,
                            c,
                            weight,
                            self.tail_bias,
                            0..y1 - y0,
                            &mut planes,
                            &mut tail_tmp,
                            gemm_threads,
                        );
                    } else {
                        let co = self.tail_out;
                        sgemm(
                            &mut tail_tmp[..co * n],
                            n,
                            1,
                            false,
                            MatRef::row_major(&weight[..co * c], co, c),
                            MatRef {
                                data: &sum,
                                rows: c,
                                cols: n,
                                row_stride: BAND_ROWS * w,
                                col_stride: 1,
                            },
                            gemm_threads,
                        );
                        for (o, plane) in out.iter_mut().enumerate() {
                            let bias = self.tail_bias.map_or(0.0, |b| b[o]);
                            let dst = &mut plane[local * w..local * w + n];
                            for (d, &v) in dst.iter_mut().zip(&tail_tmp[o * n..][..n]) {
                                *d = v + bias;
                            }
                        }
                    }
                }
            }
            y0 = y1;
        }
    }
}

/// The depth head after its first convolution: `relu(conv1x1(relu(conv3x3(convT(x)))))`.
#[derive(Debug, Clone, Copy)]
pub struct HeadTail<'a> {
    /// Transposed 2×2 / stride 2 convolution `(4·c, c)` (`head.1`, see [`super::conv_transpose2x2`]).
    pub deconv_weight: &'a Tensor,
    /// Its bias `(c)`.
    pub deconv_bias: Option<&'a Tensor>,
    /// 3×3 convolution `(c2, c, 3, 3)` (`head.2`).
    pub conv_weight: &'a Tensor,
    /// Its bias `(c2)`.
    pub conv_bias: Option<&'a Tensor>,
    /// 1×1 convolution `(c3, c2)` (`head.4`).
    pub out_weight: &'a Tensor,
    /// Its bias `(c3)`.
    pub out_bias: Option<&'a Tensor>,
}

/// `relu(conv1x1(relu(conv3x3(convT(x)))))` for `x` `(b, c, h, w)` → `(b, c3, 2h, 2w)`. On f32 CPU
/// tensors it runs in bands of output rows: the `(c, 2h, 2w)` transposed-convolution output (1.2 GB
/// for Depth Pro) and the `(c2, 2h, 2w)` map never exist in full.
pub fn depth_head_tail(x: &Tensor, tail: &HeadTail<'_>, algorithm: Conv3x3Algorithm) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (rows4, cin_t) = tail.deconv_weight.dims2()?;
    let (c2, cin2, kh, kw) = tail.conv_weight.dims4()?;
    let (c3, cin3) = tail.out_weight.dims2()?;
    if rows4 != 4 * c || cin_t != c || cin2 != c || (kh, kw) != (3, 3) || cin3 != c2 {
        bail!(
            "depth_head_tail: weights {:?}, {:?}, {:?} do not chain from {c} channels",
            tail.deconv_weight.dims(),
            tail.conv_weight.dims(),
            tail.out_weight.dims()
        );
    }
    for (bias, n) in [(tail.deconv_bias, c), (tail.conv_bias, c2), (tail.out_bias, c3)] {
        if bias.is_some_and(|t| t.dims() != [n]) {
            bail!("depth_head_tail: a bias does not match its {n} channels");
        }
    }
    let tensors = [
        Some(x),
        Some(tail.deconv_weight),
        tail.deconv_bias,
        Some(tail.conv_weight),
        tail.conv_bias,
        Some(tail.out_weight),
        tail.out_bias,
    ];
    check_not_empty("depth_head_tail", tensors.iter().flatten().copied())?;
    if !tensors.iter().flatten().all(|t| supported(t)) {
        let y = conv_transpose2x2(x, tail.deconv_weight, tail.deconv_bias)?;
        let y = conv3x3(
            &y,
            tail.conv_weight,
            tail.conv_bias,
            &Conv3x3Options {
                algorithm,
                output_relu: true,
                ..Default::default()
            },
        )?;
        return conv1x1(&y, tail.out_weight, tail.out_bias)?.relu();
    }
    let xt = x.contiguous()?;
    let (dw, cw, ow) = (
        tail.deconv_weight.contiguous()?,
        tail.conv_weight.contiguous()?,
        tail.out_weight.contiguous()?,
    );
    let [db, cb, ob] =
        [tail.deconv_bias, tail.conv_bias, tail.out_bias].map(|t| t.map(Tensor::contiguous).transpose());
    let (db, cb, ob) = (db?, cb?, ob?);
    let xs = CpuF32::new(&xt, "depth_head_tail input")?;
    let dws = CpuF32::new(&dw, "depth_head_tail deconv")?;
    let ows = CpuF32::new(&ow, "depth_head_tail out conv")?;
    let dbs = CpuF32::optional(db.as_ref(), "depth_head_tail bias")?;
    let cbs = CpuF32::optional(cb.as_ref(), "depth_head_tail bias")?;
    let obs = CpuF32::optional(ob.as_ref(), "depth_head_tail bias")?;
    let kernel = Conv3x3Kernel::new(
        algorithm,
        CpuF32::new(&cw, "depth_head_tail conv")?.as_slice(),
        c2,
        c,
    );
    let (oh, owd) = (2 * h, 2 * w);
    let image = c * h * w;
    let out_image = c3 * oh * owd;
    let mut out = vec![0f32; b * out_image];
    let threads = threads();
    for (i, out_i) in out.chunks_mut(out_image.max(1)).enumerate().take(b) {
        let plan = HeadPlan {
            c,
            c2,
            c3,
            h,
            w,
            x: &xs.as_slice()[i * image..][..image],
            deconv: dws.as_slice(),
            deconv_bias: dbs.as_ref().map(CpuF32::as_slice),
            kernel: &kernel,
            conv_bias: cbs.as_ref().map(CpuF32::as_slice),
            out_weight: ows.as_slice(),
            out_bias: obs.as_ref().map(CpuF32::as_slice),
        };
        let chunk_rows = split_range(oh, 2 * threads, HEAD_BAND_ROWS);
        let planes = channel_rows(out_i, c3, oh, owd, 0, oh);
        for_each_chunk(
            split_blocks(planes, owd, chunk_rows),
            threads,
            |ci, planes, gemm_threads| {
                plan.run_chunk(
                    ci * chunk_rows..((ci + 1) * chunk_rows).min(oh),
                    planes,
                    gemm_threads,
                )
            },
        );
    }
    Tensor::from_vec(out, (b, c3, oh, owd), &Device::Cpu)
}

/// One image of [`depth_head_tail`] on the CPU.
struct HeadPlan<'a> {
    c: usize,
    c2: usize,
    c3: usize,
    h: usize,
    w: usize,
    x: &'a [f32],
    deconv: &'a [f32],
    deconv_bias: Option<&'a [f32]>,
    kernel: &'a Conv3x3Kernel,
    conv_bias: Option<&'a [f32]>,
    out_weight: &'a [f32],
    out_bias: Option<&'a [f32]>,
}

/// Input rows per transposed-convolution gemm inside a head band.
const HEAD_DECONV_STEP: usize = 4;

impl HeadPlan<'_> {
    /// Produces output rows `rows` (of `2h`) into `out` (one slice per output channel).
    fn run_chunk(&self, rows: Range<usize>, out: &mut [&mut [f32]], gemm_threads: usize) {
        let (c, c2, h, w) = (self.c, self.c2, self.h, self.w);
        let (oh, ow) = (2 * h, 2 * w);
        // Transposed-convolution output rows of a band: up to BAND + 4 (pairs around a 1-row halo).
        let cap = HEAD_BAND_ROWS + 4;
        let mut deconv = vec![0f32; c * cap * ow];
        let mut tmp = vec![0f32; 4 * c * HEAD_DECONV_STEP * w];
        let mut conv = vec![0f32; c2 * HEAD_BAND_ROWS * ow];
        let mut scratch = self.kernel.scratch(ow);
        let mut y0 = rows.start;
        while y0 < rows.end {
            let y1 = (y0 + HEAD_BAND_ROWS).min(rows.end);
            let need = y0.saturating_sub(1)..(y1 + 1).min(oh);
            let inp = need.start / 2..need.end.div_ceil(2);
            // convT rows 2·inp.start .. 2·inp.end into `deconv` (channel stride cap·ow).
            let mut i = inp.start;
            while i < inp.end {
                let ni = HEAD_DECONV_STEP.min(inp.end - i);
                let r0 = 2 * (i - inp.start);
                let mut planes = channel_rows(&mut deconv, c, cap, ow, r0, r0 + 2 * ni);
                conv_transpose_rows(
                    self.x,
                    h,
                    w,
                    c,
                    self.deconv,
                    self.deconv_bias,
                    i..i + ni,
                    &mut planes,
                    &mut tmp,
                    gemm_threads,
                );
                i += ni;
            }
            let job = Conv3x3Job {
                c_in: c,
                c_out: c2,
                height: oh,
                width: ow,
                input_relu: false,
                output_relu: true,
                bias: self.conv_bias,
                residuals: &[],
                input: Band {
                    data: &deconv,
                    first_row: 2 * inp.start,
                    rows: cap,
                },
                out_rows: y0..y1,
            };
            let nrow = y1 - y0;
            {
                let mut planes = channel_rows(&mut conv, c2, HEAD_BAND_ROWS, ow, 0, nrow);
                self.kernel.run(&job, &mut planes, &mut scratch, gemm_threads);
            }
            let local = y0 - rows.start;
            super::simd(PointwiseOut {
                src: &conv,
                stride: HEAD_BAND_ROWS * ow,
                n: nrow * ow,
                weight: self.out_weight,
                bias: self.out_bias,
                c_in: c2,
                out,
                offset: local * ow,
            });
            y0 = y1;
        }
        debug_assert_eq!(self.c3, out.len());
    }
}

/// `out[o][offset + p] = relu(Σ_c weight[o][c] · src[c·stride + p] + bias[o])` for `p < n`.
struct PointwiseOut<'a, 'o> {
    src: &'a [f32],
    stride: usize,
    n: usize,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    c_in: usize,
    out: &'a mut [&'o mut [f32]],
    offset: usize,
}

impl pulp::WithSimd for PointwiseOut<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            src,
            stride,
            n,
            weight,
            bias,
            c_in,
            out,
            offset,
        } = self;
        for (o, plane) in out.iter_mut().enumerate() {
            let dst = &mut plane[offset..offset + n];
            dst.fill(0.0);
            for (ci, &wv) in weight[o * c_in..(o + 1) * c_in].iter().enumerate() {
                let s = &src[ci * stride..][..n];
                for (d, &v) in dst.iter_mut().zip(s) {
                    *d += wv * v;
                }
            }
            let b = bias.map_or(0.0, |b| b[o]);
            for d in dst.iter_mut() {
                *d = (*d + b).max(0.0);
            }
        }
    }
}
