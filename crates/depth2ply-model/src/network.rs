//! The whole Depth Pro network on a `(b, 3, 1536, 1536)` tensor, split into stages that can be run
//! and timed separately, plus the convolution layers shared by the encoder, decoder and FOV network.
//!
//! Checkpoint keys follow Apple's `depth_pro.pt` verbatim (`encoder.*`, `decoder.*`, `head.*`,
//! `fov.*`); a Hugging Face checkpoint is renamed to them by the weight loader.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::DepthProConfig;
use crate::decoder::{Decoder, DecoderOutput, DepthHead};
use crate::encoder::{DepthProEncoder, Encodings, PatchFeatures, Pyramid};
use crate::fov::FovNetwork;
use crate::kernels::{self, Conv3x3Algorithm, Conv3x3Options};

/// A PyTorch `nn.Conv2d` (groups 1, square kernel, symmetric padding, dilation 1).
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Reads `weight` `(c_out, c_in, k, k)` and, when `bias`, `bias` `(c_out)`.
    pub(crate) fn load(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_out, c_in, kernel, kernel), "weight")?,
            bias: if bias { Some(vb.get(c_out, "bias")?) } else { None },
            stride,
            padding,
        })
    }

    /// `(c_out, c_in, k, k)`.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `(c_out)`, if the layer has a bias.
    pub(crate) fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether this is a 3×3 / stride 1 / padding 1 convolution (the ones [`Conv2d::forward_3x3`]
    /// computes).
    fn is_3x3_same(&self) -> bool {
        self.weight.dims()[2..] == [3, 3] && self.stride == 1 && self.padding == 1
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.is_3x3_same() {
            return self.forward_3x3(x, &Conv3x3Options::default());
        }
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }

    /// A 3×3 / stride 1 / padding 1 layer with fused element-wise work ([`kernels::conv3x3`]).
    pub(crate) fn forward_3x3(&self, x: &Tensor, options: &Conv3x3Options<'_>) -> Result<Tensor> {
        if !self.is_3x3_same() {
            candle_core::bail!(
                "forward_3x3 on a {:?} convolution with stride {} and padding {}",
                self.weight.dims(),
                self.stride,
                self.padding
            );
        }
        kernels::conv3x3(x, &self.weight, self.bias.as_ref(), options)
    }
}

/// A 1×1 convolution (stride 1, no padding): one matmul per image, `(c_out, c_in) @ (c_in, h·w)`
/// ([`kernels::conv1x1`]).
#[derive(Debug, Clone)]
pub(crate) struct Conv1x1 {
    /// `(c_out, c_in)`.
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv1x1 {
    /// Reads `weight` `(c_out, c_in, 1, 1)` and, when `bias`, `bias` `(c_out)`.
    pub(crate) fn load(c_in: usize, c_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((c_out, c_in, 1, 1), "weight")?.reshape((c_out, c_in))?,
            bias: if bias { Some(vb.get(c_out, "bias")?) } else { None },
        })
    }

    /// `(c_out, c_in)`.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `(c_out)`, if the layer has a bias.
    pub(crate) fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::conv1x1(x, &self.weight, self.bias.as_ref())
    }
}

/// A `nn.ConvTranspose2d` with kernel 2, stride 2, padding 0: every input pixel writes its own 2×2
/// output block, `out[o, 2y+dy, 2x+dx] = Σ_c in[c, y, x] · W[c, o, dy, dx] (+ b[o])`
/// ([`kernels::conv_transpose2x2`]: one gemm written straight into the interleaved output on the
/// CPU; Candle's generic `conv_transpose2d` is a direct loop, several times slower).
#[derive(Debug, Clone)]
pub(crate) struct ConvTranspose2x2 {
    /// `(c_out·4, c_in)`: row `o·4 + dy·2 + dx`.
    weight: Tensor,
    bias: Option<Tensor>,
}

impl ConvTranspose2x2 {
    /// Reads `weight` `(c_in, c_out, 2, 2)` and, when `bias`, `bias` `(c_out)`.
    pub(crate) fn load(c_in: usize, c_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb
            .get((c_in, c_out, 2, 2), "weight")?
            .reshape((c_in, c_out * 4))?
            .t()?
            .contiguous()?;
        Ok(Self {
            weight,
            bias: if bias { Some(vb.get(c_out, "bias")?) } else { None },
        })
    }

    /// `(c_out·4, c_in)`, row `o·4 + dy·2 + dx`.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `(c_out)`, if the layer has a bias.
    pub(crate) fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The single transposed convolution equal to `then(self(x))` (no non-linearity between):
    /// `W'[(o', dy, dx), c] = Σ_o then[o', o] · W[(o, dy, dx), c]`, `b' = then_b + then · b`,
    /// computed in f64 on the CPU and rounded once (one rounding instead of the two of the
    /// separate layers), then moved back to this layer's device and dtype.
    pub(crate) fn then_conv1x1(&self, then: &Conv1x1) -> Result<Self> {
        let (device, dtype) = (self.weight.device().clone(), self.weight.dtype());
        let f64_cpu = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F64);
        let (rows4, c_in) = self.weight.dims2()?;
        let c_mid = rows4 / 4;
        let (c_out, _) = then.weight.dims2()?;
        // (c_mid, 4·c_in) with column (dy·2 + dx)·c_in + c.
        let w = f64_cpu(&self.weight)?
            .reshape((c_mid, 4, c_in))?
            .reshape((c_mid, 4 * c_in))?;
        let composed = f64_cpu(&then.weight)?.matmul(&w)?.reshape((c_out * 4, c_in))?;
        let mut bias = then.bias.as_ref().map(f64_cpu).transpose()?;
        if let Some(b) = &self.bias {
            let carried = f64_cpu(&then.weight)?
                .matmul(&f64_cpu(b)?.reshape((c_mid, 1))?)?
                .reshape(c_out)?;
            bias = Some(match bias {
                Some(tb) => (tb + carried)?,
                None => carried,
            });
        }
        let back = |t: Tensor| t.to_dtype(dtype)?.to_device(&device);
        Ok(Self {
            weight: back(composed)?,
            bias: bias.map(back).transpose()?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::conv_transpose2x2(x, &self.weight, self.bias.as_ref())
    }
}

/// Output of [`DepthProNetwork::forward`].
#[derive(Debug, Clone)]
pub struct NetworkOutput {
    /// Canonical inverse depth `(b, 1, 1536, 1536)`, ≥ 0: metric inverse depth (1/m) times `f_px / W`;
    /// [`crate::preprocess::postprocess`] converts it to metres.
    pub canonical_inverse_depth: Tensor,
    /// Horizontal field of view in degrees `(b, 1, 1, 1)`, when the FOV network was run.
    pub fov_deg: Option<Tensor>,
}

/// The Depth Pro network (Apple `DepthPro` module): encoder, decoder, depth head and optional FOV
/// network.
#[derive(Debug, Clone)]
pub struct DepthProNetwork {
    config: DepthProConfig,
    encoder: DepthProEncoder,
    decoder: Decoder,
    head: DepthHead,
    fov: Option<FovNetwork>,
    window_batch: usize,
}

impl DepthProNetwork {
    /// Default number of pyramid windows run through the patch ViT at once (35 = 5 · 7). Bounds the
    /// attention scores to `7 · 16 · 577² · 4 B ≈ 149 MB` for ViT-L in f32.
    pub const DEFAULT_WINDOW_BATCH: usize = 7;

    /// Builds the network from Apple-named weights under `vb` (root of the checkpoint). The config
    /// must be valid ([`DepthProConfig::validate`]); a wrong shape in the checkpoint is a Candle
    /// shape-mismatch error naming the tensor.
    pub fn load(config: &DepthProConfig, vb: VarBuilder) -> Result<Self> {
        let fov = match &config.fov_encoder {
            Some(vit) => Some(FovNetwork::load(config, vit, vb.pp("fov"))?),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            encoder: DepthProEncoder::load(config, vb.pp("encoder"))?,
            decoder: Decoder::load(config, vb.pp("decoder"))?,
            head: DepthHead::load(config, vb.pp("head"))?,
            fov,
            window_batch: Self::DEFAULT_WINDOW_BATCH,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &DepthProConfig {
        &self.config
    }

    /// Sets how many of the 35 windows the patch ViT processes at once (≥ 1; larger uses more memory
    /// and may be faster on a GPU).
    pub fn set_window_batch(&mut self, windows: usize) {
        self.window_batch = windows.max(1);
    }

    /// Windows per patch-ViT batch.
    pub fn window_batch(&self) -> usize {
        self.window_batch
    }

    /// Chooses how the decoder's and head's 3×3 convolutions run on the CPU. The default,
    /// [`Conv3x3Algorithm::Winograd2`], has the rounding error of a direct convolution;
    /// [`Conv3x3Algorithm::Winograd4`] is faster with about 20× that error (≈ 1e-5 relative per
    /// layer; enough to exceed the 1e-4 final-depth parity tolerance on the tiny fixture). Other
    /// devices always use Candle's direct convolution.
    pub fn set_conv3x3_algorithm(&mut self, algorithm: Conv3x3Algorithm) {
        self.decoder.set_conv3x3_algorithm(algorithm);
        self.head.set_conv3x3_algorithm(algorithm);
    }

    /// The encoder (patch + image ViTs and neck).
    pub fn encoder(&self) -> &DepthProEncoder {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The FOV network, if the config has one.
    pub fn fov_network(&self) -> Option<&FovNetwork> {
        self.fov.as_ref()
    }

    /// Stage 1: image pyramid of the `(b, 3, 1536, 1536)` input.
    pub fn pyramid(&self, x: &Tensor) -> Result<Pyramid> {
        Pyramid::new(x)
    }

    /// Stage 2: patch encoder (35 windows, merged).
    pub fn encode_patches(&self, pyramid: &Pyramid) -> Result<PatchFeatures> {
        self.encoder.encode_patches(pyramid, self.window_batch)
    }

    /// Stage 3: image encoder on the 384² level.
    pub fn encode_image(&self, pyramid: &Pyramid) -> Result<Tensor> {
        self.encoder.encode_image(&pyramid.x2)
    }

    /// Stage 4: neck (projections and upsampling).
    pub fn neck(&self, patch: PatchFeatures, global: Tensor) -> Result<Encodings> {
        self.encoder.neck(patch, global)
    }

    /// Stage 5: decoder.
    pub fn decode(&self, encodings: Encodings) -> Result<DecoderOutput> {
        self.decoder.decode(encodings)
    }

    /// Stage 6: depth head → canonical inverse depth `(b, 1, 1536, 1536)`.
    pub fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.head.forward(features)
    }

    /// Stage 7: FOV network → horizontal FOV in degrees `(b, 1, 1, 1)`, or `None` without one.
    pub fn fov(&self, pyramid: &Pyramid, lowres_features: &Tensor) -> Result<Option<Tensor>> {
        self.fov
            .as_ref()
            .map(|fov| fov.forward(&pyramid.x2, lowres_features))
            .transpose()
    }

    /// The whole network. `run_fov = false` skips the FOV network (use it when the focal length is
    /// known: its output would be ignored).
    pub fn forward(&self, x: &Tensor, run_fov: bool) -> Result<NetworkOutput> {
        let pyramid = self.pyramid(x)?;
        let patch = self.encode_patches(&pyramid)?;
        let global = self.encode_image(&pyramid)?;
        let encodings = self.neck(patch, global)?;
        let DecoderOutput {
            features,
            lowres_features,
        } = self.decode(encodings)?;
        // The head frees the 768² features after its first convolution.
        let canonical_inverse_depth = self.head.forward_owned(features)?;
        let fov_deg = if run_fov {
            self.fov(&pyramid, &lowres_features)?
        } else {
            None
        };
        Ok(NetworkOutput {
            canonical_inverse_depth,
            fov_deg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_abs_diff;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn vb_from(ts: Vec<(&str, Tensor)>) -> VarBuilder<'static> {
        let map: HashMap<String, Tensor> = ts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
    }

    type Log = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<usize>)>>>;

    /// Records every requested tensor and serves a broadcast zero (no allocation of the full shape).
    struct Recorder(Log);

    impl candle_nn::var_builder::SimpleBackend for Recorder {
        fn get(
            &self,
            s: candle_core::Shape,
            name: &str,
            _: candle_nn::Init,
            dtype: DType,
            dev: &Device,
        ) -> Result<Tensor> {
            self.0.lock().unwrap().push((name.to_string(), s.dims().to_vec()));
            Tensor::zeros((), dtype, dev)?.broadcast_as(s)
        }

        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
            candle_core::bail!("unexpected unchecked request for {name}")
        }

        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    fn requested(config: &DepthProConfig) -> HashMap<String, Vec<usize>> {
        let log: Log = Default::default();
        let vb = VarBuilder::from_backend(Box::new(Recorder(log.clone())), DType::F32, Device::Cpu);
        DepthProNetwork::load(config, vb).unwrap();
        let log = log.lock().unwrap();
        let map: HashMap<String, Vec<usize>> = log.iter().cloned().collect();
        assert_eq!(map.len(), log.len(), "a tensor was requested twice");
        map
    }

    #[test]
    fn full_config_requests_the_checkpoint_keys() {
        // Source: depth_pro_spec.md §1/§2 (1119 tensors, 951,991,330 parameters, key table).
        let keys = requested(&DepthProConfig::full());
        assert_eq!(keys.len(), 1119);
        assert_eq!(
            keys.values().map(|s| s.iter().product::<usize>()).sum::<usize>(),
            951_991_330
        );
        for (name, shape) in [
            ("encoder.patch_encoder.pos_embed", &[1, 577, 1024][..]),
            ("encoder.image_encoder.blocks.23.attn.qkv.weight", &[3072, 1024]),
            ("fov.encoder.0.blocks.7.ls2.gamma", &[1024]),
            ("encoder.upsample_latent0.0.weight", &[256, 1024, 1, 1]),
            ("encoder.upsample_latent0.3.weight", &[256, 256, 2, 2]),
            ("encoder.upsample_latent1.2.weight", &[256, 256, 2, 2]),
            ("encoder.upsample0.1.weight", &[512, 512, 2, 2]),
            ("encoder.upsample_lowres.bias", &[1024]),
            ("encoder.fuse_lowres.weight", &[1024, 2048, 1, 1]),
            ("decoder.convs.1.weight", &[256, 256, 3, 3]),
            ("decoder.convs.4.weight", &[256, 1024, 3, 3]),
            ("decoder.fusions.4.resnet1.residual.3.bias", &[256]),
            ("decoder.fusions.1.deconv.weight", &[256, 256, 2, 2]),
            ("head.1.weight", &[128, 128, 2, 2]),
            ("head.4.weight", &[1, 32, 1, 1]),
            ("fov.encoder.1.weight", &[128, 1024]),
            ("fov.downsample.0.weight", &[128, 256, 3, 3]),
            ("fov.head.4.weight", &[1, 32, 6, 6]),
        ] {
            assert_eq!(keys.get(name).map(Vec::as_slice), Some(shape), "{name}");
        }
        assert!(!keys.contains_key("decoder.fusions.0.deconv.weight"));
        assert!(!keys.contains_key("decoder.convs.0.weight"));
    }

    #[test]
    fn tiny_config_matches_the_fixture_counts() {
        // Source: tests/fixtures/README.md (195 Apple tensors, 946,334 parameters).
        let keys = requested(&DepthProConfig::tiny());
        assert_eq!(keys.len(), 195);
        assert_eq!(
            keys.values().map(|s| s.iter().product::<usize>()).sum::<usize>(),
            946_334
        );
        let mut no_fov = DepthProConfig::tiny();
        no_fov.fov_encoder = None;
        assert!(requested(&no_fov).keys().all(|k| !k.starts_with("fov.")));
    }

    #[test]
    fn conv_transpose_matches_candle() {
        // Reference: Candle's generic conv_transpose2d (PyTorch semantics, weight (c_in, c_out, k, k)).
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 3, 2, 2), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 4, 7), &dev).unwrap();
        let layer = ConvTranspose2x2::load(
            5,
            3,
            true,
            vb_from(vec![("weight", w.clone()), ("bias", b.clone())]),
        )
        .unwrap();
        let ours = layer.forward(&x).unwrap();
        let reference = x
            .conv_transpose2d(&w, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(ours.dims(), &[2, 3, 8, 14]);
        assert!(max_abs_diff(&ours, &reference) < 1e-5);
    }

    #[test]
    fn folded_conv_transpose_equals_the_two_layers() {
        // Reference: the two layers applied one after the other (Candle's generic ops).
        let dev = Device::Cpu;
        let wt = Tensor::randn(0f32, 1.0, (5, 3, 2, 2), &dev).unwrap();
        let bt = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
        let w1 = Tensor::randn(0f32, 1.0, (4, 3, 1, 1), &dev).unwrap();
        let b1 = Tensor::randn(0f32, 1.0, 4, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 3, 7), &dev).unwrap();
        let deconv = ConvTranspose2x2::load(
            5,
            3,
            true,
            vb_from(vec![("weight", wt.clone()), ("bias", bt.clone())]),
        )
        .unwrap();
        let conv = Conv1x1::load(
            3,
            4,
            true,
            vb_from(vec![("weight", w1.clone()), ("bias", b1.clone())]),
        )
        .unwrap();
        let reference = x
            .conv_transpose2d(&wt, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&bt.reshape((1, 3, 1, 1)).unwrap())
            .unwrap()
            .conv2d(&w1, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b1.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        let folded = deconv.then_conv1x1(&conv).unwrap();
        assert_eq!(folded.weight().dims(), &[16, 5]);
        let ours = folded.forward(&x).unwrap();
        assert_eq!(ours.dims(), &[2, 4, 6, 14]);
        assert!(max_abs_diff(&ours, &reference) < 1e-4);
    }

    #[test]
    fn conv1x1_matches_candle() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (4, 6, 1, 1), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 4, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 6, 3, 5), &dev).unwrap();
        let layer = Conv1x1::load(
            6,
            4,
            true,
            vb_from(vec![("weight", w.clone()), ("bias", b.clone())]),
        )
        .unwrap();
        let reference = x
            .conv2d(&w, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert!(max_abs_diff(&layer.forward(&x).unwrap(), &reference) < 1e-5);
        // A non-contiguous input gives the same result.
        let xt = x
            .transpose(2, 3)
            .unwrap()
            .contiguous()
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        assert!(max_abs_diff(&layer.forward(&xt).unwrap(), &reference) < 1e-5);
    }
}
