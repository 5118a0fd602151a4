//! Hand-written f32 CPU kernels for the convolutions of the decoder and the depth head.
//!
//! Why: on this project's CPUs Candle 0.11's `conv2d` runs at about 30 GFLOP/s per core (a tiled
//! im2col with a full NHWC copy), its `conv_transpose2d` at about 4 (direct loops), and every
//! element-wise op allocates and page-faults a fresh output; the decoder and head at 768² and 1536²
//! are 4.5 TFLOP of 3×3 convolutions (`depth_pro_spec.md` §10). The kernels here:
//! - [`conv3x3`]: 3×3 / stride 1 / padding 1 by Winograd F(2×2, 3×3) (default; 2.25× fewer
//!   multiplications, rounding error of the same size as a direct convolution), Winograd F(4×4, 3×3)
//!   (4× fewer, about 20× the rounding error; opt-in) or im2col + gemm, with the input ReLU, bias, residual
//!   adds and output ReLU fused into the input and output passes;
//! - [`conv_transpose2x2`]: the 2×2 / stride 2 transposed convolution as one gemm per row band whose
//!   result is interleaved straight into the output;
//! - [`conv1x1`]: one gemm with the bias preloaded into the output;
//! - [`residual_block`] and [`depth_head_tail`]: whole decoder / head stages streamed in row bands,
//!   so the full-size intermediates (`conv1` of a residual unit, the 1536² transposed-convolution
//!   output) never exist.
//!
//! All of them take f32 tensors on the CPU ([`supported`]) and return contiguous `(b, c, h, w)`
//! tensors; other devices and dtypes use Candle's generic ops (see `network.rs`). Work is split over
//! rayon's global pool (`RAYON_NUM_THREADS`, see [`crate::runtime`]). Band and chunk boundaries follow
//! the thread count, and with them where the Winograd tiles of a streamed convolution start, so results
//! can differ in the last bits between thread counts (as PyTorch's do); never more than rounding.

mod conv;
mod fused;
mod gemm;
mod winograd;

#[cfg(test)]
mod tests;

pub use conv::{conv1x1, conv3x3, conv_transpose2x2, Conv3x3Algorithm, Conv3x3Options};
pub use fused::{depth_head_tail, residual_block, HeadTail, ResidualTail, ResidualUnit};
// Also used by the ViT's f32 CPU path (`vit_cpu.rs`).
pub(crate) use gemm::{sgemm, MatRef};

use candle_core::{bail, CpuStorage, DType, Result, Storage, StorageRef, Tensor};

/// Whether the kernels of this module can run on `t`: f32 on the CPU.
pub fn supported(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Rejects tensors with a zero-sized dimension: the kernels index rows and channels of non-empty maps,
/// and Depth Pro never has empty ones.
fn check_not_empty<'a>(what: &str, tensors: impl IntoIterator<Item = &'a Tensor>) -> Result<()> {
    if let Some(t) = tensors.into_iter().find(|t| t.elem_count() == 0) {
        bail!("{what}: tensor of shape {:?} is empty", t.dims());
    }
    Ok(())
}

/// Read access to the f32 data of a contiguous CPU tensor (holds Candle's storage read lock).
///
/// Two of them on the same storage from one thread (e.g. an input that is also a residual) take the
/// read lock twice, which `parking_lot` allows unless another thread is waiting to write that
/// storage; nothing in this crate writes a tensor in place.
pub(crate) struct CpuF32<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl<'a> CpuF32<'a> {
    /// `t` must be contiguous (call `contiguous()` first), f32 and on the CPU.
    pub(crate) fn new(t: &'a Tensor, what: &str) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{what}: kernel input must be contiguous")
        };
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            bail!("{what}: kernel input must be f32 on the CPU, got {:?}", t.dtype())
        }
        Ok(Self { guard, start, end })
    }

    /// [`CpuF32::new`] of an optional tensor.
    pub(crate) fn optional(t: Option<&'a Tensor>, what: &str) -> Result<Option<Self>> {
        t.map(|t| Self::new(t, what)).transpose()
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.end],
            // Checked in `new`.
            _ => &[],
        }
    }
}

/// Number of threads of rayon's global pool (the one gemm and these kernels use).
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Per-channel row slices of a `(channels, rows, width)` buffer: rows `r0..r1` of every channel.
fn channel_rows(
    buf: &mut [f32],
    channels: usize,
    rows: usize,
    width: usize,
    r0: usize,
    r1: usize,
) -> Vec<&mut [f32]> {
    if rows == 0 || width == 0 {
        return (0..channels).map(|_| <&mut [f32]>::default()).collect();
    }
    buf.chunks_mut(rows * width)
        .take(channels)
        .map(|plane| &mut plane[r0 * width..r1 * width])
        .collect()
}

/// Splits per-channel planes (each `rows × width`) into blocks of `block_rows` rows:
/// `result[b][c]` is rows `b · block_rows ..` of channel `c`.
fn split_blocks(planes: Vec<&mut [f32]>, width: usize, block_rows: usize) -> Vec<Vec<&mut [f32]>> {
    let rows = planes.first().map_or(0, |p| p.len() / width.max(1));
    let blocks = rows.div_ceil(block_rows.max(1));
    let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::with_capacity(planes.len())).collect();
    if width == 0 {
        return per_block;
    }
    for plane in planes {
        for (b, chunk) in plane.chunks_mut(block_rows.max(1) * width).enumerate() {
            per_block[b].push(chunk);
        }
    }
    per_block
}

/// The length of the ranges that split `0..rows` into at most `parts` contiguous ranges whose lengths
/// are multiples of `align` (except the last).
fn split_range(rows: usize, parts: usize, align: usize) -> usize {
    let align = align.max(1);
    rows.div_ceil(parts.max(1)).div_ceil(align).max(1) * align
}

/// Runs `op` compiled for the best SIMD instruction set of this CPU (AVX-512 / AVX2+FMA / plain
/// x86-64): its `with_simd` and everything it inlines get those target features, so the plain
/// loops of the transforms are auto-vectorised at full width.
#[inline(always)]
pub(crate) fn simd<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    pulp::Arch::new().dispatch(op)
}
