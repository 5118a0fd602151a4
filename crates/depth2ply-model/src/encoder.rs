//! Depth Pro's multi-resolution encoder (`encoder.*`, Apple `DepthProEncoder`).
//!
//! Steps, for a `(b, 3, 1536, 1536)` network input:
//! 1. [`Pyramid::new`]: 1536², 768² and 384² images (bilinear, `align_corners=False`, computed as the
//!    exact 2×2 / central-2×2 block means that PyTorch's kernel reduces to at these scales).
//! 2. [`window_views`]: 5×5 windows of 384² at 1536² (stride 288), 3×3 at 768² (stride 192) and the
//!    whole 384² image — 35 windows, enumerated row-major, index `window · b + batch`.
//! 3. The patch ViT on all windows (in chunks), keeping the raw outputs of two hooked blocks.
//! 4. [`merge_windows`]: drop the class token, crop 3 (1536²) or 6 (768²) tokens on interior
//!    edges and tile: 96², 48², 24² maps; the hooked tokens of the 25 high-res windows give two more
//!    96² maps.
//! 5. The image ViT on the 384² image → 24² map.
//! 6. [`DepthProEncoder::neck`]: 1×1 projections and 2×2/stride-2 transposed convolutions up to
//!    768², 384², 192², 96² and 48² (the last fused with the image-encoder features).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::config::{DepthProConfig, GRID_SIZE, NETWORK_SIZE_PX, WINDOW_SIZE_PX};
use crate::network::{Conv1x1, ConvTranspose2x2};
use crate::vit::{tokens_to_grid, Vit};

/// Windows per side at 1536² (overlap 0.25 → stride 288 px).
pub const HIGH_RES_GRID: usize = 5;
/// Windows per side at 768² (overlap 0.5 → stride 192 px).
pub const MID_RES_GRID: usize = 3;
/// Number of ViT windows per image: 5·5 + 3·3 + 1 = 35.
pub const WINDOWS_PER_IMAGE: usize = HIGH_RES_GRID * HIGH_RES_GRID + MID_RES_GRID * MID_RES_GRID + 1;
/// Tokens cropped on each interior window edge when merging the 1536² windows (Apple `padding=3`).
pub const HIGH_RES_MERGE_CROP: usize = 3;
/// Tokens cropped on each interior window edge when merging the 768² windows (Apple `padding=6`).
pub const MID_RES_MERGE_CROP: usize = 6;

/// The 3-level image pyramid of the network input.
#[derive(Debug, Clone)]
pub struct Pyramid {
    /// The network input, `(b, 3, 1536, 1536)`.
    pub x0: Tensor,
    /// `F.interpolate(x0, scale_factor=0.5, bilinear)`, `(b, 3, 768, 768)`.
    pub x1: Tensor,
    /// `F.interpolate(x0, scale_factor=0.25, bilinear)`, `(b, 3, 384, 384)`; also the input of the
    /// image encoder and of the FOV encoder.
    pub x2: Tensor,
}

impl Pyramid {
    /// Builds the pyramid of a `(b, 3, 1536, 1536)` network input.
    ///
    /// PyTorch's bilinear kernel (`align_corners=False`) at scale 1/2 samples source position
    /// `2i + 0.5` (weights ½, ½) and at scale 1/4 position `4i + 1.5`; in f32 it evaluates
    /// `(x[r0,c0]·½ + x[r0,c1]·½)·½ + (x[r1,c0]·½ + x[r1,c1]·½)·½`, which is bit-identical to
    /// `((x[r0,c0] + x[r0,c1]) + (x[r1,c0] + x[r1,c1]))·¼` (scaling by powers of two is exact).
    pub fn new(x0: &Tensor) -> Result<Self> {
        let (_b, c, h, w) = x0.dims4()?;
        if c != 3 || h != NETWORK_SIZE_PX || w != NETWORK_SIZE_PX {
            candle_core::bail!(
                "network input must be (b, 3, {0}, {0}), got {1:?}",
                NETWORK_SIZE_PX,
                x0.dims()
            );
        }
        let x0 = x0.contiguous()?;
        Ok(Self {
            x1: block_mean_downsample(&x0, 2, 0)?,
            x2: block_mean_downsample(&x0, 4, 1)?,
            x0,
        })
    }
}

/// Mean of the 2×2 pixels at offset `first` inside every `factor`×`factor` block, summed in PyTorch's
/// order (columns first, then rows).
fn block_mean_downsample(x: &Tensor, factor: usize, first: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / factor, w / factor);
    let blocks = x.reshape((b, c, oh, factor, ow, factor))?;
    let pick = |dy: usize, dx: usize| -> Result<Tensor> {
        blocks.narrow(3, first + dy, 1)?.narrow(5, first + dx, 1)
    };
    let top = (pick(0, 0)? + pick(0, 1)?)?;
    let bottom = (pick(1, 0)? + pick(1, 1)?)?;
    ((top + bottom)? * 0.25)?.reshape((b, c, oh, ow))
}

/// Window offsets along one axis: `steps = ceil((size − 384) / stride) + 1`, offset `k · stride`.
fn window_offsets(size: usize, overlap_ratio: f64) -> Vec<usize> {
    let stride = (WINDOW_SIZE_PX as f64 * (1.0 - overlap_ratio)) as usize;
    let steps = (size - WINDOW_SIZE_PX).div_ceil(stride) + 1;
    (0..steps).map(|k| k * stride).collect()
}

/// The 35 window views (no copies) of a pyramid, in the patch encoder's batch order: 25 windows of
/// `x0`, 9 of `x1`, then `x2`; within a level row-major (outer loop over rows). Each view is
/// `(b, 3, 384, 384)`, so concatenating them on dim 0 gives batch index `window · b + image`.
pub fn window_views(pyramid: &Pyramid) -> Result<Vec<Tensor>> {
    let mut views = Vec::with_capacity(WINDOWS_PER_IMAGE);
    for (x, overlap) in [(&pyramid.x0, 0.25), (&pyramid.x1, 0.5)] {
        let (_b, _c, h, _w) = x.dims4()?;
        let offsets = window_offsets(h, overlap);
        for &y0 in &offsets {
            for &x0 in &offsets {
                views.push(x.narrow(2, y0, WINDOW_SIZE_PX)?.narrow(3, x0, WINDOW_SIZE_PX)?);
            }
        }
    }
    views.push(pyramid.x2.clone());
    Ok(views)
}

/// Merges the tokens of an `s × s` grid of windows (`(s²·b, 1 + 24², C)`, index `window · b + image`;
/// only the first `s²·b` rows are read) into a `(b, C, H, W)` map: each window drops `crop` tokens on
/// every edge that touches another window, then windows are tiled left to right, top to bottom
/// (Apple `DepthProEncoder.merge`).
pub fn merge_windows(tokens: &Tensor, batch: usize, grid: usize, crop: usize) -> Result<Tensor> {
    let (n, _t, _c) = tokens.dims3()?;
    if batch == 0 || n < grid * grid * batch {
        candle_core::bail!("merge_windows: {n} windows cannot hold a {grid}×{grid} grid of batch {batch}");
    }
    let maps = tokens_to_grid(&tokens.narrow(0, 0, grid * grid * batch)?, GRID_SIZE)?; // (n, g, g, C)
    let g = GRID_SIZE;
    let mut images = Vec::with_capacity(batch);
    for image in 0..batch {
        let mut rows = Vec::with_capacity(grid);
        for j in 0..grid {
            let mut row = Vec::with_capacity(grid);
            for i in 0..grid {
                let window = maps.get((j * grid + i) * batch + image)?; // (g, g, C)
                let (r0, r1) = (
                    if j > 0 { crop } else { 0 },
                    if j + 1 < grid { g - crop } else { g },
                );
                let (c0, c1) = (
                    if i > 0 { crop } else { 0 },
                    if i + 1 < grid { g - crop } else { g },
                );
                row.push(window.narrow(0, r0, r1 - r0)?.narrow(1, c0, c1 - c0)?);
            }
            rows.push(Tensor::cat(&row, 1)?);
        }
        // (H, W, C) → (C, H, W)
        images.push(Tensor::cat(&rows, 0)?.permute((2, 0, 1))?);
    }
    Tensor::stack(&images, 0)?.contiguous()
}

/// [`merge_windows`] of the `grid² · batch` windows starting at window `first` of `parts` taken one
/// after the other (the per-chunk ViT outputs, each `(n_i, 1 + 24², C)`), without concatenating them.
/// f32 CPU tensors are merged in one parallel pass (a transpose from token-major to channel-major);
/// anything else goes through [`merge_windows`].
fn merge_window_parts(
    parts: &[Tensor],
    first: usize,
    batch: usize,
    grid: usize,
    crop: usize,
) -> Result<Tensor> {
    let needed = grid * grid * batch;
    let total: usize = parts.iter().map(|p| p.dim(0)).sum::<Result<usize>>()?;
    if batch == 0 || first + needed > total || crop * 2 >= GRID_SIZE {
        candle_core::bail!(
            "merge_windows: {total} windows cannot hold a {grid}×{grid} grid of batch {batch} at {first}"
        );
    }
    let cpu_f32 = parts
        .iter()
        .all(|p| crate::kernels::supported(p) && p.is_contiguous());
    if !cpu_f32 {
        let all = Tensor::cat(parts, 0)?;
        return merge_windows(&all.narrow(0, first, needed)?, batch, grid, crop);
    }
    let (_n, t, c) = parts[0].dims3()?;
    let g = GRID_SIZE;
    if t != g * g + 1 || parts.iter().any(|p| p.dims()[1..] != [t, c]) {
        candle_core::bail!(
            "merge_windows: expected windows of {} tokens, got {:?}",
            g * g + 1,
            parts[0].dims()
        );
    }
    let data = parts
        .iter()
        .map(|p| crate::kernels::CpuF32::new(p, "merge_windows"))
        .collect::<Result<Vec<_>>>()?;
    let mut windows: Vec<&[f32]> = Vec::with_capacity(total);
    for d in &data {
        windows.extend(d.as_slice().chunks_exact(t * c));
    }
    let windows = &windows[first..first + needed];
    // Kept token range of grid row/column k and where it lands in the merged map.
    let kept = |k: usize| {
        (
            if k > 0 { crop } else { 0 },
            if k + 1 < grid { g - crop } else { g },
        )
    };
    let mut offsets = Vec::with_capacity(grid);
    let mut side = 0;
    for k in 0..grid {
        let (a, z) = kept(k);
        offsets.push(side);
        side += z - a;
    }
    let plane = side * side;
    let mut out = vec![0f32; batch * c * plane];
    // Tasks of 16 channel planes: each reads 64-byte pieces of every token and writes 16 planes.
    const PLANES: usize = 16;
    for (image, out_img) in out.chunks_mut(c * plane).enumerate() {
        out_img
            .par_chunks_mut(PLANES * plane)
            .enumerate()
            .for_each(|(blk, planes)| {
                let c0 = blk * PLANES;
                let k = planes.len() / plane;
                for (gy, &oy) in offsets.iter().enumerate() {
                    let (ty0, ty1) = kept(gy);
                    for (gx, &ox) in offsets.iter().enumerate() {
                        let (tx0, tx1) = kept(gx);
                        let tokens = windows[(gy * grid + gx) * batch + image];
                        for ty in ty0..ty1 {
                            for tx in tx0..tx1 {
                                let src = &tokens[(1 + ty * g + tx) * c + c0..][..k];
                                let dst = (oy + ty - ty0) * side + ox + tx - tx0;
                                for (j, &v) in src.iter().enumerate() {
                                    planes[j * plane + dst] = v;
                                }
                            }
                        }
                    }
                }
            });
    }
    Tensor::from_vec(out, (batch, c, side, side), parts[0].device())
}

/// Merged feature maps of the patch encoder, before the neck (Apple names in brackets).
#[derive(Debug, Clone)]
pub struct PatchFeatures {
    /// Hook `hook_block_ids[0]` of the 25 high-res windows, `(b, C, 96, 96)` (`x_latent0`).
    pub latent0: Tensor,
    /// Hook `hook_block_ids[1]` of the 25 high-res windows, `(b, C, 96, 96)` (`x_latent1`).
    pub latent1: Tensor,
    /// Final tokens of the 1536² windows, `(b, C, 96, 96)` (`x0_features`).
    pub x0: Tensor,
    /// Final tokens of the 768² windows, `(b, C, 48, 48)` (`x1_features`).
    pub x1: Tensor,
    /// Final tokens of the 384² image, `(b, C, 24, 24)` (`x2_features`).
    pub x2: Tensor,
}

/// The five encoder levels handed to the decoder, highest resolution first (Apple's list order).
#[derive(Debug, Clone)]
pub struct Encodings {
    /// `upsample_latent0(latent0)`: `(b, decoder_features, 768, 768)`.
    pub latent0: Tensor,
    /// `upsample_latent1(latent1)`: `(b, d0, 384, 384)`.
    pub latent1: Tensor,
    /// `upsample0(x0)`: `(b, d1, 192, 192)`.
    pub x0: Tensor,
    /// `upsample1(x1)`: `(b, d2, 96, 96)`.
    pub x1: Tensor,
    /// `fuse_lowres(cat(upsample2(x2), upsample_lowres(global)))`: `(b, d3, 48, 48)`.
    pub global: Tensor,
}

/// Apple `_create_project_upsample_block`: a bias-free 1×1 projection followed by bias-free
/// 2×2/stride-2 transposed convolutions (keys `.0`, `.1`, …).
#[derive(Debug, Clone)]
struct ProjectUpsample {
    proj: Conv1x1,
    upsample: Vec<ConvTranspose2x2>,
}

impl ProjectUpsample {
    fn load(dim_in: usize, dim_int: usize, dim_out: usize, layers: usize, vb: VarBuilder) -> Result<Self> {
        let proj = Conv1x1::load(dim_in, dim_int, false, vb.pp(0))?;
        let upsample = (0..layers)
            .map(|i| {
                ConvTranspose2x2::load(
                    if i == 0 { dim_int } else { dim_out },
                    dim_out,
                    false,
                    vb.pp(i + 1),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { proj, upsample })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.proj.forward(x)?;
        for layer in &self.upsample {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}

/// Patch encoder, image encoder and neck (keys under `encoder.`).
#[derive(Debug, Clone)]
pub struct DepthProEncoder {
    patch_encoder: Vit,
    image_encoder: Vit,
    hook_block_ids: [usize; 2],
    upsample_latent0: ProjectUpsample,
    upsample_latent1: ProjectUpsample,
    upsample0: ProjectUpsample,
    upsample1: ProjectUpsample,
    upsample2: ProjectUpsample,
    upsample_lowres: ConvTranspose2x2,
    fuse_lowres: Conv1x1,
}

impl DepthProEncoder {
    /// Reads the encoder weights under `vb` (normally `vb.pp("encoder")`).
    pub fn load(cfg: &DepthProConfig, vb: VarBuilder) -> Result<Self> {
        let e = cfg.patch_encoder.embed_dim;
        let [d0, d1, d2, d3] = cfg.encoder_feature_dims;
        Ok(Self {
            patch_encoder: Vit::load(&cfg.patch_encoder, vb.pp("patch_encoder"))?,
            image_encoder: Vit::load(&cfg.image_encoder, vb.pp("image_encoder"))?,
            hook_block_ids: cfg.hook_block_ids,
            upsample_latent0: ProjectUpsample::load(
                e,
                d0,
                cfg.decoder_features,
                3,
                vb.pp("upsample_latent0"),
            )?,
            upsample_latent1: ProjectUpsample::load(e, d0, d0, 2, vb.pp("upsample_latent1"))?,
            upsample0: ProjectUpsample::load(e, d1, d1, 1, vb.pp("upsample0"))?,
            upsample1: ProjectUpsample::load(e, d2, d2, 1, vb.pp("upsample1"))?,
            upsample2: ProjectUpsample::load(e, d3, d3, 1, vb.pp("upsample2"))?,
            upsample_lowres: ConvTranspose2x2::load(
                cfg.image_encoder.embed_dim,
                d3,
                true,
                vb.pp("upsample_lowres"),
            )?,
            fuse_lowres: Conv1x1::load(2 * d3, d3, true, vb.pp("fuse_lowres"))?,
        })
    }

    /// The patch-encoder ViT (`encoder.patch_encoder`).
    pub fn patch_encoder(&self) -> &Vit {
        &self.patch_encoder
    }

    /// The image-encoder ViT (`encoder.image_encoder`).
    pub fn image_encoder(&self) -> &Vit {
        &self.image_encoder
    }

    /// Runs the patch ViT on the 35 windows, at most `window_batch` windows at a time (bounds the
    /// attention memory: `window_batch · heads · 577²` floats), and merges the results.
    pub fn encode_patches(&self, pyramid: &Pyramid, window_batch: usize) -> Result<PatchFeatures> {
        let (b, _c, _h, _w) = pyramid.x0.dims4()?;
        let views = window_views(pyramid)?;
        let high_res_windows = HIGH_RES_GRID * HIGH_RES_GRID;
        let mut tokens = Vec::new();
        let (mut hook0, mut hook1) = (Vec::new(), Vec::new());
        let mut start = 0;
        for chunk in views.chunks(window_batch.max(1)) {
            let x = Tensor::cat(chunk, 0)?;
            // Hooked tokens are only used for the high-res windows.
            let hooks: &[usize] = if start < high_res_windows {
                &self.hook_block_ids
            } else {
                &[]
            };
            let keep = (high_res_windows.min(start + chunk.len()).saturating_sub(start)) * b;
            let out = self.patch_encoder.forward_hooks(&x, hooks, keep)?;
            drop(x);
            if let [h0, h1] = out.hooks.as_slice() {
                hook0.push(h0.clone());
                hook1.push(h1.clone());
            }
            tokens.push(out.tokens);
            start += chunk.len();
        }
        let mid_start = high_res_windows * b;
        let mid_windows = MID_RES_GRID * MID_RES_GRID * b;
        Ok(PatchFeatures {
            latent0: merge_window_parts(&hook0, 0, b, HIGH_RES_GRID, HIGH_RES_MERGE_CROP)?,
            latent1: merge_window_parts(&hook1, 0, b, HIGH_RES_GRID, HIGH_RES_MERGE_CROP)?,
            x0: merge_window_parts(&tokens, 0, b, HIGH_RES_GRID, HIGH_RES_MERGE_CROP)?,
            x1: merge_window_parts(&tokens, mid_start, b, MID_RES_GRID, MID_RES_MERGE_CROP)?,
            x2: merge_window_parts(&tokens, mid_start + mid_windows, b, 1, 0)?,
        })
    }

    /// Runs the image ViT on the 384² image: `(b, 3, 384, 384)` → `(b, C, 24, 24)`.
    pub fn encode_image(&self, x2: &Tensor) -> Result<Tensor> {
        let (b, _c, _h, _w) = x2.dims4()?;
        merge_window_parts(&[self.image_encoder.forward_tokens(x2)?], 0, b, 1, 0)
    }

    /// Projections and upsampling of the merged maps (no activations): see [`Encodings`].
    pub fn neck(&self, patch: PatchFeatures, global: Tensor) -> Result<Encodings> {
        let PatchFeatures {
            latent0,
            latent1,
            x0,
            x1,
            x2,
        } = patch;
        let x2 = self.upsample2.forward(&x2)?;
        let global = self.upsample_lowres.forward(&global)?;
        // Order matters: patch branch first, then the image encoder.
        let global = self.fuse_lowres.forward(&Tensor::cat(&[&x2, &global], 1)?)?;
        Ok(Encodings {
            latent0: self.upsample_latent0.forward(&latent0)?,
            latent1: self.upsample_latent1.forward(&latent1)?,
            x0: self.upsample0.forward(&x0)?,
            x1: self.upsample1.forward(&x1)?,
            global,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, IndexOp};

    #[test]
    fn window_offsets_match_apple() {
        // Source: spec §3.3 (ceil((size − 384) / stride) + 1 steps).
        assert_eq!(window_offsets(1536, 0.25), vec![0, 288, 576, 864, 1152]);
        assert_eq!(window_offsets(768, 0.5), vec![0, 192, 384]);
        assert_eq!(window_offsets(384, 0.0), vec![0]);
    }

    #[test]
    fn pyramid_is_block_mean() {
        // Analytic: x = row index r (constant along columns) → x1[i] = (2i + 2i+1)/2, x2[i] = 4i + 1.5.
        let dev = Device::Cpu;
        let rows = Tensor::arange(0f32, 1536.0, &dev)
            .unwrap()
            .reshape((1, 1, 1536, 1))
            .unwrap();
        let x = rows
            .broadcast_as((1, 3, 1536, 1536))
            .unwrap()
            .contiguous()
            .unwrap();
        let p = Pyramid::new(&x).unwrap();
        assert_eq!(p.x1.dims(), &[1, 3, 768, 768]);
        assert_eq!(p.x2.dims(), &[1, 3, 384, 384]);
        assert_eq!(p.x1.i((0, 2, 5, 7)).unwrap().to_scalar::<f32>().unwrap(), 10.5);
        assert_eq!(p.x2.i((0, 1, 5, 9)).unwrap().to_scalar::<f32>().unwrap(), 21.5);
        assert!(Pyramid::new(&x.narrow(3, 0, 1535).unwrap()).is_err());
    }

    #[test]
    fn merge_crops_interior_edges() {
        // Tokens carry (window, row, col) codes so the merged map can be checked position by position.
        let dev = Device::Cpu;
        let (grid, crop, g) = (3usize, 6usize, GRID_SIZE);
        let mut data = Vec::new();
        for w in 0..grid * grid {
            data.push(-1.0f32); // class token
            for t in 0..g * g {
                data.push((w * 1000 + t) as f32);
            }
        }
        let tokens = Tensor::from_vec(data, (grid * grid, g * g + 1, 1), &dev).unwrap();
        let m = merge_windows(&tokens, 1, grid, crop).unwrap();
        assert_eq!(m.dims(), &[1, 1, 48, 48]); // 18 + 12 + 18
        let at = |y: usize, x: usize| m.i((0, 0, y, x)).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(at(0, 0), 0.0);
        assert_eq!(at(0, 17), 17.0); // last kept column of window 0
        assert_eq!(at(0, 18), (1000 + 6) as f32); // window 1 starts at its column 6
        assert_eq!(at(18, 0), (3 * 1000 + 6 * 24) as f32); // window 3 starts at its row 6
        assert_eq!(at(47, 47), (8 * 1000 + 23 * 24 + 23) as f32);
        // 5×5 grid with crop 3 gives 21 + 18·3 + 21 = 96.
        let t = Tensor::zeros((25, 577, 2), DType::F32, &dev).unwrap();
        assert_eq!(merge_windows(&t, 1, 5, 3).unwrap().dims(), &[1, 2, 96, 96]);
    }

    #[test]
    fn merging_parts_equals_merging_the_concatenation() {
        // Reference: merge_windows (Candle narrow/cat/permute) on the concatenated windows.
        let dev = Device::Cpu;
        let all = Tensor::randn(0f32, 1.0, (2 + 9 * 2 + 3, 577, 37), &dev).unwrap();
        let parts = [
            all.narrow(0, 0, 7).unwrap(),
            all.narrow(0, 7, 5).unwrap(),
            all.narrow(0, 12, 11).unwrap(),
        ];
        let parts: Vec<Tensor> = parts.iter().map(|p| p.contiguous().unwrap()).collect();
        for (first, grid, crop) in [(2, 3, 6), (5, 1, 0), (0, 1, 0)] {
            let ours = merge_window_parts(&parts, first, 2, grid, crop).unwrap();
            let reference =
                merge_windows(&all.narrow(0, first, grid * grid * 2).unwrap(), 2, grid, crop).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            let diff = (ours - reference).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        }
        assert!(merge_window_parts(&parts, 20, 2, 3, 6).is_err());
    }

    #[test]
    fn windows_are_in_apple_order() {
        let dev = Device::Cpu;
        let cols = Tensor::arange(0f32, 1536.0, &dev)
            .unwrap()
            .reshape((1, 1, 1, 1536))
            .unwrap();
        let x = cols
            .broadcast_as((1, 3, 1536, 1536))
            .unwrap()
            .contiguous()
            .unwrap();
        let views = window_views(&Pyramid::new(&x).unwrap()).unwrap();
        assert_eq!(views.len(), WINDOWS_PER_IMAGE);
        let first_col = |k: usize| views[k].i((0, 0, 0, 0)).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(first_col(1), 288.0); // second window of the first row
        assert_eq!(first_col(5), 0.0); // first window of the second row
        assert_eq!(first_col(26), 384.5); // 768² level, column offset 192 → mean of 384, 385
    }
}
