//! Field-of-view network (`fov.*`, Apple `FOVNetwork` with its own ViT encoder).
//!
//! `t = Linear(ViT(x₃₈₄))` on all tokens → drop the class token → `(b, D/2, 24, 24)`;
//! `g = ReLU(conv3×3/2 (lowres_features 48² → 24²))`; `h = t + g` → conv3×3/2 → ReLU → conv3×3/2 →
//! ReLU → conv6×6 (no padding) → `(b, 1, 1, 1)`: the **horizontal** field of view in degrees (raw
//! regression, no activation or clamp).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::{DepthProConfig, VitConfig, GRID_SIZE};
use crate::network::Conv2d;
use crate::vit::Vit;

/// The FOV network with its encoder.
#[derive(Debug, Clone)]
pub struct FovNetwork {
    encoder: Vit,
    /// `fov.encoder.1`: Linear `embed_dim → D/2`.
    neck: Linear,
    /// `fov.downsample.0`: conv 3×3 stride 2 `D → D/2` (+ ReLU).
    downsample: Conv2d,
    /// `fov.head.0`, `fov.head.2`, `fov.head.4`.
    head: [Conv2d; 3],
}

impl FovNetwork {
    /// Reads the FOV network under `vb` (normally `vb.pp("fov")`).
    pub fn load(cfg: &DepthProConfig, vit: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.decoder_features;
        let enc = vb.pp("encoder");
        let neck_vb = enc.pp(1);
        let neck = Linear::new(
            neck_vb.get((d / 2, vit.embed_dim), "weight")?,
            Some(neck_vb.get(d / 2, "bias")?),
        );
        let head = vb.pp("head");
        // Apple hard-codes the last kernel to 6 = 24 / 2 / 2, which reduces the map to 1×1.
        let last_kernel = GRID_SIZE / 4;
        Ok(Self {
            encoder: Vit::load(vit, enc.pp(0))?,
            neck,
            downsample: Conv2d::load(d, d / 2, 3, 2, 1, true, vb.pp("downsample").pp(0))?,
            head: [
                Conv2d::load(d / 2, d / 4, 3, 2, 1, true, head.pp(0))?,
                Conv2d::load(d / 4, d / 8, 3, 2, 1, true, head.pp(2))?,
                Conv2d::load(d / 8, 1, last_kernel, 1, 0, true, head.pp(4))?,
            ],
        })
    }

    /// The FOV encoder's ViT (`fov.encoder.0`).
    pub fn vit(&self) -> &Vit {
        &self.encoder
    }

    /// Encoder branch: `(b, 3, 384, 384)` (the pyramid's 384² image, identical to the original's
    /// `F.interpolate(x, scale_factor=0.25)`) → `(b, D/2, 24, 24)`.
    pub fn encode(&self, x2: &Tensor) -> Result<Tensor> {
        let (b, _c, _h, _w) = x2.dims4()?;
        let tokens = self.neck.forward(&self.encoder.forward_tokens(x2)?)?; // (b, 577, D/2)
        let (_b, t, c) = tokens.dims3()?;
        // [:, 1:] → (b, D/2, 576) → reshape_as (b, D/2, 24, 24).
        tokens
            .narrow(1, 1, t - 1)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, c, GRID_SIZE, GRID_SIZE))
    }

    /// Head: encoder features `(b, D/2, 24, 24)` plus the decoder's `lowres_features`
    /// `(b, D, 48, 48)` → horizontal FOV in degrees, `(b, 1, 1, 1)`.
    pub fn head(&self, encoded: &Tensor, lowres_features: &Tensor) -> Result<Tensor> {
        let g = self.downsample.forward(lowres_features)?.relu()?;
        let x = (encoded + g)?;
        let x = self.head[0].forward(&x)?.relu()?;
        let x = self.head[1].forward(&x)?.relu()?;
        self.head[2].forward(&x)
    }

    /// [`FovNetwork::encode`] followed by [`FovNetwork::head`].
    pub fn forward(&self, x2: &Tensor, lowres_features: &Tensor) -> Result<Tensor> {
        self.head(&self.encode(x2)?, lowres_features)
    }
}
