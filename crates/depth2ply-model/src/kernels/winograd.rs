//! Winograd minimal filtering F(m×m, 3×3) (Lavin & Gray 2016): per `m×m` output tile, the
//! `(m+2)²` input tile is transformed (`B^T d B`), multiplied element-wise with the transformed
//! kernel (`G g G^T`) and summed over input channels (one gemm per tile position `ξ`), then
//! transformed back (`A^T M A`). Multiplications per output: `(m+2)²/m²` instead of 9.
//!
//! Layout: a step handles `nt` tiles (one or more tile rows, or a column segment of one tile row):
//! `V[ξ][ci][t]`, `M[ξ][co][t]`, so each product is `M[ξ] = U[ξ] · V[ξ]` with
//! `U[ξ]` = `(c_out, c_in)`. Transforms run along contiguous image rows: the vertical input
//! transform combines `m+2` input rows element-wise, the horizontal one works on the row split by
//! column phase (`x mod m`), so every loop is contiguous and auto-vectorises.

use super::conv::{finish_row, Conv3x3Job};
use super::gemm::{sgemm, MatRef};

/// Up to six row slices (`A ≤ 6`); unused entries are empty.
pub(crate) type Rows6<'a> = [&'a [f32]; 6];

/// One Winograd variant: its tile sizes and 1-D transforms (each applied along rows or columns).
pub(crate) trait Tile: Sync + 'static {
    /// Output tile side.
    const M: usize;
    /// Input tile side, `M + 2`.
    const A: usize;
    /// Kernel transform `G` (`A × 3`), exact values.
    fn g() -> &'static [[f64; 3]];
    /// `tv[k][x] = Σ_i B^T[k][i] · f(rows[i][x])` for `k < A`, `f` = ReLU when `RELU`.
    fn input_vertical<const RELU: bool>(rows: &Rows6<'_>, tv: &mut [&mut [f32]; 6]);
    /// `out[l][t] = Σ_j B^T[l][j] · d[j][t]`, `d[j]` being column `j` of every tile.
    fn input_horizontal(d: &Rows6<'_>, out: &mut [&mut [f32]; 6]);
    /// `z[M·t + j] = Σ_l A^T[j][l] · m[l][t]`.
    fn output_horizontal(m: &Rows6<'_>, z: &mut [f32]);
    /// `row[x] = Σ_k A^T[i][k] · z[k][x] + bias`.
    fn output_row(z: &Rows6<'_>, i: usize, bias: f32, row: &mut [f32]);
}

/// F(2×2, 3×3), interpolation points 0, ±1, ∞: transforms with entries 0, ±1 (and ½ in `G`), so
/// its rounding error is about that of a direct convolution.
pub(crate) struct F2;

/// F(4×4, 3×3), points 0, ±1, ±2, ∞: 4× fewer multiplications than a direct convolution, about
/// 20× its rounding error in f32 (entries up to 8 in the transforms).
pub(crate) struct F4;

impl Tile for F2 {
    const M: usize = 2;
    const A: usize = 4;

    fn g() -> &'static [[f64; 3]] {
        &[
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ]
    }

    #[inline(always)]
    fn input_vertical<const RELU: bool>(rows: &Rows6<'_>, tv: &mut [&mut [f32]; 6]) {
        let f = |v: f32| if RELU { v.max(0.0) } else { v };
        let [t0, t1, t2, t3, ..] = tv;
        let n = t0.len();
        let (t1, t2, t3) = (&mut t1[..n], &mut t2[..n], &mut t3[..n]);
        let (r0, r1, r2, r3) = (&rows[0][..n], &rows[1][..n], &rows[2][..n], &rows[3][..n]);
        for x in 0..n {
            let (d0, d1, d2, d3) = (f(r0[x]), f(r1[x]), f(r2[x]), f(r3[x]));
            t0[x] = d0 - d2;
            t1[x] = d1 + d2;
            t2[x] = d2 - d1;
            t3[x] = d1 - d3;
        }
    }

    #[inline(always)]
    fn input_horizontal(d: &Rows6<'_>, out: &mut [&mut [f32]; 6]) {
        let [o0, o1, o2, o3, ..] = out;
        let n = o0.len();
        let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
        let (d0, d1, d2, d3) = (&d[0][..n], &d[1][..n], &d[2][..n], &d[3][..n]);
        for t in 0..n {
            o0[t] = d0[t] - d2[t];
            o1[t] = d1[t] + d2[t];
            o2[t] = d2[t] - d1[t];
            o3[t] = d1[t] - d3[t];
        }
    }

    #[inline(always)]
    fn output_horizontal(m: &Rows6<'_>, z: &mut [f32]) {
        let n = z.len() / 2;
        let (m0, m1, m2, m3) = (&m[0][..n], &m[1][..n], &m[2][..n], &m[3][..n]);
        for (t, zz) in z.chunks_exact_mut(2).enumerate() {
            zz[0] = m0[t] + m1[t] + m2[t];
            zz[1] = m1[t] - m2[t] - m3[t];
        }
    }

    #[inline(always)]
    fn output_row(z: &Rows6<'_>, i: usize, bias: f32, row: &mut [f32]) {
        let n = row.len();
        let (z0, z1, z2, z3) = (&z[0][..n], &z[1][..n], &z[2][..n], &z[3][..n]);
        if i == 0 {
            for x in 0..n {
                row[x] = (z0[x] + z1[x] + z2[x]) + bias;
            }
        } else {
            for x in 0..n {
                row[x] = (z1[x] - z2[x] - z3[x]) + bias;
            }
        }
    }
}

impl Tile for F4 {
    const M: usize = 4;
    const A: usize = 6;

    fn g() -> &'static [[f64; 3]] {
        &[
            [1.0 / 4.0, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ]
    }

    #[inline(always)]
    fn input_vertical<const RELU: bool>(rows: &Rows6<'_>, tv: &mut [&mut [f32]; 6]) {
        let f = |v: f32| if RELU { v.max(0.0) } else { v };
        let [t0, t1, t2, t3, t4, t5] = tv;
        let n = t0.len();
        let (t1, t2, t3, t4, t5) = (
            &mut t1[..n],
            &mut t2[..n],
            &mut t3[..n],
            &mut t4[..n],
            &mut t5[..n],
        );
        let [r0, r1, r2, r3, r4, r5] = rows;
        let (r0, r1, r2, r3, r4, r5) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n], &r4[..n], &r5[..n]);
        for x in 0..n {
            let (d0, d1, d2, d3, d4, d5) = (f(r0[x]), f(r1[x]), f(r2[x]), f(r3[x]), f(r4[x]), f(r5[x]));
            t0[x] = 4.0 * d0 - 5.0 * d2 + d4;
            t1[x] = -4.0 * (d1 + d2) + (d3 + d4);
            t2[x] = 4.0 * (d1 - d2) + (d4 - d3);
            t3[x] = 2.0 * (d3 - d1) + (d4 - d2);
            t4[x] = 2.0 * (d1 - d3) + (d4 - d2);
            t5[x] = 4.0 * d1 - 5.0 * d3 + d5;
        }
    }

    #[inline(always)]
    fn input_horizontal(d: &Rows6<'_>, out: &mut [&mut [f32]; 6]) {
        let [o0, o1, o2, o3, o4, o5] = out;
        let n = o0.len();
        let (o1, o2, o3, o4, o5) = (
            &mut o1[..n],
            &mut o2[..n],
            &mut o3[..n],
            &mut o4[..n],
            &mut o5[..n],
        );
        let (d0, d1, d2, d3, d4, d5) = (
            &d[0][..n],
            &d[1][..n],
            &d[2][..n],
            &d[3][..n],
            &d[4][..n],
            &d[5][..n],
        );
        for t in 0..n {
            let (a, b, c, e, f, g) = (d0[t], d1[t], d2[t], d3[t], d4[t], d5[t]);
            o0[t] = 4.0 * a - 5.0 * c + f;
            o1[t] = -4.0 * (b + c) + (e + f);
            o2[t] = 4.0 * (b - c) + (f - e);
            o3[t] = 2.0 * (e - b) + (f - c);
            o4[t] = 2.0 * (b - e) + (f - c);
            o5[t] = 4.0 * b - 5.0 * e + g;
        }
    }

    #[inline(always)]
    fn output_horizontal(m: &Rows6<'_>, z: &mut [f32]) {
        let n = z.len() / 4;
        let (m0, m1, m2, m3, m4, m5) = (
            &m[0][..n],
            &m[1][..n],
            &m[2][..n],
            &m[3][..n],
            &m[4][..n],
            &m[5][..n],
        );
        for (t, zz) in z.chunks_exact_mut(4).enumerate() {
            let (s12, d12, s34, d34) = (m1[t] + m2[t], m1[t] - m2[t], m3[t] + m4[t], m3[t] - m4[t]);
            zz[0] = m0[t] + s12 + s34;
            zz[1] = d12 + 2.0 * d34;
            zz[2] = s12 + 4.0 * s34;
            zz[3] = d12 + 8.0 * d34 + m5[t];
        }
    }

    #[inline(always)]
    fn output_row(z: &Rows6<'_>, i: usize, bias: f32, row: &mut [f32]) {
        let n = row.len();
        let (z0, z1, z2, z3, z4, z5) = (
            &z[0][..n],
            &z[1][..n],
            &z[2][..n],
            &z[3][..n],
            &z[4][..n],
            &z[5][..n],
        );
        match i {
            0 => {
                for x in 0..n {
                    row[x] = (z0[x] + (z1[x] + z2[x]) + (z3[x] + z4[x])) + bias;
                }
            }
            1 => {
                for x in 0..n {
                    row[x] = ((z1[x] - z2[x]) + 2.0 * (z3[x] - z4[x])) + bias;
                }
            }
            2 => {
                for x in 0..n {
                    row[x] = ((z1[x] + z2[x]) + 4.0 * (z3[x] + z4[x])) + bias;
                }
            }
            _ => {
                for x in 0..n {
                    row[x] = ((z1[x] - z2[x]) + 8.0 * (z3[x] - z4[x]) + z5[x]) + bias;
                }
            }
        }
    }
}

/// Winograd-domain weights `U[ξ][co][ci] = (G g G^T)[k][l]`, `ξ = A·k + l`, from PyTorch-layout
/// `(c_out, c_in, 3, 3)` weights; computed in f64 and rounded once.
pub(crate) fn transform_weights<T: Tile>(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let (a, g) = (T::A, T::g());
    let plane = c_out * c_in;
    let mut u = vec![0f32; a * a * plane];
    for (i, w) in weight.chunks_exact(9).take(plane).enumerate() {
        // t = G w (A × 3), then u = t G^T (A × A).
        let mut t = [[0f64; 3]; 6];
        for (k, row) in t.iter_mut().enumerate().take(a) {
            for (b, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|r| g[k][r] * f64::from(w[r * 3 + b])).sum();
            }
        }
        for k in 0..a {
            for l in 0..a {
                let v: f64 = (0..3).map(|b| t[k][b] * g[l][b]).sum();
                u[(k * a + l) * plane + i] = v as f32;
            }
        }
    }
    u
}

/// Per-thread buffers of [`run`].
pub(crate) struct Scratch {
    /// Transformed input, `[ξ][c_in][nt]`.
    v: Vec<f32>,
    /// Products, `[ξ][c_out][nt]`.
    m: Vec<f32>,
    /// Vertically transformed rows of one piece, `[k][M · (piece + 1)]`.
    tv: Vec<f32>,
    /// Column phases of one `tv` row, `[phase][piece + 1]`.
    phases: Vec<f32>,
    /// Horizontally inverse-transformed rows of one piece, `[k][M · piece]`.
    z: Vec<f32>,
    /// A zero row (the padding).
    zero: Vec<f32>,
    /// Tiles per step (the gemm's `n`).
    step: usize,
}

/// Tiles per product `M[ξ] = U[ξ] · V[ξ]` at 256 output channels (scaled up to 8× for fewer):
/// gemm's AVX-512 micro-kernel is 64 rows high (the tiles become its rows), and `V`, `M`
/// (16 or 36 × 256 × 64 floats) stay in L2/L3. Measured with `examples/bench_convs.rs`, one
/// thread: at 256 → 256 channels, 384², 64 beat 32, 48, 96, 128, 192, 256 by 0–20 %; at 128 → 32,
/// 1536², 512 beat 64 by 20 % (256 → 128: 128 beat 64 by 3–6 %).
pub(crate) const TARGET_TILES: usize = 64;

impl Scratch {
    pub(crate) fn new<T: Tile>(c_in: usize, c_out: usize, width: usize) -> Self {
        let tw = width.div_ceil(T::M).max(1);
        // Fewer output channels: smaller products, amortised over more tiles.
        let step = TARGET_TILES * (256 / c_out.max(1)).clamp(1, 8);
        let piece = step.min(tw);
        let xi = T::A * T::A;
        Self {
            v: vec![0f32; xi * c_in * step],
            m: vec![0f32; xi * c_out * step],
            tv: vec![0f32; T::A * T::M * (piece + 1)],
            phases: vec![0f32; T::M * (piece + 1)],
            z: vec![0f32; T::A * T::M * piece],
            zero: vec![0f32; width],
            step,
        }
    }
}

/// The tile-row pieces of the flat tile range `t0 .. t0 + nt` (tile rows of `tw` tiles):
/// `(tile row, first tile column, tiles, offset in the step)`.
fn pieces(t0: usize, nt: usize, tw: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let end = t0 + nt;
    (t0 / tw..end.div_ceil(tw)).map(move |tr| {
        let c0 = if tr == t0 / tw { t0 % tw } else { 0 };
        let c1 = (end - tr * tw).min(tw);
        (tr, c0, c1 - c0, tr * tw + c0 - t0)
    })
}

/// `A` consecutive slices of length `len` at stride `stride` in `buf` (the rest empty).
#[inline(always)]
fn rows_mut(buf: &mut [f32], a: usize, stride: usize, len: usize) -> [&mut [f32]; 6] {
    let mut it = buf.chunks_mut(stride.max(1)).take(a);
    std::array::from_fn(|_| it.next().map(|c| &mut c[..len]).unwrap_or_default())
}

/// Convolves `job` (its `out_rows`) into `out` (one slice per output channel, `out_rows × width`)
/// with the weights `u` from [`transform_weights`]; single-threaded except inside gemm
/// (`gemm_threads`).
pub(crate) fn run<T: Tile>(
    job: &Conv3x3Job<'_>,
    u: &[f32],
    out: &mut [&mut [f32]],
    s: &mut Scratch,
    gemm_threads: usize,
) {
    let (c_in, c_out, width) = (job.c_in, job.c_out, job.width);
    let rows = job.out_rows.len();
    let tw = width.div_ceil(T::M);
    let total = rows.div_ceil(T::M) * tw;
    let xi = T::A * T::A;
    let mut t0 = 0;
    while t0 < total {
        let nt = s.step.min(total - t0);
        super::simd(InputTransform::<T> {
            job,
            t0,
            nt,
            tw,
            s: &mut *s,
            tile: std::marker::PhantomData,
        });
        for x in 0..xi {
            sgemm(
                &mut s.m[x * c_out * nt..][..c_out * nt],
                nt,
                1,
                false,
                MatRef::row_major(&u[x * c_out * c_in..][..c_out * c_in], c_out, c_in),
                MatRef::row_major(&s.v[x * c_in * nt..][..c_in * nt], c_in, nt),
                gemm_threads,
            );
        }
        super::simd(OutputTransform::<T> {
            job,
            t0,
            nt,
            tw,
            s: &mut *s,
            out: &mut *out,
            tile: std::marker::PhantomData,
        });
        t0 += nt;
    }
}

/// Input transform of one step: tiles `t0 .. t0 + nt` of the flattened tile grid.
struct InputTransform<'a, 'j, T> {
    job: &'a Conv3x3Job<'j>,
    t0: usize,
    nt: usize,
    tw: usize,
    s: &'a mut Scratch,
    tile: std::marker::PhantomData<T>,
}

impl<T: Tile> pulp::WithSimd for InputTransform<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            job, t0, nt, tw, s, ..
        } = self;
        let (m, a, c_in, width) = (T::M, T::A, job.c_in, job.width);
        let Scratch {
            v, tv, phases, zero, ..
        } = s;
        for (tr, ts, ns, off) in pieces(t0, nt, tw) {
            // Local padded column c ↔ image column x = m·ts + c − 1, c < m·(ns + 1).
            let wp = m * (ns + 1);
            let c_lo = if ts == 0 { 1 } else { 0 };
            let c_hi = wp.min(width + 1 - m * ts);
            let (x_lo, x_hi) = (m * ts + c_lo - 1, m * ts + c_hi - 1);
            let y_top = (job.out_rows.start + m * tr) as isize - 1;
            for ci in 0..c_in {
                let rows: Rows6<'_> = std::array::from_fn(|i| {
                    if i < a {
                        &job.input_row(ci, y_top + i as isize).unwrap_or(zero)[x_lo..x_hi]
                    } else {
                        &[][..]
                    }
                });
                {
                    let mut t = rows_mut(tv, a, wp, wp);
                    for row in t.iter_mut().take(a) {
                        row[..c_lo].fill(0.0);
                        row[c_hi..].fill(0.0);
                    }
                    let mut inner: [&mut [f32]; 6] = t.map(|row| {
                        let len = row.len();
                        &mut row[c_lo.min(len)..c_hi.min(len)]
                    });
                    if job.input_relu {
                        T::input_vertical::<true>(&rows, &mut inner);
                    } else {
                        T::input_vertical::<false>(&rows, &mut inner);
                    }
                }
                for k in 0..a {
                    let tvk = &tv[k * wp..][..wp];
                    // Split by column phase: phases[p][t] = tvk[m·t + p], t ≤ ns.
                    {
                        let ph = rows_mut(phases, m, ns + 1, ns + 1);
                        for (t, group) in tvk.chunks_exact(m).enumerate() {
                            for (p, &val) in group.iter().enumerate() {
                                ph[p][t] = val;
                            }
                        }
                    }
                    // Column j of tile t is phases[j mod m][t + j div m].
                    let d: Rows6<'_> = std::array::from_fn(|j| {
                        if j < a {
                            &phases[(j % m) * (ns + 1) + j / m..][..ns]
                        } else {
                            &[][..]
                        }
                    });
                    let base = (k * a * c_in + ci) * nt + off;
                    let mut o = rows_mut(&mut v[base..], a, c_in * nt, ns);
                    T::input_horizontal(&d, &mut o);
                }
            }
        }
    }
}

/// Output transform and epilogue of one step.
struct OutputTransform<'a, 'j, 'o, T> {
    job: &'a Conv3x3Job<'j>,
    t0: usize,
    nt: usize,
    tw: usize,
    s: &'a mut Scratch,
    out: &'a mut [&'o mut [f32]],
    tile: std::marker::PhantomData<T>,
}

impl<T: Tile> pulp::WithSimd for OutputTransform<'_, '_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            job,
            t0,
            nt,
            tw,
            s,
            out,
            ..
        } = self;
        let (m, a, c_out, width) = (T::M, T::A, job.c_out, job.width);
        let rows = job.out_rows.len();
        let Scratch { m: prod, z, .. } = s;
        for (co, plane) in out.iter_mut().enumerate() {
            let bias = job.bias.map_or(0.0, |b| b[co]);
            for (tr, ts, ns, off) in pieces(t0, nt, tw) {
                let zs = m * ns;
                let (x0, x1) = (m * ts, (m * (ts + ns)).min(width));
                for k in 0..a {
                    let base = (k * a * c_out + co) * nt + off;
                    let ml: Rows6<'_> = std::array::from_fn(|l| {
                        if l < a {
                            &prod[base + l * c_out * nt..][..ns]
                        } else {
                            &[][..]
                        }
                    });
                    T::output_horizontal(&ml, &mut z[k * zs..][..zs]);
                }
                let zk: Rows6<'_> =
                    std::array::from_fn(|k| if k < a { &z[k * zs..][..x1 - x0] } else { &[][..] });
                for i in 0..m {
                    let local = m * tr + i;
                    if local >= rows {
                        break;
                    }
                    let row = &mut plane[local * width + x0..local * width + x1];
                    T::output_row(&zk, i, bias, row);
                    finish_row(job, co, job.out_rows.start + local, x0, row);
                }
            }
        }
    }
}
