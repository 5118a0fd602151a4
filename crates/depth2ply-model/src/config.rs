//! Architecture of the Depth Pro network: ViT sizes, hook blocks and feature widths.
//!
//! The parameters follow Apple's `ml-depth-pro` (`DepthProConfig` + the `dinov2l16_384` ViT preset in
//! `network/vit_factory.py`), because the checkpoint's key names and shapes are Apple's. The input
//! geometry is **not** configurable: the original hard-codes a 1536² network input, 384² windows and a
//! 3-level pyramid (1536, 768, 384), so [`NETWORK_SIZE_PX`], [`WINDOW_SIZE_PX`] and [`PATCH_SIZE_PX`]
//! are constants and [`DepthProConfig::validate`] rejects ViTs that do not produce a 24×24 token grid
//! on a 384² window.
//!
//! The Hugging Face `DepthProConfig` describes the same network with other names; the mapping is
//! documented on each field (`HF:`).

use serde::{Deserialize, Serialize};

/// Side of the square image the network runs on, in pixels (`DepthPro.img_size` = 4 · 384).
pub const NETWORK_SIZE_PX: usize = 1536;

/// Side of the square windows every ViT sees, in pixels (hard-coded `patch_size = 384` in
/// `DepthProEncoder.split`).
pub const WINDOW_SIZE_PX: usize = 384;

/// Side of one ViT token patch, in pixels.
pub const PATCH_SIZE_PX: usize = 16;

/// Tokens per window side: 384 / 16 = 24 (plus one class token per window).
pub const GRID_SIZE: usize = WINDOW_SIZE_PX / PATCH_SIZE_PX;

/// A configuration that cannot describe a working Depth Pro network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Depth Pro config: `{field}` = {value}: {reason}; fix the config (see DepthProConfig::full())"
)]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `patch_encoder.num_heads`.
    pub field: String,
    /// The rejected value, as text.
    pub value: String,
    /// Why it is rejected.
    pub reason: &'static str,
}

/// One DINOv2-style ViT encoder (timm `VisionTransformer` as built by Apple's `create_vit`): patch
/// embedding, class token, learned position embedding, pre-norm blocks with LayerScale, final LayerNorm.
///
/// HF: a `Dinov2Config` (`hidden_size`, `num_hidden_layers`, `num_attention_heads`, `mlp_ratio`,
/// `patch_size`, `image_size`, `layer_norm_eps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Token width (channels). ViT-L: 1024.
    pub embed_dim: usize,
    /// Number of transformer blocks. ViT-L: 24.
    pub depth: usize,
    /// Attention heads; must divide `embed_dim`. ViT-L: 16 (head width 64).
    pub num_heads: usize,
    /// Hidden width of the MLP (`mlp_ratio · embed_dim`). ViT-L: 4096.
    pub mlp_hidden_dim: usize,
    /// Token patch side in pixels; must be [`PATCH_SIZE_PX`] (16).
    pub patch_size: usize,
    /// Input side in pixels; must be [`WINDOW_SIZE_PX`] (384).
    pub image_size: usize,
    /// Epsilon of every LayerNorm. timm / DINOv2: 1e-6.
    pub layer_norm_eps: f64,
}

impl VitConfig {
    /// ViT-L/16 at 384² (Apple preset `dinov2l16_384`): 1024 wide, 24 blocks, 16 heads, MLP 4096.
    pub fn vit_large_16_384() -> Self {
        Self {
            embed_dim: 1024,
            depth: 24,
            num_heads: 16,
            mlp_hidden_dim: 4096,
            patch_size: PATCH_SIZE_PX,
            image_size: WINDOW_SIZE_PX,
            layer_norm_eps: 1e-6,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads.max(1)
    }

    /// Tokens per side of the patch grid (24 at 384/16).
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Number of tokens per image including the class token (577 at 384/16).
    pub fn num_tokens(&self) -> usize {
        self.grid_size() * self.grid_size() + 1
    }

    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let err = |field: &str, value: String, reason| ConfigError {
            field: format!("{name}.{field}"),
            value,
            reason,
        };
        for (field, v) in [
            ("embed_dim", self.embed_dim),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("mlp_hidden_dim", self.mlp_hidden_dim),
        ] {
            if v == 0 {
                return Err(err(field, v.to_string(), "must be at least 1"));
            }
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(err(
                "num_heads",
                self.num_heads.to_string(),
                "must divide embed_dim (every head gets embed_dim / num_heads channels)",
            ));
        }
        if self.patch_size != PATCH_SIZE_PX {
            return Err(err(
                "patch_size",
                self.patch_size.to_string(),
                "must be 16: the window merge crops (3 and 6 tokens) assume a 24×24 token grid",
            ));
        }
        if self.image_size != WINDOW_SIZE_PX {
            return Err(err(
                "image_size",
                self.image_size.to_string(),
                "must be 384: Depth Pro hard-codes 384² windows on a 1536² input",
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(err(
                "layer_norm_eps",
                self.layer_norm_eps.to_string(),
                "must be finite and > 0",
            ));
        }
        Ok(())
    }
}

/// Architecture of the whole Depth Pro network (Apple's `DepthProConfig` plus the ViT presets).
///
/// Use [`DepthProConfig::full`] for the released checkpoint (`depth_pro.pt`, `apple/DepthPro-hf`) and
/// [`DepthProConfig::tiny`] for the randomised parity fixtures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthProConfig {
    /// ViT run on the 35 pyramid windows (keys `encoder.patch_encoder.*`).
    /// HF: `patch_model_config`.
    pub patch_encoder: VitConfig,
    /// ViT run on the whole image at 384² (keys `encoder.image_encoder.*`).
    /// HF: `image_model_config`.
    pub image_encoder: VitConfig,
    /// ViT of the field-of-view network (keys `fov.encoder.0.*`); `None` builds no FOV network at all
    /// (no `fov.*` keys), and inference then needs a known focal length.
    /// HF: `fov_model_config` with `use_fov_model`.
    pub fov_encoder: Option<VitConfig>,
    /// Patch-encoder blocks (0-based) whose raw outputs (before the final norm) feed the two
    /// highest-resolution levels: `[0]` → 768² level (`upsample_latent0`), `[1]` → 384² level
    /// (`upsample_latent1`). Apple: `encoder_feature_layer_ids[:2]` = `[5, 11]`.
    /// HF: `intermediate_hook_ids` lists them reversed (`[11, 5]`).
    pub hook_block_ids: [usize; 2],
    /// Apple `encoder_feature_dims` `[d0, d1, d2, d3]`: width of the 384² hook level (d0; also the
    /// intermediate width of the 768² hook level), of the 192² level from the 1536² windows (d1), of
    /// the 96² level from the 768² windows (d2) and of the fused 48² level (d3).
    /// Full model: `[256, 512, 1024, 1024]`.
    /// HF: `intermediate_feature_dims = [d0, d0]`, `scaled_images_feature_dims = [d3, d2, d1]`.
    pub encoder_feature_dims: [usize; 4],
    /// Width of every decoder level (Apple `decoder_features`; HF `fusion_hidden_size`). Full: 256.
    pub decoder_features: usize,
    /// Width of the last hidden layer of the depth head (Apple `last_dims[0]`, 32 in both
    /// implementations; the head always ends in one channel).
    pub head_features: usize,
}

impl Default for DepthProConfig {
    fn default() -> Self {
        Self::full()
    }
}

impl DepthProConfig {
    /// The released Apple model: three ViT-L/16 @ 384 (patch, image, FOV encoders), hooks after blocks
    /// 5 and 11, `encoder_feature_dims = [256, 512, 1024, 1024]`, decoder 256, head 32.
    /// 951,991,330 parameters in 1119 tensors.
    pub fn full() -> Self {
        Self {
            patch_encoder: VitConfig::vit_large_16_384(),
            image_encoder: VitConfig::vit_large_16_384(),
            fov_encoder: Some(VitConfig::vit_large_16_384()),
            hook_block_ids: [5, 11],
            encoder_feature_dims: [256, 512, 1024, 1024],
            decoder_features: 256,
            head_features: 32,
        }
    }

    /// The small configuration of the parity fixtures (spec §9.5): ViTs 64 wide, 2 blocks, 2 heads
    /// (MLP 256), hooks after blocks 0 and 1, `encoder_feature_dims = [32, 48, 64, 64]`, decoder 32.
    /// HF equivalent: `fusion_hidden_size=32, intermediate_hook_ids=[1, 0],
    /// intermediate_feature_dims=[32, 32], scaled_images_feature_dims=[64, 64, 48]`, Dinov2
    /// `hidden_size=64, num_hidden_layers=2, num_attention_heads=2`. Same 1536/384/16 geometry.
    pub fn tiny() -> Self {
        let vit = VitConfig {
            embed_dim: 64,
            depth: 2,
            num_heads: 2,
            mlp_hidden_dim: 256,
            patch_size: PATCH_SIZE_PX,
            image_size: WINDOW_SIZE_PX,
            layer_norm_eps: 1e-6,
        };
        Self {
            patch_encoder: vit.clone(),
            image_encoder: vit.clone(),
            fov_encoder: Some(vit),
            hook_block_ids: [0, 1],
            encoder_feature_dims: [32, 48, 64, 64],
            decoder_features: 32,
            head_features: 32,
        }
    }

    /// Whether the network has a field-of-view head.
    pub fn has_fov(&self) -> bool {
        self.fov_encoder.is_some()
    }

    /// Checks that the configuration describes a network this port can build.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.patch_encoder.validate("patch_encoder")?;
        self.image_encoder.validate("image_encoder")?;
        if let Some(fov) = &self.fov_encoder {
            fov.validate("fov_encoder")?;
        }
        for (i, &id) in self.hook_block_ids.iter().enumerate() {
            if id >= self.patch_encoder.depth {
                return Err(ConfigError {
                    field: format!("hook_block_ids[{i}]"),
                    value: id.to_string(),
                    reason: "must be a block index below patch_encoder.depth",
                });
            }
        }
        for (i, &d) in self.encoder_feature_dims.iter().enumerate() {
            if d == 0 {
                return Err(ConfigError {
                    field: format!("encoder_feature_dims[{i}]"),
                    value: d.to_string(),
                    reason: "must be at least 1",
                });
            }
        }
        if self.head_features == 0 {
            return Err(ConfigError {
                field: "head_features".into(),
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        // The head halves the decoder width; the FOV network divides it by 2, 4 and 8.
        let divisor = if self.has_fov() { 8 } else { 2 };
        if self.decoder_features == 0 || !self.decoder_features.is_multiple_of(divisor) {
            return Err(ConfigError {
                field: "decoder_features".into(),
                value: self.decoder_features.to_string(),
                reason: "must be a positive multiple of 2 (of 8 with a FOV network)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        DepthProConfig::full().validate().unwrap();
        DepthProConfig::tiny().validate().unwrap();
    }

    #[test]
    fn full_matches_the_apple_preset() {
        // Source: ml-depth-pro vit_factory.py `dinov2l16_384` and DEFAULT_MONODEPTH_CONFIG_DICT.
        let c = DepthProConfig::full();
        assert_eq!(c.patch_encoder.head_dim(), 64);
        assert_eq!(c.patch_encoder.num_tokens(), 577);
        assert_eq!(c.hook_block_ids, [5, 11]);
        assert_eq!(c.encoder_feature_dims, [256, 512, 1024, 1024]);
        assert_eq!(c.decoder_features, 256);
    }

    #[test]
    fn rejects_bad_configs() {
        let mut c = DepthProConfig::tiny();
        c.patch_encoder.num_heads = 3;
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "patch_encoder.num_heads");
        assert!(e.to_string().contains("must divide embed_dim"), "{e}");

        let mut c = DepthProConfig::tiny();
        c.hook_block_ids = [0, 2];
        assert_eq!(c.validate().unwrap_err().field, "hook_block_ids[1]");

        let mut c = DepthProConfig::tiny();
        c.image_encoder.image_size = 518;
        assert_eq!(c.validate().unwrap_err().field, "image_encoder.image_size");

        let mut c = DepthProConfig::tiny();
        c.decoder_features = 12;
        assert_eq!(c.validate().unwrap_err().field, "decoder_features");
        c.fov_encoder = None;
        c.validate().unwrap();
    }

    #[test]
    fn serde_round_trip() {
        let c = DepthProConfig::tiny();
        let json = serde_json::to_string(&c).unwrap();
        let back: DepthProConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
