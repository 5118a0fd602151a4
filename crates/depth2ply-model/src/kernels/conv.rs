//! The convolution kernels on raw f32 slices, and their tensor-level entry points (each with a
//! generic Candle path for other devices and dtypes).

use std::ops::Range;

use candle_core::{bail, Device, Result, Tensor};
use rayon::prelude::*;

use super::gemm::{sgemm, MatRef};
use super::winograd::{self, Tile, F2, F4};
use super::{channel_rows, check_not_empty, split_blocks, split_range, supported, threads, CpuF32};

/// How [`conv3x3`] computes a 3×3 / stride 1 / padding 1 convolution on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conv3x3Algorithm {
    /// Winograd F(2×2, 3×3): 2.25× fewer multiplications than a direct convolution and a rounding
    /// error of the same size (its transforms only add and subtract). The default.
    #[default]
    Winograd2,
    /// Winograd F(4×4, 3×3): 4× fewer multiplications, faster still, but about 20× the rounding
    /// error of a direct convolution in f32 (≈ 1e-5 of the output scale with 256 input channels;
    /// through the whole decoder and head the tiny parity fixture's final depth then differs from
    /// PyTorch by 1.2e-4 relative instead of 2.6e-5). Opt-in.
    Winograd4,
    /// im2col of a few rows at a time + one gemm: the direct sum, as PyTorch computes it.
    Im2col,
}

/// Fused element-wise work of [`conv3x3`]:
/// `out = relu?(r_n + … + (r_1 + (conv(relu?(x)) + bias)))` for the residuals `r_1 … r_n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conv3x3Options<'a> {
    /// How to compute the convolution.
    pub algorithm: Conv3x3Algorithm,
    /// Apply ReLU to the input first.
    pub input_relu: bool,
    /// Apply ReLU to the result (after bias and residuals).
    pub output_relu: bool,
    /// Tensors shaped like the output, added in this order after the bias.
    pub residuals: &'a [&'a Tensor],
}

/// A band of rows of a `(channels, height, width)` map: image rows `first_row .. first_row + rows`
/// of every channel, channel-major (`data[(c · rows + y − first_row) · width + x]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Band<'a> {
    pub data: &'a [f32],
    pub first_row: usize,
    pub rows: usize,
}

impl<'a> Band<'a> {
    /// A whole `(channels, rows, width)` map.
    pub(crate) fn full(data: &'a [f32], rows: usize) -> Self {
        Self {
            data,
            first_row: 0,
            rows,
        }
    }

    /// Row `y` (image coordinates) of channel `c`.
    #[inline(always)]
    pub(crate) fn row(&self, c: usize, y: usize, width: usize) -> &'a [f32] {
        let start = (c * self.rows + (y - self.first_row)) * width;
        &self.data[start..start + width]
    }

    fn covers(&self, rows: &Range<usize>, channels: usize, width: usize) -> bool {
        rows.is_empty()
            || self.first_row <= rows.start
                && rows.end <= self.first_row + self.rows
                && self.data.len() >= channels * self.rows * width
    }
}

/// One 3×3 / stride 1 / padding 1 convolution of one image (or a band of rows of it), with its
/// fused element-wise work (see [`Conv3x3Options`]).
#[derive(Debug, Clone)]
pub(crate) struct Conv3x3Job<'a> {
    pub c_in: usize,
    pub c_out: usize,
    /// Image height: rows outside `0..height` are the zero padding.
    pub height: usize,
    pub width: usize,
    pub input_relu: bool,
    pub output_relu: bool,
    pub bias: Option<&'a [f32]>,
    /// Added in this order; each covers the output rows.
    pub residuals: &'a [Band<'a>],
    /// Covers the output rows ± 1 (clamped to the image).
    pub input: Band<'a>,
    /// Image rows to produce.
    pub out_rows: Range<usize>,
}

impl Conv3x3Job<'_> {
    /// Checks the invariants the kernels index with (a failure is a bug in this crate).
    fn check(&self, out: &[&mut [f32]]) {
        let r = &self.out_rows;
        assert!(r.end <= self.height, "conv3x3: output rows outside the image");
        let need = r.start.saturating_sub(1)..(r.end + 1).min(self.height);
        assert!(
            self.input.covers(&need, self.c_in, self.width),
            "conv3x3: input band does not cover the output rows ± 1"
        );
        assert!(
            self.residuals.iter().all(|b| b.covers(r, self.c_out, self.width)),
            "conv3x3: residual band does not cover the output rows"
        );
        assert!(self.bias.is_none_or(|b| b.len() == self.c_out));
        assert!(
            out.len() == self.c_out && out.iter().all(|p| p.len() == r.len() * self.width),
            "conv3x3: output planes"
        );
    }

    /// Input row `y` of channel `c` (image coordinates, may be −1 or beyond the last output row),
    /// or `None` where it is zero padding or only feeds discarded outputs.
    #[inline(always)]
    pub(crate) fn input_row(&self, c: usize, y: isize) -> Option<&[f32]> {
        // Rows past `out_rows.end` only feed the discarded outputs of partial tiles.
        if y < 0 || y as usize >= self.height || y as usize > self.out_rows.end {
            None
        } else {
            Some(self.input.row(c, y as usize, self.width))
        }
    }

    /// The same job restricted to output rows `rows` (a sub-range of `out_rows`).
    fn with_rows(&self, rows: Range<usize>) -> Self {
        Self {
            out_rows: rows,
            ..self.clone()
        }
    }
}

/// Adds the residuals and applies the output ReLU to `row`, the finished output of channel `co`,
/// image row `y`, columns `x0 ..`.
#[inline(always)]
pub(crate) fn finish_row(job: &Conv3x3Job<'_>, co: usize, y: usize, x0: usize, row: &mut [f32]) {
    for res in job.residuals {
        let r = &res.row(co, y, job.width)[x0..x0 + row.len()];
        for (o, &v) in row.iter_mut().zip(r) {
            *o += v;
        }
    }
    if job.output_relu {
        for o in row.iter_mut() {
            *o = o.max(0.0);
        }
    }
}

/// Output columns per im2col gemm (rows of the column buffer: `9 · c_in`).
const IM2COL_COLUMNS: usize = 2048;

/// A 3×3 convolution ready to run: the algorithm and its prepared weights.
pub(crate) struct Conv3x3Kernel {
    algorithm: Conv3x3Algorithm,
    /// Winograd `U[ξ][co][ci]`, or `(c_out, 9 · c_in)` for im2col.
    weights: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

/// Per-thread buffers of [`Conv3x3Kernel::run`].
pub(crate) enum Conv3x3Scratch {
    Winograd(winograd::Scratch),
    Im2col {
        columns: Vec<f32>,
        acc: Vec<f32>,
        rows_per_step: usize,
    },
}

impl Conv3x3Kernel {
    /// Prepares `weight` (`(c_out, c_in, 3, 3)`, PyTorch layout).
    pub(crate) fn new(algorithm: Conv3x3Algorithm, weight: &[f32], c_out: usize, c_in: usize) -> Self {
        let weights = match algorithm {
            Conv3x3Algorithm::Winograd2 => winograd::transform_weights::<F2>(weight, c_out, c_in),
            Conv3x3Algorithm::Winograd4 => winograd::transform_weights::<F4>(weight, c_out, c_in),
            Conv3x3Algorithm::Im2col => weight[..c_out * c_in * 9].to_vec(),
        };
        Self {
            algorithm,
            weights,
            c_in,
            c_out,
        }
    }

    /// Row alignment of blocks (the Winograd tile side).
    fn row_align(&self) -> usize {
        match self.algorithm {
            Conv3x3Algorithm::Winograd2 => F2::M,
            Conv3x3Algorithm::Winograd4 => F4::M,
            Conv3x3Algorithm::Im2col => 1,
        }
    }

    pub(crate) fn scratch(&self, width: usize) -> Conv3x3Scratch {
        match self.algorithm {
            Conv3x3Algorithm::Winograd2 => {
                Conv3x3Scratch::Winograd(winograd::Scratch::new::<F2>(self.c_in, self.c_out, width))
            }
            Conv3x3Algorithm::Winograd4 => {
                Conv3x3Scratch::Winograd(winograd::Scratch::new::<F4>(self.c_in, self.c_out, width))
            }
            Conv3x3Algorithm::Im2col => {
                let rows_per_step = IM2COL_COLUMNS.div_ceil(width.max(1)).max(1);
                let n = rows_per_step * width;
                Conv3x3Scratch::Im2col {
                    columns: vec![0f32; 9 * self.c_in * n],
                    acc: vec![0f32; self.c_out * n],
                    rows_per_step,
                }
            }
        }
    }

    /// Runs `job` into `out` (one slice per output channel covering `job.out_rows`) on this thread
    /// (gemm may use `gemm_threads`).
    pub(crate) fn run(
        &self,
        job: &Conv3x3Job<'_>,
        out: &mut [&mut [f32]],
        scratch: &mut Conv3x3Scratch,
        gemm_threads: usize,
    ) {
        assert!(
            job.c_in == self.c_in && job.c_out == self.c_out,
            "conv3x3: channels"
        );
        job.check(out);
        if job.out_rows.is_empty() || job.width == 0 || job.c_out == 0 {
            return;
        }
        match (self.algorithm, scratch) {
            (Conv3x3Algorithm::Winograd2, Conv3x3Scratch::Winograd(s)) => {
                winograd::run::<F2>(job, &self.weights, out, s, gemm_threads)
            }
            (Conv3x3Algorithm::Winograd4, Conv3x3Scratch::Winograd(s)) => {
                winograd::run::<F4>(job, &self.weights, out, s, gemm_threads)
            }
            (
                Conv3x3Algorithm::Im2col,
                Conv3x3Scratch::Im2col {
                    columns,
                    acc,
                    rows_per_step,
                },
            ) => im2col_run(
                job,
                &self.weights,
                out,
                columns,
                acc,
                *rows_per_step,
                gemm_threads,
            ),
            _ => panic!("conv3x3: scratch of another algorithm"),
        }
    }

    /// Runs `job` into `out` on up to `threads` threads (row blocks, one scratch each).
    pub(crate) fn run_parallel(&self, job: &Conv3x3Job<'_>, out: Vec<&mut [f32]>, threads: usize) {
        let rows = job.out_rows.len();
        let block_rows = split_range(rows, 2 * threads, self.row_align());
        let blocks = split_blocks(out, job.width, block_rows);
        if blocks.len() <= 1 || threads <= 1 {
            let mut scratch = self.scratch(job.width);
            for (b, mut planes) in blocks.into_iter().enumerate() {
                let start = job.out_rows.start + b * block_rows;
                let sub = job.with_rows(start..(start + block_rows).min(job.out_rows.end));
                self.run(&sub, &mut planes, &mut scratch, threads);
            }
            return;
        }
        blocks.into_par_iter().enumerate().for_each_init(
            || self.scratch(job.width),
            |scratch, (b, mut planes)| {
                let start = job.out_rows.start + b * block_rows;
                let sub = job.with_rows(start..(start + block_rows).min(job.out_rows.end));
                self.run(&sub, &mut planes, scratch, 1);
            },
        );
    }
}

/// im2col + gemm over `rows_per_step` output rows at a time.
fn im2col_run(
    job: &Conv3x3Job<'_>,
    weight: &[f32],
    out: &mut [&mut [f32]],
    columns: &mut [f32],
    acc: &mut [f32],
    rows_per_step: usize,
    gemm_threads: usize,
) {
    let (c_in, c_out, width) = (job.c_in, job.c_out, job.width);
    let k = 9 * c_in;
    let mut y0 = job.out_rows.start;
    while y0 < job.out_rows.end {
        let nr = rows_per_step.min(job.out_rows.end - y0);
        let n = nr * width;
        super::simd(Im2col {
            job,
            y0,
            nr,
            columns: &mut *columns,
        });
        sgemm(
            &mut acc[..c_out * n],
            n,
            1,
            false,
            MatRef::row_major(weight, c_out, k),
            MatRef::row_major(&columns[..k * n], k, n),
            gemm_threads,
        );
        let local0 = y0 - job.out_rows.start;
        for (co, plane) in out.iter_mut().enumerate() {
            let bias = job.bias.map_or(0.0, |b| b[co]);
            for r in 0..nr {
                let row = &mut plane[(local0 + r) * width..][..width];
                for (o, &a) in row.iter_mut().zip(&acc[co * n + r * width..][..width]) {
                    *o = a + bias;
                }
                finish_row(job, co, y0 + r, 0, row);
            }
        }
        y0 += nr;
    }
}

/// Fills the column buffer `(9 · c_in, nr · width)`: row `(ci, ky, kx)`, column `(r, x)` holds
/// `relu?(input[ci, y0 + r + ky − 1, x + kx − 1])` (0 outside the image).
struct Im2col<'a, 'j> {
    job: &'a Conv3x3Job<'j>,
    y0: usize,
    nr: usize,
    columns: &'a mut [f32],
}

impl pulp::WithSimd for Im2col<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { job, y0, nr, columns } = self;
        let width = job.width;
        let n = nr * width;
        for ci in 0..job.c_in {
            for ky in 0..3 {
                for r in 0..nr {
                    let src = job.input_row(ci, (y0 + r + ky) as isize - 1);
                    for kx in 0..3 {
                        let dst = &mut columns[(ci * 9 + ky * 3 + kx) * n + r * width..][..width];
                        let Some(src) = src else {
                            dst.fill(0.0);
                            continue;
                        };
                        // dst[x] = src[x + kx − 1] where that is inside the row.
                        let (lo, hi) = match kx {
                            0 => (1.min(width), width),
                            1 => (0, width),
                            _ => (0, width.saturating_sub(1)),
                        };
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        let s = &src[lo + kx - 1..hi + kx - 1];
                        if job.input_relu {
                            for (d, &v) in dst[lo..hi].iter_mut().zip(s) {
                                *d = v.max(0.0);
                            }
                        } else {
                            dst[lo..hi].copy_from_slice(s);
                        }
                    }
                }
            }
        }
    }
}

/// Checks that `t` is `(b, c, h, w)` with the given sizes (`None` = any).
fn check_dims(t: &Tensor, what: &str, dims: [Option<usize>; 4]) -> Result<(usize, usize, usize, usize)> {
    let (b, c, h, w) = t.dims4()?;
    for (got, want) in [b, c, h, w].into_iter().zip(dims) {
        if want.is_some_and(|want| want != got) {
            bail!("{what}: expected shape {dims:?} (None = any), got {:?}", t.dims());
        }
    }
    Ok((b, c, h, w))
}

/// 3×3 convolution, stride 1, zero padding 1 (PyTorch `Conv2d(c_in, c_out, 3, padding=1)`), with
/// the fused work of `options`. `x` is `(b, c_in, h, w)`, `weight` `(c_out, c_in, 3, 3)`, `bias`
/// `(c_out)`, every residual `(b, c_out, h, w)`. f32 CPU tensors use the kernels of this module,
/// anything else Candle's `conv2d` and element-wise ops.
pub fn conv3x3(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    options: &Conv3x3Options<'_>,
) -> Result<Tensor> {
    let (c_out, c_in, kh, kw) = weight.dims4()?;
    if (kh, kw) != (3, 3) {
        bail!(
            "conv3x3: expected a (c_out, c_in, 3, 3) weight, got {:?}",
            weight.dims()
        );
    }
    let (b, _, h, w) = check_dims(x, "conv3x3 input", [None, Some(c_in), None, None])?;
    for r in options.residuals {
        check_dims(r, "conv3x3 residual", [Some(b), Some(c_out), Some(h), Some(w)])?;
    }
    if let Some(bias) = bias {
        if bias.dims() != [c_out] {
            bail!("conv3x3: expected a ({c_out}) bias, got {:?}", bias.dims());
        }
    }
    check_not_empty(
        "conv3x3",
        [x, weight].into_iter().chain(options.residuals.iter().copied()),
    )?;
    let all_cpu = supported(x)
        && supported(weight)
        && bias.is_none_or(supported)
        && options.residuals.iter().all(|r| supported(r));
    if !all_cpu {
        return conv3x3_generic(x, weight, bias, options);
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let residuals = options
        .residuals
        .iter()
        .map(|r| r.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let xs = CpuF32::new(&x, "conv3x3 input")?;
    let ws = CpuF32::new(&weight, "conv3x3 weight")?;
    let bs = CpuF32::optional(bias.as_ref(), "conv3x3 bias")?;
    let rs = residuals
        .iter()
        .map(|r| CpuF32::new(r, "conv3x3 residual"))
        .collect::<Result<Vec<_>>>()?;
    let kernel = Conv3x3Kernel::new(options.algorithm, ws.as_slice(), c_out, c_in);
    let (in_image, out_image) = (c_in * h * w, c_out * h * w);
    let mut out = vec![0f32; b * out_image];
    let threads = threads();
    for (i, out_i) in out.chunks_mut(out_image.max(1)).enumerate().take(b) {
        let res_bands: Vec<Band<'_>> = rs
            .iter()
            .map(|r| Band::full(&r.as_slice()[i * out_image..][..out_image], h))
            .collect();
        let job = Conv3x3Job {
            c_in,
            c_out,
            height: h,
            width: w,
            input_relu: options.input_relu,
            output_relu: options.output_relu,
            bias: bs.as_ref().map(CpuF32::as_slice),
            residuals: &res_bands,
            input: Band::full(&xs.as_slice()[i * in_image..][..in_image], h),
            out_rows: 0..h,
        };
        kernel.run_parallel(&job, channel_rows(out_i, c_out, h, w, 0, h), threads);
    }
    Tensor::from_vec(out, (b, c_out, h, w), &Device::Cpu)
}

/// [`conv3x3`] with Candle ops (any device and dtype).
fn conv3x3_generic(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    options: &Conv3x3Options<'_>,
) -> Result<Tensor> {
    let x = if options.input_relu { x.relu()? } else { x.clone() };
    let mut y = x.conv2d(weight, 1, 1, 1, 1)?;
    if let Some(bias) = bias {
        y = y.broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
    }
    for r in options.residuals {
        y = (*r + y)?;
    }
    if options.output_relu {
        y = y.relu()?;
    }
    Ok(y)
}

/// 2×2 / stride 2 transposed convolution of `nr` input rows (`x` rows `y0 ..`, one `(c_in, h, w)`
/// image) into output rows `2·y0 ..`: `tmp = weight · x_rows` (`(4·c_out, nr·w)`), then
/// interleaved into `out` (one slice per output channel covering `2·nr` rows) with the bias.
/// `weight` is `(4·c_out, c_in)`, row `o·4 + dy·2 + dx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transpose_rows(
    x: &[f32],
    h: usize,
    w: usize,
    c_in: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    rows: Range<usize>,
    out: &mut [&mut [f32]],
    tmp: &mut [f32],
    gemm_threads: usize,
) {
    let c_out = out.len();
    let n = rows.len() * w;
    if n == 0 || c_out == 0 {
        return;
    }
    sgemm(
        &mut tmp[..4 * c_out * n],
        n,
        1,
        false,
        MatRef::row_major(&weight[..4 * c_out * c_in], 4 * c_out, c_in),
        MatRef {
            data: &x[rows.start * w..],
            rows: c_in,
            cols: n,
            row_stride: h * w,
            col_stride: 1,
        },
        gemm_threads,
    );
    super::simd(Interleave { tmp, n, w, bias, out });
}

/// `out[o][(2r + dy)·2w + 2x + dx] = tmp[o·4 + dy·2 + dx][r·w + x] + bias[o]`.
struct Interleave<'a, 'o> {
    tmp: &'a [f32],
    n: usize,
    w: usize,
    bias: Option<&'a [f32]>,
    out: &'a mut [&'o mut [f32]],
}

impl pulp::WithSimd for Interleave<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { tmp, n, w, bias, out } = self;
        let nr = n / w.max(1);
        for (o, plane) in out.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            for r in 0..nr {
                for dy in 0..2 {
                    let a = &tmp[(o * 4 + dy * 2) * n + r * w..][..w];
                    let c = &tmp[(o * 4 + dy * 2 + 1) * n + r * w..][..w];
                    let row = &mut plane[(2 * r + dy) * 2 * w..][..2 * w];
                    for ((pair, &va), &vc) in row.chunks_exact_mut(2).zip(a).zip(c) {
                        pair[0] = va + b;
                        pair[1] = vc + b;
                    }
                }
            }
        }
    }
}

/// Input columns per transposed-convolution gemm.
const CONVT_COLUMNS: usize = 1024;

/// PyTorch `ConvTranspose2d(c_in, c_out, 2, stride=2)`: `out[o, 2y+dy, 2x+dx] = Σ_c x[c, y, x] ·
/// W[c, o, dy, dx] (+ bias[o])`. `weight` is given as `(4·c_out, c_in)` with row `o·4 + dy·2 + dx`
/// (i.e. PyTorch's `(c_in, c_out, 2, 2)` reshaped to `(c_in, 4·c_out)` and transposed). f32 CPU
/// tensors use one gemm per row band written straight into the interleaved output; anything else
/// a Candle matmul and a depth-to-space permute.
pub fn conv_transpose2x2(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (rows4, c_in) = weight.dims2()?;
    if rows4 % 4 != 0 {
        bail!("conv_transpose2x2: weight rows {rows4} are not 4·c_out");
    }
    let c_out = rows4 / 4;
    let (b, _, h, w) = check_dims(x, "conv_transpose2x2 input", [None, Some(c_in), None, None])?;
    if let Some(bias) = bias {
        if bias.dims() != [c_out] {
            bail!(
                "conv_transpose2x2: expected a ({c_out}) bias, got {:?}",
                bias.dims()
            );
        }
    }
    check_not_empty("conv_transpose2x2", [x, weight])?;
    if !(supported(x) && supported(weight) && bias.is_none_or(supported)) {
        let xm = x.contiguous()?.reshape((b, c_in, h * w))?;
        let y = weight.broadcast_left(b)?.matmul(&xm)?; // (b, 4·c_out, h·w)
                                                        // (b, c_out, dy, dx, h, w) → (b, c_out, h, dy, w, dx)
        let y = y
            .reshape((b, c_out, 2, 2, h, w))?
            .permute((0, 1, 4, 2, 5, 3))?
            .contiguous()?
            .reshape((b, c_out, 2 * h, 2 * w))?;
        return match bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, (), 1, 1))?),
            None => Ok(y),
        };
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let xs = CpuF32::new(&x, "conv_transpose2x2 input")?;
    let ws = CpuF32::new(&weight, "conv_transpose2x2 weight")?;
    let bs = CpuF32::optional(bias.as_ref(), "conv_transpose2x2 bias")?;
    let (in_image, out_image) = (c_in * h * w, c_out * 4 * h * w);
    let mut out = vec![0f32; b * out_image];
    let threads = threads();
    let rows_per_step = CONVT_COLUMNS.div_ceil(w.max(1)).max(1);
    for (i, out_i) in out.chunks_mut(out_image.max(1)).enumerate().take(b) {
        let xi = &xs.as_slice()[i * in_image..][..in_image];
        let block_rows = split_range(h, 2 * threads, 1);
        let planes = channel_rows(out_i, c_out, 2 * h, 2 * w, 0, 2 * h);
        let blocks = split_blocks(planes, 2 * w, 2 * block_rows);
        let gemm_threads = if blocks.len() <= 1 { threads } else { 1 };
        let work = |tmp: &mut Vec<f32>, (bi, mut planes): (usize, Vec<&mut [f32]>)| {
            let start = bi * block_rows;
            let end = (start + block_rows).min(h);
            let mut y = start;
            while y < end {
                let nr = rows_per_step.min(end - y);
                let mut sub: Vec<&mut [f32]> = planes
                    .iter_mut()
                    .map(|p| &mut p[2 * (y - start) * 2 * w..2 * (y - start + nr) * 2 * w])
                    .collect();
                conv_transpose_rows(
                    xi,
                    h,
                    w,
                    c_in,
                    ws.as_slice(),
                    bs.as_ref().map(CpuF32::as_slice),
                    y..y + nr,
                    &mut sub,
                    tmp,
                    gemm_threads,
                );
                y += nr;
            }
        };
        let tmp = || vec![0f32; 4 * c_out * rows_per_step * w];
        if blocks.len() <= 1 {
            let mut t = tmp();
            blocks.into_iter().enumerate().for_each(|b| work(&mut t, b));
        } else {
            blocks.into_par_iter().enumerate().for_each_init(tmp, work);
        }
    }
    Tensor::from_vec(out, (b, c_out, 2 * h, 2 * w), &Device::Cpu)
}

/// 1×1 convolution (PyTorch `Conv2d(c_in, c_out, 1)`): `weight` `(c_out, c_in)`, `x`
/// `(b, c_in, h, w)`. f32 CPU tensors use one gemm per image accumulating onto the preloaded bias;
/// anything else a Candle matmul.
pub fn conv1x1(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (c_out, c_in) = weight.dims2()?;
    let (b, _, h, w) = check_dims(x, "conv1x1 input", [None, Some(c_in), None, None])?;
    if let Some(bias) = bias {
        if bias.dims() != [c_out] {
            bail!("conv1x1: expected a ({c_out}) bias, got {:?}", bias.dims());
        }
    }
    check_not_empty("conv1x1", [x, weight])?;
    if !(supported(x) && supported(weight) && bias.is_none_or(supported)) {
        let xm = x.contiguous()?.reshape((b, c_in, h * w))?;
        let y = weight.broadcast_left(b)?.matmul(&xm)?;
        let y = match bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, (), 1))?)?,
            None => y,
        };
        return y.reshape((b, c_out, h, w));
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let xs = CpuF32::new(&x, "conv1x1 input")?;
    let ws = CpuF32::new(&weight, "conv1x1 weight")?;
    let bs = CpuF32::optional(bias.as_ref(), "conv1x1 bias")?;
    let (hw, threads) = (h * w, threads());
    let mut out = vec![0f32; b * c_out * hw];
    for (i, out_i) in out.chunks_mut((c_out * hw).max(1)).enumerate().take(b) {
        if let Some(bs) = &bs {
            for (plane, &v) in out_i.chunks_mut(hw.max(1)).zip(bs.as_slice()) {
                plane.fill(v);
            }
        }
        sgemm(
            out_i,
            hw,
            1,
            bs.is_some(),
            MatRef::row_major(ws.as_slice(), c_out, c_in),
            MatRef::row_major(&xs.as_slice()[i * c_in * hw..][..c_in * hw], c_in, hw),
            threads,
        );
    }
    Tensor::from_vec(out, (b, c_out, h, w), &Device::Cpu)
}
