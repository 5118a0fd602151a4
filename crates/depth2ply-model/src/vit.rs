//! The DINOv2-style ViT used three times by Depth Pro (patch, image and FOV encoders).
//!
//! It reproduces timm's `VisionTransformer.forward_features` as configured by Apple's `create_vit`
//! (`vit_large_patch14_dinov2` resized to patch 16 at 384²): patch embedding (Conv2d k16 s16 with
//! bias) → class token prepended → learned position embedding added to all 577 tokens → pre-norm blocks
//! `x += ls1 ⊙ attn(norm1(x)); x += ls2 ⊙ mlp(norm2(x))` → final LayerNorm. LayerNorm eps comes
//! from the config (1e-6), the MLP uses the exact (erf) GELU and attention is explicit
//! `softmax(q·kᵀ/√d)·v` (Candle has no CPU SDPA). Weight names are timm's (`blocks.{i}.attn.qkv`, …).
//!
//! f32 tensors on the CPU run the blocks on the hand-written kernels of `vit_cpu.rs` (about 2× the
//! speed of these generic ops, which every other device and dtype uses; [`Vit::set_cpu_fast_path`]
//! switches between them for tests and benchmarks).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::VitConfig;

/// LayerNorm over the last dimension (`weight`, `bias`).
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The fused kernel needs a contiguous input; a no-op for the token tensors here.
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear::new(
        vb.get((out_dim, in_dim), "weight")?,
        Some(vb.get(out_dim, "bias")?),
    ))
}

/// Multi-head self-attention with a fused `qkv` projection (rows: q, k, v; head `h` owns rows
/// `h·d … h·d + d − 1` inside each) and an output projection `proj`.
#[derive(Debug, Clone)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    fn load(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.embed_dim;
        Ok(Self {
            qkv: linear(c, 3 * c, vb.pp("qkv"))?,
            proj: linear(c, c, vb.pp("proj"))?,
            num_heads: cfg.num_heads,
            scale: (cfg.head_dim() as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let head_dim = c / self.num_heads;
        // (b, n, 3c) → (3, b, heads, n, head_dim), as timm's reshape + permute.
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, n, 3, self.num_heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        // timm's non-fused path scales q before the product; SDPA differs only by rounding.
        let q = (qkv.get(0)?.contiguous()? * self.scale)?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        drop(qkv);
        let scores = q.matmul(&k.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        drop(scores);
        let out = probs.matmul(&v)?; // (b, heads, n, head_dim)
        let out = out.transpose(1, 2)?.reshape((b, n, c))?;
        self.proj.forward(&out)
    }
}

/// Two-layer MLP `fc2(gelu_erf(fc1(x)))`.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(cfg.embed_dim, cfg.mlp_hidden_dim, vb.pp("fc1"))?,
            fc2: linear(cfg.mlp_hidden_dim, cfg.embed_dim, vb.pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Exact erf GELU (`nn.GELU()`); Candle's `gelu()` is the tanh approximation.
        self.fc2.forward(&self.fc1.forward(x)?.gelu_erf()?)
    }
}

/// One pre-norm transformer block with LayerScale on both residual branches.
#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    ls1: Tensor,
    norm2: LayerNorm,
    mlp: Mlp,
    ls2: Tensor,
}

impl Block {
    fn load(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.embed_dim;
        Ok(Self {
            norm1: LayerNorm::load(c, cfg.layer_norm_eps, vb.pp("norm1"))?,
            attn: Attention::load(cfg, vb.pp("attn"))?,
            ls1: vb.pp("ls1").get(c, "gamma")?,
            norm2: LayerNorm::load(c, cfg.layer_norm_eps, vb.pp("norm2"))?,
            mlp: Mlp::load(cfg, vb.pp("mlp"))?,
            ls2: vb.pp("ls2").get(c, "gamma")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.attn.forward(&self.norm1.forward(x)?)?;
        let x = (x + a.broadcast_mul(&self.ls1)?)?;
        let m = self.mlp.forward(&self.norm2.forward(&x)?)?;
        x + m.broadcast_mul(&self.ls2)?
    }
}

/// Output of [`Vit::forward`].
#[derive(Debug, Clone)]
pub struct VitOutput {
    /// Final-norm tokens `(n, 1 + grid², embed_dim)`; token 0 is the class token, then the grid
    /// row-major.
    pub tokens: Tensor,
    /// Raw outputs (before the final norm) of the requested blocks, same layout as `tokens`, in the
    /// order the block ids were requested.
    pub hooks: Vec<Tensor>,
}

/// A DINOv2 ViT encoder (timm naming: `cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.{i}`,
/// `norm`).
#[derive(Debug, Clone)]
pub struct Vit {
    config: VitConfig,
    /// Patch-embedding kernel flattened to `(embed_dim, 3·p·p)`, input order `(c, ky, kx)`.
    patch_weight: Tensor,
    patch_bias: Tensor,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    /// Whether f32 CPU inputs take the hand-written path of `vit_cpu.rs` (default) instead of the
    /// generic Candle ops.
    cpu_fast_path: bool,
}

impl Vit {
    /// Reads the weights of one ViT under `vb` (e.g. `vb.pp("encoder.patch_encoder")`).
    pub fn load(config: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let c = config.embed_dim;
        let p = config.patch_size;
        let proj = vb.pp("patch_embed").pp("proj");
        let patch_weight = proj.get((c, 3, p, p), "weight")?.reshape((c, 3 * p * p))?;
        let blocks = (0..config.depth)
            .map(|i| Block::load(config, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            patch_weight,
            patch_bias: proj.get(c, "bias")?,
            cls_token: vb.get((1, 1, c), "cls_token")?,
            pos_embed: vb.get((1, config.num_tokens(), c), "pos_embed")?,
            blocks,
            norm: LayerNorm::load(c, config.layer_norm_eps, vb.pp("norm"))?,
            cpu_fast_path: true,
        })
    }

    /// Chooses between the hand-written f32 CPU kernels (`true`, the default; used only for f32
    /// tensors on the CPU) and Candle's generic ops (`false`; what every other device and dtype runs).
    /// Both compute the same function up to float rounding; the switch exists for parity tests and
    /// benchmarks.
    pub fn set_cpu_fast_path(&mut self, enabled: bool) {
        self.cpu_fast_path = enabled;
    }

    /// Whether `x` would run on the hand-written f32 CPU path.
    fn uses_cpu_path(&self, x: &Tensor) -> bool {
        self.cpu_fast_path && crate::kernels::supported(x) && crate::kernels::supported(&self.patch_weight)
    }

    /// The architecture this ViT was built with.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// `(n, 3, size, size)` with `size` the configured image size (384), as both paths require.
    fn check_input(&self, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
        let (n, c_in, h, w) = x.dims4()?;
        let size = self.config.image_size;
        if c_in != 3 || h != size || w != size {
            candle_core::bail!("ViT input must be (n, 3, {size}, {size}), got {:?}", x.dims());
        }
        Ok((n, c_in, h, w))
    }

    /// Patch embedding + class token + position embedding: `(n, 3, 384, 384)` → `(n, 577, C)`.
    fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c_in, h, w) = self.check_input(x)?;
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        // Conv2d with kernel = stride = p is a matmul over non-overlapping p×p patches:
        // (n, 3, gh, p, gw, p) → (n, gh, gw, 3, p, p) → (n·gh·gw, 3·p·p).
        let patches = x
            .reshape((n, c_in, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((n * gh * gw, c_in * p * p))?;
        let tokens = patches
            .matmul(&self.patch_weight.t()?)?
            .broadcast_add(&self.patch_bias)?;
        let tokens = tokens.reshape((n, gh * gw, self.config.embed_dim))?;
        let cls = self.cls_token.broadcast_as((n, 1, self.config.embed_dim))?;
        Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&self.pos_embed)
    }

    /// Runs the ViT on `(n, 3, 384, 384)` images and returns the final-norm tokens plus the raw
    /// outputs of blocks `hook_ids` (0-based).
    pub fn forward(&self, x: &Tensor, hook_ids: &[usize]) -> Result<VitOutput> {
        self.forward_hooks(x, hook_ids, usize::MAX)
    }

    /// As [`Vit::forward`], but the hooked outputs hold only the first `hook_images` images (the
    /// patch encoder uses the hooks of its 25 high-resolution windows only).
    pub fn forward_hooks(&self, x: &Tensor, hook_ids: &[usize], hook_images: usize) -> Result<VitOutput> {
        if self.uses_cpu_path(x) {
            return self.forward_cpu(x, hook_ids, hook_images);
        }
        let mut x = self.embed(x)?;
        let mut hooks: Vec<Option<Tensor>> = vec![None; hook_ids.len()];
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            for (slot, _) in hooks.iter_mut().zip(hook_ids).filter(|(_, &id)| id == i) {
                *slot = Some(x.clone());
            }
        }
        let n = x.dim(0)?;
        let hooks = hooks
            .into_iter()
            .zip(hook_ids)
            .map(|(h, id)| {
                let h = h.ok_or_else(|| candle_core::Error::Msg(format!("ViT has no block {id} to hook")))?;
                h.narrow(0, 0, hook_images.min(n))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VitOutput {
            tokens: self.norm.forward(&x)?,
            hooks,
        })
    }

    /// [`Vit::forward_hooks`] on the f32 CPU kernels of `vit_cpu.rs`.
    fn forward_cpu(&self, x: &Tensor, hook_ids: &[usize], hook_images: usize) -> Result<VitOutput> {
        use crate::kernels::CpuF32;
        use crate::vit_cpu::{embed, run_blocks, BlockWeights, EmbedWeights, Geometry};
        if let Some(id) = hook_ids.iter().find(|&&id| id >= self.blocks.len()) {
            candle_core::bail!("ViT has no block {id} to hook");
        }
        let (n, _, h, _) = self.check_input(x)?;
        let (p, t, c) = (
            self.config.patch_size,
            self.config.num_tokens(),
            self.config.embed_dim,
        );
        let x = x.contiguous()?;
        let mut stream = {
            let (input, weight, bias) = (
                CpuF32::new(&x, "ViT")?,
                CpuF32::new(&self.patch_weight, "ViT")?,
                CpuF32::new(&self.patch_bias, "ViT")?,
            );
            let (cls, pos) = (
                CpuF32::new(&self.cls_token, "ViT")?,
                CpuF32::new(&self.pos_embed, "ViT")?,
            );
            let weights = EmbedWeights {
                weight: weight.as_slice(),
                bias: bias.as_slice(),
                cls: cls.as_slice(),
                pos: pos.as_slice(),
            };
            embed(input.as_slice(), n, h, p, &weights)?
        };
        fn pair(l: &Linear) -> Result<[CpuF32<'_>; 2]> {
            let bias = l
                .bias()
                .ok_or_else(|| candle_core::Error::Msg("ViT linear layer without bias".into()))?;
            Ok([CpuF32::new(l.weight(), "ViT")?, CpuF32::new(bias, "ViT")?])
        }
        fn norm(l: &LayerNorm) -> Result<[CpuF32<'_>; 2]> {
            Ok([CpuF32::new(&l.weight, "ViT")?, CpuF32::new(&l.bias, "ViT")?])
        }
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(BlockWeights {
                    norm1: norm(&b.norm1)?,
                    qkv: pair(&b.attn.qkv)?,
                    proj: pair(&b.attn.proj)?,
                    ls1: CpuF32::new(&b.ls1, "ViT")?,
                    norm2: norm(&b.norm2)?,
                    fc1: pair(&b.mlp.fc1)?,
                    fc2: pair(&b.mlp.fc2)?,
                    ls2: CpuF32::new(&b.ls2, "ViT")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let geometry = Geometry {
            images: n,
            tokens: t,
            dim: c,
            heads: self.config.num_heads,
            hidden: self.config.mlp_hidden_dim,
            eps: self.norm.eps,
        };
        let hook_images = hook_images.min(n);
        let (hooks, out) = run_blocks(
            &mut stream,
            geometry,
            &blocks,
            hook_ids,
            hook_images,
            &norm(&self.norm)?,
        )?;
        drop(stream);
        let device = x.device();
        let hooks = hooks
            .into_iter()
            .map(|h| Tensor::from_vec(h, (hook_images, t, c), device))
            .collect::<Result<Vec<_>>>()?;
        Ok(VitOutput {
            tokens: Tensor::from_vec(out, (n, t, c), device)?,
            hooks,
        })
    }

    /// Final-norm tokens only (no hooks).
    pub fn forward_tokens(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward(x, &[])?.tokens)
    }
}

/// Drops the class token of `(n, 1 + g², C)` tokens and lays each image out as `(n, g, g, C)`
/// (token `t` ↦ row `t / g`, column `t % g`), i.e. channels last.
pub fn tokens_to_grid(tokens: &Tensor, grid: usize) -> Result<Tensor> {
    let (n, t, c) = tokens.dims3()?;
    if t != grid * grid + 1 {
        candle_core::bail!("expected {} tokens per image, got {t}", grid * grid + 1);
    }
    tokens.narrow(1, 1, grid * grid)?.reshape((n, grid, grid, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn zero_vit() -> Vit {
        let cfg = crate::config::DepthProConfig::tiny().patch_encoder;
        Vit::load(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap()
    }

    #[test]
    fn shapes_and_hooks() {
        let mut vit = zero_vit();
        let x = Tensor::zeros((2, 3, 384, 384), DType::F32, &Device::Cpu).unwrap();
        let out = vit.forward(&x, &[1, 0]).unwrap();
        assert_eq!(out.tokens.dims(), &[2, 577, 64]);
        assert_eq!(out.hooks.len(), 2);
        assert_eq!(out.hooks[0].dims(), &[2, 577, 64]);
        for fast in [true, false] {
            vit.set_cpu_fast_path(fast);
            assert!(vit.forward(&x, &[2]).is_err());
            // 512 × 288 has the right number of patches (32 · 18 = 24²) but not the 24 × 24 grid.
            for (h, w) in [(384, 368), (512, 288)] {
                let bad = Tensor::zeros((1, 3, h, w), DType::F32, &Device::Cpu).unwrap();
                assert!(
                    vit.forward(&bad, &[]).is_err(),
                    "{h}×{w} accepted (fast path {fast})"
                );
            }
        }
        let grid = tokens_to_grid(&out.tokens, 24).unwrap();
        assert_eq!(grid.dims(), &[2, 24, 24, 64]);
    }

    /// Reproducible pseudo-random values (xorshift64*, uniform with standard deviation `std`): Candle's
    /// CPU `randn` cannot be seeded, and a test on unseeded weights checks different numbers each run.
    fn seeded(shape: impl Into<candle_core::Shape>, std: f32, seed: u64, dev: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let half_width = std * 3f32.sqrt();
        let values = (0..shape.elem_count())
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 random bits
                (bits as f32 / (1u64 << 23) as f32 - 1.0) * half_width
            })
            .collect::<Vec<f32>>();
        Tensor::from_vec(values, shape, dev)
    }

    /// Seeded random weights, one seed per tensor name (the generic path is the reference; values large
    /// enough that LayerScale and the biases matter).
    struct RandomBackend;

    impl candle_nn::var_builder::SimpleBackend for RandomBackend {
        fn get(
            &self,
            s: candle_core::Shape,
            name: &str,
            _: candle_nn::Init,
            dtype: DType,
            dev: &Device,
        ) -> Result<Tensor> {
            // FNV-1a of the name.
            let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
            // σ = 0.25 gives attention logits of σ ≈ 4 at width 64 (peaked, as trained ViTs are);
            // at σ = 0.5 they reach σ ≈ 16 and the softmax turns f32 summation-order differences in
            // q·kᵀ into 1e-5 relative changes whatever the kernel.
            let t = seeded(s, 0.25, seed, dev)?;
            let t = if name.ends_with("norm1.weight") || name.ends_with("norm2.weight") {
                (t + 1.0)?
            } else {
                t
            };
            t.to_dtype(dtype)
        }

        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
            candle_core::bail!("unexpected unchecked request for {name}")
        }

        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    /// Every hook and the final tokens of the two paths agree: f32 sums in another order through 2
    /// blocks (measured 3–4e-7 relative on the seeds of these tests).
    fn assert_paths_agree(fast: &VitOutput, generic: &VitOutput) {
        assert_eq!(fast.hooks.len(), generic.hooks.len());
        for (a, b) in fast
            .hooks
            .iter()
            .zip(&generic.hooks)
            .chain([(&fast.tokens, &generic.tokens)])
        {
            let r = crate::test_util::rel_diff(a, b);
            assert!(r < 1e-5, "relative difference {r}");
        }
    }

    #[test]
    fn cpu_path_matches_generic_ops() {
        // Reference: the generic Candle path of the same ViT (the one the parity fixtures also check).
        let dev = Device::Cpu;
        let cfg = crate::config::DepthProConfig::tiny().patch_encoder;
        let vb = VarBuilder::from_backend(Box::new(RandomBackend), DType::F32, dev.clone());
        let mut vit = Vit::load(&cfg, vb).unwrap();
        // 3 images, a non-contiguous input (a narrowed view).
        let x = seeded((4, 3, 384, 384), 1.0, 7, &dev)
            .unwrap()
            .narrow(0, 1, 3)
            .unwrap();
        let fast = vit.forward_hooks(&x, &[1, 0], 2).unwrap();
        vit.set_cpu_fast_path(false);
        let generic = vit.forward_hooks(&x, &[1, 0], 2).unwrap();
        assert_eq!(fast.hooks[0].dims(), &[2, 577, 64]);
        assert_paths_agree(&fast, &generic);
        assert!(vit.forward_hooks(&x, &[2], 1).is_err());
        vit.set_cpu_fast_path(true);
        assert!(vit.forward_hooks(&x, &[2], 1).is_err());
    }

    #[test]
    fn cpu_path_splits_one_image_over_threads() {
        // One image in a 4-thread pool: attention splits its query rows (the image and FOV encoders'
        // case); the last block hooked twice.
        let dev = Device::Cpu;
        let cfg = crate::config::DepthProConfig::tiny().patch_encoder;
        let vb = VarBuilder::from_backend(Box::new(RandomBackend), DType::F32, dev.clone());
        let mut vit = Vit::load(&cfg, vb).unwrap();
        let x = seeded((1, 3, 384, 384), 1.0, 11, &dev).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let fast = pool.install(|| vit.forward_hooks(&x, &[1, 1], 1)).unwrap();
        vit.set_cpu_fast_path(false);
        let generic = vit.forward_hooks(&x, &[1, 1], 1).unwrap();
        assert_eq!(fast.hooks.len(), 2);
        assert_paths_agree(&fast, &generic);
    }

    #[test]
    fn patch_embedding_equals_conv2d() {
        // Reference: Candle's own conv2d with kernel = stride = 16 (what timm's PatchEmbed runs).
        let dev = Device::Cpu;
        let mut vit = zero_vit();
        let w = Tensor::randn(0f32, 1.0, (64, 3, 16, 16), &dev).unwrap();
        vit.patch_weight = w.reshape((64, 768)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 3, 384, 384), &dev).unwrap();
        let ours = vit.embed(&x).unwrap().narrow(1, 1, 576).unwrap();
        let conv = x.conv2d(&w, 0, 16, 1, 1).unwrap(); // (1, 64, 24, 24)
        let conv = conv.flatten_from(2).unwrap().transpose(1, 2).unwrap();
        let diff = (ours - conv)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-3, "max |diff| = {diff}"); // sums of 768 products of magnitude ~1
    }
}
