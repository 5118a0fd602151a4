//! Kernels against Candle's generic ops (`conv2d`, `conv_transpose2d`, element-wise) on random,
//! non-square inputs; accuracy against the same ops in f64.

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::test_util::rel_diff as rel_err;

const ALGORITHMS: [Conv3x3Algorithm; 3] = [
    Conv3x3Algorithm::Winograd2,
    Conv3x3Algorithm::Winograd4,
    Conv3x3Algorithm::Im2col,
];

/// Deterministic pseudo-random values, uniform with standard deviation `scale` (a fixed LCG, so
/// the tests see the same data on every run).
fn randn(shape: &[usize], scale: f64) -> Tensor {
    thread_local! {
        // Per test thread: every test sees the same sequence whatever the scheduling.
        static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
    }
    let mut state = STATE.with(|s| s.get());
    let n: usize = shape.iter().product();
    let half_width = scale * 3f64.sqrt();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            ((2.0 * unit - 1.0) * half_width) as f32
        })
        .collect();
    STATE.with(|s| s.set(state));
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Candle reference of `conv3x3` with its options, in the tensors' dtype.
fn reference_conv3x3(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    input_relu: bool,
    output_relu: bool,
    residuals: &[&Tensor],
) -> Tensor {
    let x = if input_relu { x.relu().unwrap() } else { x.clone() };
    let mut y = x.conv2d(w, 1, 1, 1, 1).unwrap();
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
    }
    for r in residuals {
        y = (*r + y).unwrap();
    }
    if output_relu {
        y.relu().unwrap()
    } else {
        y
    }
}

#[test]
fn conv3x3_matches_candle() {
    // (batch, c_in, c_out, h, w): odd sizes, 1×1 images, widths below and above a Winograd
    // segment, heights not multiples of the tile.
    for &(b, ci, co, h, w) in &[
        (2, 5, 7, 9, 13),
        (1, 3, 4, 1, 1),
        (1, 8, 3, 17, 6),
        (1, 16, 24, 37, 29),
        (1, 32, 16, 6, 203),
        (1, 24, 8, 211, 5),
    ] {
        let x = randn(&[b, ci, h, w], 1.0);
        let wt = randn(&[co, ci, 3, 3], 1.0 / (9.0 * ci as f64).sqrt());
        let bias = randn(&[co], 1.0);
        let r1 = randn(&[b, co, h, w], 1.0);
        let r2 = randn(&[b, co, h, w], 1.0);
        for algorithm in ALGORITHMS {
            for (input_relu, output_relu, residuals) in [
                (false, false, vec![]),
                (true, true, vec![]),
                (true, false, vec![&r1, &r2]),
            ] {
                let ours = conv3x3(
                    &x,
                    &wt,
                    Some(&bias),
                    &Conv3x3Options {
                        algorithm,
                        input_relu,
                        output_relu,
                        residuals: &residuals,
                    },
                )
                .unwrap();
                let reference = reference_conv3x3(&x, &wt, Some(&bias), input_relu, output_relu, &residuals);
                let e = rel_err(&ours, &reference);
                let tol = if algorithm == Conv3x3Algorithm::Winograd4 {
                    1e-4
                } else {
                    1e-5
                };
                assert!(e <= tol, "{algorithm:?} {:?}: {e}", x.dims());
            }
        }
        // No bias, non-contiguous input.
        let xt = x
            .transpose(2, 3)
            .unwrap()
            .contiguous()
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        let ours = conv3x3(&xt, &wt, None, &Conv3x3Options::default()).unwrap();
        assert!(rel_err(&ours, &x.conv2d(&wt, 1, 1, 1, 1).unwrap()) <= 1e-5);
    }
}

#[test]
fn conv3x3_rejects_bad_shapes() {
    let x = randn(&[1, 4, 5, 6], 1.0);
    let w = randn(&[3, 5, 3, 3], 1.0);
    assert!(conv3x3(&x, &w, None, &Conv3x3Options::default()).is_err());
    let w = randn(&[3, 4, 3, 3], 1.0);
    let bad_res = randn(&[1, 3, 5, 7], 1.0);
    let opts = Conv3x3Options {
        residuals: &[&bad_res],
        ..Default::default()
    };
    assert!(conv3x3(&x, &w, None, &opts).is_err());
    assert!(conv3x3(&x, &w, Some(&randn(&[4], 1.0)), &Conv3x3Options::default()).is_err());
}

/// Rounding error of each algorithm against the f64 convolution, on a 256-channel layer (the
/// decoder's width) with unit-variance inputs and He-scaled weights.
#[test]
fn conv3x3_rounding_error() {
    let (ci, co, h, w) = (256, 32, 20, 28);
    let x = randn(&[1, ci, h, w], 1.0);
    let wt = randn(&[co, ci, 3, 3], (2.0 / (9.0 * ci as f64)).sqrt());
    let exact = x
        .to_dtype(DType::F64)
        .unwrap()
        .conv2d(&wt.to_dtype(DType::F64).unwrap(), 1, 1, 1, 1)
        .unwrap();
    let candle = rel_err(&x.conv2d(&wt, 1, 1, 1, 1).unwrap(), &exact);
    let err = |algorithm| {
        let opts = Conv3x3Options {
            algorithm,
            ..Default::default()
        };
        rel_err(&conv3x3(&x, &wt, None, &opts).unwrap(), &exact)
    };
    let (im2col, f2, f4) = (
        err(Conv3x3Algorithm::Im2col),
        err(Conv3x3Algorithm::Winograd2),
        err(Conv3x3Algorithm::Winograd4),
    );
    println!("max rel error vs f64: candle {candle:.2e} im2col {im2col:.2e} F(2,3) {f2:.2e} F(4,3) {f4:.2e}");
    // The default keeps the error of a direct f32 convolution (measured ≈ 1×–1.5× of it).
    assert!(
        f2 <= 3.0 * candle.max(im2col),
        "F(2,3) {f2} vs direct {candle}/{im2col}"
    );
    assert!(im2col <= 3.0 * candle);
    // F(4,3) is documented at about 20× the direct error (measured 9e-6 to 1e-5 here).
    assert!(f4 <= 2e-5, "F(4,3) {f4}");
}

#[test]
fn conv_transpose_matches_candle() {
    for &(b, ci, co, h, w, with_bias) in &[
        (2, 5, 3, 4, 7, true),
        (1, 3, 2, 1, 1, false),
        (1, 16, 8, 13, 37, true),
        (1, 8, 4, 300, 3, false),
    ] {
        // PyTorch layout (c_in, c_out, 2, 2) → (4·c_out, c_in), row o·4 + dy·2 + dx.
        let wt = randn(&[ci, co, 2, 2], 1.0);
        let bias = randn(&[co], 1.0);
        let x = randn(&[b, ci, h, w], 1.0);
        let packed = wt.reshape((ci, co * 4)).unwrap().t().unwrap();
        let bias_opt = with_bias.then_some(&bias);
        let ours = conv_transpose2x2(&x, &packed, bias_opt).unwrap();
        let mut reference = x.conv_transpose2d(&wt, 0, 0, 2, 1).unwrap();
        if with_bias {
            reference = reference
                .broadcast_add(&bias.reshape((1, co, 1, 1)).unwrap())
                .unwrap();
        }
        assert_eq!(ours.dims(), &[b, co, 2 * h, 2 * w]);
        assert!(rel_err(&ours, &reference) <= 1e-5, "{:?}", x.dims());
    }
}

#[test]
fn conv1x1_matches_candle() {
    let w = randn(&[4, 6, 1, 1], 1.0);
    let bias = randn(&[4], 1.0);
    let x = randn(&[2, 6, 3, 5], 1.0);
    let reference = x
        .conv2d(&w, 0, 1, 1, 1)
        .unwrap()
        .broadcast_add(&bias.reshape((1, 4, 1, 1)).unwrap())
        .unwrap();
    let w2 = w.reshape((4, 6)).unwrap();
    assert!(rel_err(&conv1x1(&x, &w2, Some(&bias)).unwrap(), &reference) <= 1e-5);
    let reference = x.conv2d(&w, 0, 1, 1, 1).unwrap();
    assert!(rel_err(&conv1x1(&x, &w2, None).unwrap(), &reference) <= 1e-5);
    assert!(conv1x1(&x, &randn(&[4, 5], 1.0), None).is_err());
}

/// Random weights of a pre-activation residual unit with `c` channels (He-scaled convolutions).
struct UnitWeights {
    w1: Tensor,
    w2: Tensor,
    b1: Tensor,
    b2: Tensor,
}

impl UnitWeights {
    fn random(c: usize) -> Self {
        let w1 = randn(&[c, c, 3, 3], 1.0 / (9.0 * c as f64).sqrt());
        let w2 = randn(&[c, c, 3, 3], 1.0 / (9.0 * c as f64).sqrt());
        let (b1, b2) = (randn(&[c], 1.0), randn(&[c], 1.0));
        Self { w1, w2, b1, b2 }
    }

    fn unit(&self) -> ResidualUnit<'_> {
        ResidualUnit {
            conv1_weight: &self.w1,
            conv1_bias: Some(&self.b1),
            conv2_weight: &self.w2,
            conv2_bias: Some(&self.b2),
        }
    }

    /// `skip + x + conv2(relu(conv1(relu(x))))` with Candle's ops.
    fn reference(&self, x: &Tensor, skip: Option<&Tensor>) -> Tensor {
        let t = reference_conv3x3(x, &self.w1, Some(&self.b1), true, true, &[]);
        let residuals: Vec<&Tensor> = [Some(x), skip].into_iter().flatten().collect();
        reference_conv3x3(&t, &self.w2, Some(&self.b2), false, false, &residuals)
    }
}

#[test]
fn residual_block_matches_candle() {
    // Heights around the band size and the thread split; widths around the Winograd segment.
    for &(c, h, w) in &[(8, 5, 7), (8, 27, 13), (16, 41, 9), (4, 1, 3), (8, 16, 230)] {
        let x = randn(&[1, c, h, w], 1.0);
        let skip = randn(&[1, c, h, w], 1.0);
        let weights = UnitWeights::random(c);
        let unit = weights.unit();
        let sum = weights.reference(&x, Some(&skip));
        let sum_no_skip = weights.reference(&x, None);
        let co = 5;
        let w1x1 = randn(&[co, c], 1.0);
        let bt = randn(&[co], 1.0);
        let wt = randn(&[c, co, 2, 2], 1.0);
        let packed = wt.reshape((c, co * 4)).unwrap().t().unwrap();
        let tails = [
            (ResidualTail::None, sum.clone()),
            (
                ResidualTail::Conv1x1 {
                    weight: &w1x1,
                    bias: Some(&bt),
                },
                sum.conv2d(&w1x1.reshape((co, c, 1, 1)).unwrap(), 0, 1, 1, 1)
                    .unwrap()
                    .broadcast_add(&bt.reshape((1, co, 1, 1)).unwrap())
                    .unwrap(),
            ),
            (
                ResidualTail::ConvTranspose2x2 {
                    weight: &packed,
                    bias: None,
                },
                sum.conv_transpose2d(&wt, 0, 0, 2, 1).unwrap(),
            ),
        ];
        for algorithm in ALGORITHMS {
            for (tail, reference) in &tails {
                let ours = residual_block(&x, &unit, Some(&skip), tail, algorithm).unwrap();
                let e = rel_err(&ours, reference);
                assert!(e <= 1e-4, "{algorithm:?} {tail:?} {:?}: {e}", x.dims());
            }
            let ours = residual_block(&x, &unit, None, &ResidualTail::None, algorithm).unwrap();
            assert!(rel_err(&ours, &sum_no_skip) <= 1e-4);
        }
    }
}

#[test]
fn depth_head_tail_matches_candle() {
    for &(c, c2, h, w) in &[(8, 4, 5, 7), (6, 3, 23, 11), (4, 2, 1, 2)] {
        let x = randn(&[1, c, h, w], 1.0);
        let wt = randn(&[c, c, 2, 2], 0.5);
        let bt = randn(&[c], 1.0);
        let wc = randn(&[c2, c, 3, 3], 1.0 / (9.0 * c as f64).sqrt());
        let bc = randn(&[c2], 1.0);
        let wo = randn(&[1, c2], 1.0);
        let bo = randn(&[1], 1.0);
        let packed = wt.reshape((c, c * 4)).unwrap().t().unwrap();
        let tail = HeadTail {
            deconv_weight: &packed,
            deconv_bias: Some(&bt),
            conv_weight: &wc,
            conv_bias: Some(&bc),
            out_weight: &wo,
            out_bias: Some(&bo),
        };
        let y = x
            .conv_transpose2d(&wt, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&bt.reshape((1, c, 1, 1)).unwrap())
            .unwrap();
        let y = reference_conv3x3(&y, &wc, Some(&bc), false, true, &[]);
        let reference = y
            .conv2d(&wo.reshape((1, c2, 1, 1)).unwrap(), 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bo.reshape((1, 1, 1, 1)).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        for algorithm in ALGORITHMS {
            let ours = depth_head_tail(&x, &tail, algorithm).unwrap();
            assert_eq!(ours.dims(), &[1, 1, 2 * h, 2 * w]);
            let e = rel_err(&ours, &reference);
            assert!(e <= 1e-4, "{algorithm:?} {:?}: {e}", x.dims());
        }
    }
}

#[test]
fn f64_tensors_take_the_generic_path() {
    let x = randn(&[1, 3, 6, 5], 1.0).to_dtype(DType::F64).unwrap();
    let w = randn(&[2, 3, 3, 3], 1.0).to_dtype(DType::F64).unwrap();
    assert!(!supported(&x));
    let ours = conv3x3(&x, &w, None, &Conv3x3Options::default()).unwrap();
    assert_eq!(ours.dtype(), DType::F64);
    assert!(rel_err(&ours, &x.conv2d(&w, 1, 1, 1, 1).unwrap()) <= 1e-12);
}

/// The streamed kernels split the rows into one chunk per task (by thread count) and each chunk into
/// bands: the result must not depend on either beyond rounding. Batch 2, an odd width, a height of
/// several residual bands (8 rows) and of two head bands (32 rows) in one chunk on one thread, a
/// transposed-convolution tail with a bias, a head with two output channels and no output bias.
#[test]
fn fused_kernels_for_every_thread_count() {
    let (b, c, c2, c3, h, w) = (2, 8, 4, 2, 45, 11);
    let x = randn(&[b, c, h, w], 1.0);
    let skip = randn(&[b, c, h, w], 1.0);
    let weights = UnitWeights::random(c);
    let unit = weights.unit();
    let wt = randn(&[c, c, 2, 2], 0.5);
    let bt = randn(&[c], 1.0);
    let packed = wt.reshape((c, c * 4)).unwrap().t().unwrap();
    let up = |t: &Tensor| {
        t.conv_transpose2d(&wt, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&bt.reshape((1, c, 1, 1)).unwrap())
            .unwrap()
    };
    let block_reference = up(&weights.reference(&x, Some(&skip)));
    let block_tail = ResidualTail::ConvTranspose2x2 {
        weight: &packed,
        bias: Some(&bt),
    };

    let wc = randn(&[c2, c, 3, 3], 1.0 / (9.0 * c as f64).sqrt());
    let bc = randn(&[c2], 1.0);
    let wo = randn(&[c3, c2], 1.0);
    let head_reference = reference_conv3x3(&up(&x), &wc, Some(&bc), false, true, &[])
        .conv2d(&wo.reshape((c3, c2, 1, 1)).unwrap(), 0, 1, 1, 1)
        .unwrap()
        .relu()
        .unwrap();
    let head = HeadTail {
        deconv_weight: &packed,
        deconv_bias: Some(&bt),
        conv_weight: &wc,
        conv_bias: Some(&bc),
        out_weight: &wo,
        out_bias: None,
    };

    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for algorithm in ALGORITHMS {
                let ours = residual_block(&x, &unit, Some(&skip), &block_tail, algorithm).unwrap();
                let e = rel_err(&ours, &block_reference);
                assert!(e <= 1e-4, "residual block, {threads} threads, {algorithm:?}: {e}");
                let ours = depth_head_tail(&x, &head, algorithm).unwrap();
                assert_eq!(ours.dims(), &[b, c3, 2 * h, 2 * w]);
                let e = rel_err(&ours, &head_reference);
                assert!(e <= 1e-4, "head, {threads} threads, {algorithm:?}: {e}");
            }
        });
    }
}

/// 256 output channels (several Winograd steps per run, tile rows split across steps) on a wide,
/// short, odd-sized image.
#[test]
fn conv3x3_with_many_output_channels() {
    let (ci, co, h, w) = (16, 256, 7, 301);
    let x = randn(&[1, ci, h, w], 1.0);
    let wt = randn(&[co, ci, 3, 3], 1.0 / (9.0 * ci as f64).sqrt());
    let bias = randn(&[co], 1.0);
    let reference = reference_conv3x3(&x, &wt, Some(&bias), false, false, &[]);
    for algorithm in ALGORITHMS {
        let options = Conv3x3Options {
            algorithm,
            ..Default::default()
        };
        let e = rel_err(&conv3x3(&x, &wt, Some(&bias), &options).unwrap(), &reference);
        let tol = if algorithm == Conv3x3Algorithm::Winograd4 {
            1e-4
        } else {
            1e-5
        };
        assert!(e <= tol, "{algorithm:?}: {e}");
    }
}

/// Zero-sized dimensions are errors, never panics.
#[test]
fn empty_tensors_are_errors() {
    let x = randn(&[1, 0, 4, 5], 1.0);
    assert!(conv_transpose2x2(&x, &randn(&[8, 0], 1.0), None).is_err());
    assert!(conv1x1(&x, &randn(&[3, 0], 1.0), None).is_err());
    assert!(conv3x3(&x, &randn(&[3, 0, 3, 3], 1.0), None, &Conv3x3Options::default()).is_err());
    let x = randn(&[1, 4, 0, 5], 1.0);
    assert!(conv3x3(&x, &randn(&[3, 4, 3, 3], 1.0), None, &Conv3x3Options::default()).is_err());
    let w3 = randn(&[4, 4, 3, 3], 1.0);
    let unit = ResidualUnit {
        conv1_weight: &w3,
        conv1_bias: None,
        conv2_weight: &w3,
        conv2_bias: None,
    };
    assert!(residual_block(&x, &unit, None, &ResidualTail::None, Conv3x3Algorithm::default()).is_err());
    let (packed, wc, wo) = (
        randn(&[16, 4], 1.0),
        randn(&[2, 4, 3, 3], 1.0),
        randn(&[1, 2], 1.0),
    );
    let head = HeadTail {
        deconv_weight: &packed,
        deconv_bias: None,
        conv_weight: &wc,
        conv_bias: None,
        out_weight: &wo,
        out_bias: None,
    };
    assert!(depth_head_tail(&x, &head, Conv3x3Algorithm::default()).is_err());
}
