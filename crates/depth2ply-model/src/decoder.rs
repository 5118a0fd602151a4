//! DPT-style decoder (`decoder.*`, Apple `MultiresConvDecoder`) and depth head (`head.*`).
//!
//! Decoder, from the lowest level up: `f = convs[4](enc[4])` (this is also the FOV network's
//! `lowres_features`), `f = fusions[4](f)`, then for k = 3, 2, 1, 0: `f = fusions[k](f, convs[k](enc[k]))`
//! (`convs[0]` is the identity). A fusion block is
//! `x = x0 (+ resnet1(x1)); x = resnet2(x); x = deconv(x) if k ≠ 0; x = out_conv(x)` with pre-activation
//! residual units `y = x + conv(relu(conv(relu(x))))`.
//!
//! Head: `conv3×3 (D → D/2)` → `ConvT 2×2/2 (D/2 → D/2)` → `conv3×3 (D/2 → 32)` → ReLU →
//! `conv1×1 (32 → 1)` → ReLU: the canonical inverse depth at 1536².

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::DepthProConfig;
use crate::encoder::Encodings;
use crate::kernels::{self, Conv3x3Algorithm, Conv3x3Options, HeadTail, ResidualTail, ResidualUnit};
use crate::network::{Conv1x1, Conv2d, ConvTranspose2x2};

/// Pre-activation residual unit (`resnet{1,2}`): `x + residual.3(relu(residual.1(relu(x))))`.
#[derive(Debug, Clone)]
struct ResidualBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResidualBlock {
    fn load(dim: usize, vb: VarBuilder) -> Result<Self> {
        // `residual.0` / `residual.2` are parameter-free ReLUs.
        let vb = vb.pp("residual");
        Ok(Self {
            conv1: Conv2d::load(dim, dim, 3, 1, 1, true, vb.pp(1))?,
            conv2: Conv2d::load(dim, dim, 3, 1, 1, true, vb.pp(3))?,
        })
    }

    /// `tail(skip + (x + residual(x)))` ([`kernels::residual_block`]: streamed in row bands on the
    /// CPU, so `relu(conv1(relu(x)))` never exists in full).
    fn forward(
        &self,
        x: &Tensor,
        skip: Option<&Tensor>,
        tail: &ResidualTail<'_>,
        algorithm: Conv3x3Algorithm,
    ) -> Result<Tensor> {
        let unit = ResidualUnit {
            conv1_weight: self.conv1.weight(),
            conv1_bias: self.conv1.bias(),
            conv2_weight: self.conv2.weight(),
            conv2_bias: self.conv2.bias(),
        };
        kernels::residual_block(x, &unit, skip, tail, algorithm)
    }
}

/// The layer after `resnet2` in a fusion block.
#[derive(Debug, Clone)]
enum FusionTail {
    /// `out_conv` alone (`fusions[0]`, no deconv).
    Conv1x1(Conv1x1),
    /// `out_conv ∘ deconv` folded into one transposed convolution (see
    /// [`ConvTranspose2x2::then_conv1x1`]): the 1×1 convolution at the doubled resolution
    /// disappears (77 GFLOP at 768² for `fusions[1]`).
    ConvTranspose(ConvTranspose2x2),
}

/// `FeatureFusionBlock2d` (batch norm off). `resnet1` only runs when the block gets a skip input, i.e.
/// never for the lowest level; its weights are still read there, as they are part of the checkpoint.
#[derive(Debug, Clone)]
struct FusionBlock {
    resnet1: ResidualBlock,
    resnet2: ResidualBlock,
    tail: FusionTail,
}

impl FusionBlock {
    fn load(dim: usize, deconv: bool, vb: VarBuilder) -> Result<Self> {
        let out_conv = Conv1x1::load(dim, dim, true, vb.pp("out_conv"))?;
        let tail = if deconv {
            let deconv = ConvTranspose2x2::load(dim, dim, false, vb.pp("deconv"))?;
            FusionTail::ConvTranspose(deconv.then_conv1x1(&out_conv)?)
        } else {
            FusionTail::Conv1x1(out_conv)
        };
        Ok(Self {
            resnet1: ResidualBlock::load(dim, vb.pp("resnet1"))?,
            resnet2: ResidualBlock::load(dim, vb.pp("resnet2"))?,
            tail,
        })
    }

    /// `out_conv(deconv?(resnet2(x0 (+ resnet1(x1)))))`. Takes the inputs by value so that they are
    /// freed (when not shared) before `resnet2` runs.
    fn forward(&self, x0: Tensor, x1: Option<Tensor>, algorithm: Conv3x3Algorithm) -> Result<Tensor> {
        let x = match x1 {
            Some(x1) => {
                let x = self
                    .resnet1
                    .forward(&x1, Some(&x0), &ResidualTail::None, algorithm)?;
                drop((x0, x1));
                x
            }
            None => x0,
        };
        let tail = match &self.tail {
            FusionTail::Conv1x1(conv) => ResidualTail::Conv1x1 {
                weight: conv.weight(),
                bias: conv.bias(),
            },
            FusionTail::ConvTranspose(conv) => ResidualTail::ConvTranspose2x2 {
                weight: conv.weight(),
                bias: conv.bias(),
            },
        };
        self.resnet2.forward(&x, None, &tail, algorithm)
    }
}

/// Names the tensors [`Decoder::decode_with`] reports, in the order they are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderStage {
    /// `convs[4](enc[4])`, `(b, D, 48, 48)`: the FOV network's `lowres_features`.
    LowresFeatures,
    /// Output of `fusions[k]`, k = 4 (96²), 3 (192²), 2 (384²), 1 (768²), 0 (768², final).
    Fusion(usize),
}

/// Decoder result.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Output of `fusions[0]`, `(b, D, 768, 768)`; input of the head.
    pub features: Tensor,
    /// `convs[4](enc[4])`, `(b, D, 48, 48)`; input of the FOV network.
    pub lowres_features: Tensor,
}

/// `MultiresConvDecoder` with `dims_encoder = [D, d0, d1, d2, d3]`, `dim_decoder = D`.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// `convs[1..=4]`: bias-free 3×3 projections to `D` (`convs[0]` is the identity).
    convs: Vec<Conv2d>,
    /// `fusions[0..=4]`.
    fusions: Vec<FusionBlock>,
    algorithm: Conv3x3Algorithm,
}

impl Decoder {
    /// Reads the decoder under `vb` (normally `vb.pp("decoder")`).
    pub fn load(cfg: &DepthProConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.decoder_features;
        let convs = cfg
            .encoder_feature_dims
            .iter()
            .enumerate()
            .map(|(i, &dim)| Conv2d::load(dim, d, 3, 1, 1, false, vb.pp("convs").pp(i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let fusions = (0..5)
            .map(|k| FusionBlock::load(d, k != 0, vb.pp("fusions").pp(k)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            convs,
            fusions,
            algorithm: Conv3x3Algorithm::default(),
        })
    }

    /// How the 3×3 convolutions are computed on the CPU (default [`Conv3x3Algorithm::Winograd2`]).
    pub fn set_conv3x3_algorithm(&mut self, algorithm: Conv3x3Algorithm) {
        self.algorithm = algorithm;
    }

    fn project(&self, k: usize, level: &Tensor) -> Result<Tensor> {
        let options = Conv3x3Options {
            algorithm: self.algorithm,
            ..Default::default()
        };
        self.convs[k].forward_3x3(level, &options)
    }

    /// Decodes the encoder levels; each level is dropped as soon as it has been used.
    pub fn decode(&self, encodings: Encodings) -> Result<DecoderOutput> {
        self.decode_with(encodings, &mut |_, _| {})
    }

    /// As [`Decoder::decode`], calling `observe` with every intermediate tensor (for parity tests).
    pub fn decode_with(
        &self,
        encodings: Encodings,
        observe: &mut dyn FnMut(DecoderStage, &Tensor),
    ) -> Result<DecoderOutput> {
        let Encodings {
            latent0,
            latent1,
            x0,
            x1,
            global,
        } = encodings;
        let alg = self.algorithm;
        let lowres_features = self.project(3, &global)?;
        drop(global);
        observe(DecoderStage::LowresFeatures, &lowres_features);
        let mut f = self.fusions[4].forward(lowres_features.clone(), None, alg)?;
        observe(DecoderStage::Fusion(4), &f);
        for (k, level) in [(3, x1), (2, x0), (1, latent1)] {
            let skip = self.project(k - 1, &level)?;
            drop(level);
            f = self.fusions[k].forward(f, Some(skip), alg)?;
            observe(DecoderStage::Fusion(k), &f);
        }
        // convs[0] is the identity: the 768² level already has D channels.
        f = self.fusions[0].forward(f, Some(latent0), alg)?;
        observe(DecoderStage::Fusion(0), &f);
        Ok(DecoderOutput {
            features: f,
            lowres_features,
        })
    }
}

/// The depth head (`head.0`, `head.1`, `head.2`, `head.4`; `head.3` and `head.5` are ReLUs).
#[derive(Debug, Clone)]
pub struct DepthHead {
    conv0: Conv2d,
    deconv1: ConvTranspose2x2,
    conv2: Conv2d,
    conv4: Conv1x1,
    algorithm: Conv3x3Algorithm,
}

impl DepthHead {
    /// Reads the head under `vb` (normally `vb.pp("head")`).
    pub fn load(cfg: &DepthProConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.decoder_features;
        Ok(Self {
            conv0: Conv2d::load(d, d / 2, 3, 1, 1, true, vb.pp(0))?,
            deconv1: ConvTranspose2x2::load(d / 2, d / 2, true, vb.pp(1))?,
            conv2: Conv2d::load(d / 2, cfg.head_features, 3, 1, 1, true, vb.pp(2))?,
            conv4: Conv1x1::load(cfg.head_features, 1, true, vb.pp(4))?,
            algorithm: Conv3x3Algorithm::default(),
        })
    }

    /// How the 3×3 convolutions are computed on the CPU (default [`Conv3x3Algorithm::Winograd2`]).
    pub fn set_conv3x3_algorithm(&mut self, algorithm: Conv3x3Algorithm) {
        self.algorithm = algorithm;
    }

    /// `(b, D, 768, 768)` decoder features → `(b, 1, 1536, 1536)` canonical inverse depth (≥ 0).
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        self.forward_owned(features.clone())
    }

    /// [`DepthHead::forward`] that frees `features` (when not shared) once the first convolution
    /// has read it.
    pub(crate) fn forward_owned(&self, features: Tensor) -> Result<Tensor> {
        // No activation between the first conv and the transposed conv (as in the original).
        let x = self.conv0.forward_3x3(
            &features,
            &Conv3x3Options {
                algorithm: self.algorithm,
                ..Default::default()
            },
        )?;
        drop(features);
        let tail = HeadTail {
            deconv_weight: self.deconv1.weight(),
            deconv_bias: self.deconv1.bias(),
            conv_weight: self.conv2.weight(),
            conv_bias: self.conv2.bias(),
            out_weight: self.conv4.weight(),
            out_bias: self.conv4.bias(),
        };
        // ConvT → 3×3 → ReLU → 1×1 → ReLU, streamed in bands of 1536² rows on the CPU.
        kernels::depth_head_tail(&x, &tail, self.algorithm)
    }
}
