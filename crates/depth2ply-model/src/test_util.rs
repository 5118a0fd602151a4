//! Comparisons shared by the unit tests.

use candle_core::{DType, Tensor};

/// `max |t|` over all elements, in f64.
fn max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// `max |a − b|` over all elements (same shapes), in f64.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    max_abs(&(&a - &b).unwrap())
}

/// `max |a − b| / max |b|`: the difference relative to the scale of the reference `b`.
pub(crate) fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs_diff(a, b) / max_abs(b).max(f64::MIN_POSITIVE)
}
