//! Safe wrapper around the `gemm` crate's f32 matrix product (the only `unsafe` in this crate's
//! kernels): every view is bounds-checked before the call.

#![allow(unsafe_code)]

/// A strided, read-only view of a `rows × cols` f32 matrix stored in `data`: element `(i, j)` is
/// `data[i · row_stride + j · col_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major matrix.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }
}

/// Number of elements a `rows × cols` view with these strides reaches (`None` on overflow).
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

fn fits(view: &MatRef<'_>) -> bool {
    extent(view.rows, view.cols, view.row_stride, view.col_stride)
        .is_some_and(|n| n <= view.data.len() && n <= isize::MAX as usize)
}

/// Whether distinct `(i, j)` of a `rows × cols` view with these strides are distinct elements
/// (required for the destination: gemm may write it from several threads).
fn no_overlap(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    rows <= 1 && (cols <= 1 || col_stride >= 1)
        || cols <= 1 && row_stride >= 1
        || col_stride >= 1 && row_stride >= col_stride * cols
        || row_stride >= 1 && col_stride >= row_stride * rows
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` being `a.rows × b.cols` with strides
/// `dst_row_stride`, `dst_col_stride` inside `dst`. `threads > 1` lets gemm split the work on the
/// rayon pool.
///
/// # Panics
/// On inconsistent shapes or views that do not fit their slices (a bug in the caller).
pub(crate) fn sgemm(
    dst: &mut [f32],
    dst_row_stride: usize,
    dst_col_stride: usize,
    accumulate: bool,
    a: MatRef<'_>,
    b: MatRef<'_>,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "sgemm: inner dimensions differ");
    assert!(fits(&a) && fits(&b), "sgemm: operand view out of bounds");
    // gemm takes isize strides (and negates some internally): every stride, also those of length-1
    // dimensions that `fits` does not reach, must convert losslessly.
    assert!(
        [
            a.row_stride,
            a.col_stride,
            b.row_stride,
            b.col_stride,
            dst_row_stride,
            dst_col_stride
        ]
        .iter()
        .all(|&s| s <= isize::MAX as usize),
        "sgemm: stride beyond isize::MAX"
    );
    let dst_extent = extent(m, n, dst_row_stride, dst_col_stride);
    assert!(
        dst_extent.is_some_and(|e| e <= dst.len() && e <= isize::MAX as usize)
            && no_overlap(m, n, dst_row_stride, dst_col_stride),
        "sgemm: destination view out of bounds or overlapping"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_row_stride + j * dst_col_stride] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views were checked above to lie inside their slices (largest reached index
    // < len; all strides non-negative and ≤ isize::MAX), `dst` is borrowed mutably so it cannot alias
    // `a` or `b`, and its elements are pairwise distinct so gemm's parallel writes do not race.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_col_stride as isize,
            dst_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
