#!/usr/bin/env python3
"""Generate the tiny Depth Pro parity fixtures for crates/depth2ply-model/tests/fixtures/.

What it does
------------
1. Builds Hugging Face ``transformers.DepthProForDepthEstimation`` at the tiny config of
   docs/network.md §9.5 (fusion_hidden_size 32, intermediate_hook_ids [1, 0], intermediate_feature_dims
   [32, 32], scaled_images_feature_dims [64, 64, 48], use_fov_model True, three Dinov2 sub-models with
   hidden 64, 2 layers, 2 heads, patch 16, image 384, no mask token). The 1536/384/16 geometry of the real
   model is kept.
2. Seeds torch and randomises EVERY parameter (LayerScale, biases and norms included) with scales that keep
   activations O(1). A calibration pass then rescales the last depth-head conv (so that about 80 % of
   the canonical inverse depth is positive, median 0.5) and the last FOV conv (FOV = 55 deg +- 8 deg).
   All weights are rounded through fp16, so the fp16 and fp32 files hold identical values.
3. Converts the HF state dict to Apple's ``depth_pro.pt`` naming (docs/network.md §9.4; q, k, v
   concatenated into ``qkv``) and checks the conversion by running an independent functional
   re-implementation of Apple's forward pass (written here from docs/network.md §3/§4, using only the
   Apple-named tensors) against the HF model: every stored intermediate must agree.
4. Makes a deterministic non-square RGB test image (101 x 67, prime sizes so that no resize ratio is exact),
   preprocesses it like Apple's ``transform`` + ``infer`` ((x/255 - 0.5)/0.5, then bilinear resize to
   1536^2, align_corners False, antialias False), runs the HF model with forward hooks and post-processes like
   Apple's ``infer()`` (docs/network.md §3.11) with the predicted FOV and with a given focal length
   (1.2 * W).

Inputs: none (everything is generated from the seeds below).

Outputs (in --out, default crates/depth2ply-model/tests/fixtures/):
  tiny_apple_fp16.pt        Apple naming, flat OrderedDict (with the `_metadata` attribute that
                            `state_dict()` adds), fp16, torch zip format: like depth_pro.pt
  tiny_apple.safetensors    Apple naming, fp32 (same values)
  tiny_hf.safetensors       HF naming exactly as transformers 5.23 ``save_pretrained`` writes it, fp16
  pt_views_fp32.pt          small .pt with fp32/fp64/bf16 tensors, transposed and offset views (reader test)
  nested_state_dict.pt      {"state_dict": {...3 tensors...}, "epoch": 3} (nested-checkpoint detection test)
  image.png                 the 101 x 67 uint8 RGB test image
  reference.safetensors     intermediate and final tensors of the reference run (fp32; large maps are
                            stored as deterministic slices, see README.md and the safetensors metadata)
  meta.json                 HF config, seeds, versions, tensor counts, checks

There is deliberately no full fp32 `.pt`: with it the fixtures would exceed the 10 MB budget; the fp32
pickle path is covered by pt_views_fp32.pt. The output is deterministic (byte-identical on re-runs).

Command (from the repository root; about 15 seconds on 2 CPU cores):
  /work/venv-ref/bin/python tools/make_parity_fixtures.py
Pinned environment: tools/requirements-reference.txt.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
import PIL
import safetensors
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import DepthProConfig, DepthProForDepthEstimation

SEED = 20241004
IMAGE_W = 101
IMAGE_H = 67
GIVEN_FOCAL_FACTOR = 1.2  # f_px given = 1.2 * W
NET_SIZE = 1536
FULL_LIMIT = 40_000  # tensors with at most this many elements are stored complete

VIT = dict(
    model_type="dinov2",
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    patch_size=16,
    image_size=384,
    use_mask_token=False,
)
HF_CONFIG = dict(
    patch_size=384,
    fusion_hidden_size=32,
    intermediate_hook_ids=[1, 0],
    intermediate_feature_dims=[32, 32],
    scaled_images_feature_dims=[64, 64, 48],
    use_fov_model=True,
)
# Apple-side equivalents of the config above (docs/network.md §9.5).
EMBED = 64
HEADS = 2
DEPTH = 2
DECODER = 32
APPLE_HOOK_IDS = [0, 1]  # encoder_feature_layer_ids[:2]: block 0 -> latent0 (768^2), block 1 -> latent1 (384^2)


# --------------------------------------------------------------------------------------------------
# Model construction and randomisation


def build_hf_model() -> DepthProForDepthEstimation:
    cfg = DepthProConfig(
        **HF_CONFIG,
        image_model_config=dict(VIT),
        patch_model_config=dict(VIT),
        fov_model_config=dict(VIT),
    )
    model = DepthProForDepthEstimation(cfg).eval()
    # Eager attention: plain matmul-softmax-matmul, the same maths the port implements.
    model.set_attn_implementation("eager")
    return model


def randomise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrites every parameter with seeded random values (scales keep activations O(1))."""

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(model.state_dict()), "buffers present: randomise them too"
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if name.endswith("cls_token"):
                v = normal(shape, 0.5)
            elif name.endswith("position_embeddings"):
                v = normal(shape, 0.5)
            elif "layer_scale" in name:
                v = uniform(shape, 0.3, 1.0)
            elif ("norm" in name) and name.endswith("weight"):
                v = uniform(shape, 0.6, 1.4)
            elif name.endswith("bias"):
                v = normal(shape, 0.1)
            elif p.dim() == 2:  # Linear [out, in]
                v = normal(shape, 1.0 / math.sqrt(shape[1]))
            elif p.dim() == 4:
                if isinstance(_module_of(model, name), torch.nn.ConvTranspose2d):
                    # [in, out, 2, 2], stride 2: every output sums over `in` inputs only.
                    fan_in = shape[0]
                else:
                    fan_in = shape[1] * shape[2] * shape[3]
                v = normal(shape, 1.0 / math.sqrt(fan_in))
            else:
                raise ValueError(f"no rule for {name} {tuple(shape)}")
            p.copy_(v)


def _module_of(model: torch.nn.Module, param_name: str) -> torch.nn.Module:
    return model.get_submodule(param_name.rsplit(".", 1)[0])


def module_metadata(keys) -> collections.OrderedDict:
    """The `_metadata` PyTorch attaches to a state dict: {module path: {"version": 1}} for every module."""
    meta = collections.OrderedDict([("", {"version": 1})])
    for k in keys:
        parts = k.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            meta.setdefault(".".join(parts[:i]), {"version": 1})
    return meta


def round_fp16(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


# --------------------------------------------------------------------------------------------------
# HF -> Apple key mapping (docs/network.md §9.4)

VIT_PREFIXES = [
    ("depth_pro.encoder.patch_encoder.model.", "encoder.patch_encoder."),
    ("depth_pro.encoder.image_encoder.model.", "encoder.image_encoder."),
    ("fov_model.fov_encoder.model.", "fov.encoder.0."),
]


def hf_to_apple(sd: dict[str, torch.Tensor]) -> collections.OrderedDict:
    """HF (v5 in-memory names) -> Apple depth_pro.pt names, in Apple's module order."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(k):
        used.add(k)
        return sd[k]

    for hf_p, ap in VIT_PREFIXES:
        out[ap + "cls_token"] = take(hf_p + "embeddings.cls_token")
        out[ap + "pos_embed"] = take(hf_p + "embeddings.position_embeddings")
        for s in ("weight", "bias"):
            out[ap + f"patch_embed.proj.{s}"] = take(hf_p + f"embeddings.patch_embeddings.projection.{s}")
        for i in range(DEPTH):
            h = f"{hf_p}encoder.layer.{i}."
            a = f"{ap}blocks.{i}."
            for s in ("weight", "bias"):
                out[a + f"norm1.{s}"] = take(h + f"norm1.{s}")
            for s in ("weight", "bias"):
                out[a + f"attn.qkv.{s}"] = torch.cat(
                    [take(h + f"attention.{x}_proj.{s}") for x in ("q", "k", "v")], dim=0
                )
            for s in ("weight", "bias"):
                out[a + f"attn.proj.{s}"] = take(h + f"attention.o_proj.{s}")
            out[a + "ls1.gamma"] = take(h + "layer_scale1.lambda1")
            for s in ("weight", "bias"):
                out[a + f"norm2.{s}"] = take(h + f"norm2.{s}")
            for fc in ("fc1", "fc2"):
                for s in ("weight", "bias"):
                    out[a + f"mlp.{fc}.{s}"] = take(h + f"mlp.{fc}.{s}")
            out[a + "ls2.gamma"] = take(h + "layer_scale2.lambda1")
        for s in ("weight", "bias"):
            out[ap + f"norm.{s}"] = take(hf_p + f"layernorm.{s}")

    up = "depth_pro.neck.feature_upsample."
    for j in range(4):
        out[f"encoder.upsample_latent0.{j}.weight"] = take(f"{up}intermediate.1.layers.{j}.weight")
    for j in range(3):
        out[f"encoder.upsample_latent1.{j}.weight"] = take(f"{up}intermediate.0.layers.{j}.weight")
    for apple_i, hf_i in ((0, 2), (1, 1), (2, 0)):
        for j in range(2):
            out[f"encoder.upsample{apple_i}.{j}.weight"] = take(f"{up}scaled_images.{hf_i}.layers.{j}.weight")
    for s in ("weight", "bias"):
        out[f"encoder.upsample_lowres.{s}"] = take(f"{up}image_block.layers.0.{s}")
    for s in ("weight", "bias"):
        out[f"encoder.fuse_lowres.{s}"] = take(f"depth_pro.neck.fuse_image_with_low_res.{s}")

    for k in (1, 2, 3, 4):
        out[f"decoder.convs.{k}.weight"] = take(f"depth_pro.neck.feature_projection.projections.{4 - k}.weight")
    for k in range(5):
        h = "fusion_stage.final." if k == 0 else f"fusion_stage.intermediate.{4 - k}."
        a = f"decoder.fusions.{k}."
        for n in (1, 2):
            for c_hf, c_ap in (("convolution1", "1"), ("convolution2", "3")):
                for s in ("weight", "bias"):
                    out[f"{a}resnet{n}.residual.{c_ap}.{s}"] = take(f"{h}residual_layer{n}.{c_hf}.{s}")
        if k != 0:
            out[f"{a}deconv.weight"] = take(f"{h}deconv.weight")
        for s in ("weight", "bias"):
            out[f"{a}out_conv.{s}"] = take(f"{h}projection.{s}")

    for j in (0, 1, 2, 4):
        for s in ("weight", "bias"):
            out[f"head.{j}.{s}"] = take(f"head.layers.{j}.{s}")

    for s in ("weight", "bias"):
        out[f"fov.encoder.1.{s}"] = take(f"fov_model.fov_encoder.neck.{s}")
    for s in ("weight", "bias"):
        out[f"fov.downsample.0.{s}"] = take(f"fov_model.conv.{s}")
    for j in (0, 2, 4):
        for s in ("weight", "bias"):
            out[f"fov.head.{j}.{s}"] = take(f"fov_model.head.layers.{j}.{s}")

    missing = sorted(set(sd) - used)
    assert not missing, f"HF tensors not mapped: {missing}"
    return collections.OrderedDict((k, v.detach().clone().contiguous()) for k, v in out.items())


# --------------------------------------------------------------------------------------------------
# Independent functional forward with Apple-named weights (docs/network.md §3, §4)


def ln(x, sd, p):
    return F.layer_norm(x, (x.shape[-1],), sd[p + "weight"], sd[p + "bias"], eps=1e-6)


def vit(sd, P, x):
    """timm forward_features; returns (final-norm tokens, [block outputs])."""
    t = F.conv2d(x, sd[P + "patch_embed.proj.weight"], sd[P + "patch_embed.proj.bias"], stride=16)
    n, d = t.shape[0], t.shape[1]
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([sd[P + "cls_token"].expand(n, -1, -1), t], dim=1) + sd[P + "pos_embed"]
    blocks = []
    for i in range(DEPTH):
        b = f"{P}blocks.{i}."
        h = ln(t, sd, b + "norm1.")
        L = h.shape[1]
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"])
        qkv = qkv.reshape(n, L, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q @ k.transpose(-2, -1)) * (d // HEADS) ** -0.5, dim=-1) @ v
        a = a.transpose(1, 2).reshape(n, L, d)
        a = F.linear(a, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        t = t + a * sd[b + "ls1.gamma"]
        h = ln(t, sd, b + "norm2.")
        h = F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])
        h = F.gelu(h)
        h = F.linear(h, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        t = t + h * sd[b + "ls2.gamma"]
        blocks.append(t)
    return ln(t, sd, P + "norm."), blocks


def split(x, overlap):
    size = x.shape[-1]
    stride = int(384 * (1 - overlap))
    steps = int(math.ceil((size - 384) / stride)) + 1
    out = []
    for j in range(steps):
        for i in range(steps):
            out.append(x[..., j * stride : j * stride + 384, i * stride : i * stride + 384])
    return torch.cat(out, dim=0)


def to_map(tokens):
    n, L, d = tokens.shape
    g = int(round(math.sqrt(L - 1)))
    return tokens[:, 1:, :].reshape(n, g, g, d).permute(0, 3, 1, 2)


def merge(x, s, p):
    rows = []
    for j in range(s):
        cols = []
        for i in range(s):
            w = x[j * s + i : j * s + i + 1]
            r0 = p if j > 0 else 0
            r1 = w.shape[-2] - p if j < s - 1 else w.shape[-2]
            c0 = p if i > 0 else 0
            c1 = w.shape[-1] - p if i < s - 1 else w.shape[-1]
            cols.append(w[..., r0:r1, c0:c1])
        rows.append(torch.cat(cols, dim=-1))
    return torch.cat(rows, dim=-2)


def seq(sd, prefix, x, n, bias=False):
    for j in range(n):
        w = sd[f"{prefix}.{j}.weight"]
        b = sd.get(f"{prefix}.{j}.bias") if bias else None
        x = F.conv2d(x, w, b) if j == 0 else F.conv_transpose2d(x, w, b, stride=2)
    return x


def resblock(sd, p, x):
    y = F.relu(x)
    y = F.conv2d(y, sd[p + "residual.1.weight"], sd[p + "residual.1.bias"], padding=1)
    y = F.relu(y)
    y = F.conv2d(y, sd[p + "residual.3.weight"], sd[p + "residual.3.bias"], padding=1)
    return x + y


def fusion(sd, k, x0, x1=None):
    p = f"decoder.fusions.{k}."
    x = x0
    if x1 is not None:
        x = x + resblock(sd, p + "resnet1.", x1)
    x = resblock(sd, p + "resnet2.", x)
    if k != 0:
        x = F.conv_transpose2d(x, sd[p + "deconv.weight"], stride=2)
    return F.conv2d(x, sd[p + "out_conv.weight"], sd[p + "out_conv.bias"])


def apple_forward(sd, x):
    """Returns a dict of Apple-named intermediates for a [1, 3, 1536, 1536] input."""
    r = {}
    x1 = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    x2 = F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False)
    batch = torch.cat([split(x, 0.25), split(x1, 0.5), x2], dim=0)
    tokens, blocks = vit(sd, "encoder.patch_encoder.", batch)
    r["patch_tokens_final_win0"] = tokens[0:1]
    r["patch_tokens_final_win34"] = tokens[34:35]
    r["patch_tokens_block0_win0"] = blocks[0][0:1]
    r["patch_tokens_block1_win0"] = blocks[1][0:1]
    feats = to_map(tokens)
    r["x_latent0"] = merge(to_map(blocks[APPLE_HOOK_IDS[0]][:25]), 5, 3)
    r["x_latent1"] = merge(to_map(blocks[APPLE_HOOK_IDS[1]][:25]), 5, 3)
    r["x0"] = merge(feats[:25], 5, 3)
    r["x1"] = merge(feats[25:34], 3, 6)
    r["x2"] = feats[34:35]
    gtok, _ = vit(sd, "encoder.image_encoder.", x2)
    r["image_tokens_final"] = gtok
    r["x_global"] = to_map(gtok)
    r["enc_latent0"] = seq(sd, "encoder.upsample_latent0", r["x_latent0"], 4)
    r["enc_latent1"] = seq(sd, "encoder.upsample_latent1", r["x_latent1"], 3)
    r["enc_x0"] = seq(sd, "encoder.upsample0", r["x0"], 2)
    r["enc_x1"] = seq(sd, "encoder.upsample1", r["x1"], 2)
    r["enc_x2_up"] = seq(sd, "encoder.upsample2", r["x2"], 2)
    r["enc_global_up"] = F.conv_transpose2d(
        r["x_global"], sd["encoder.upsample_lowres.weight"], sd["encoder.upsample_lowres.bias"], stride=2
    )
    r["enc_fused"] = F.conv2d(
        torch.cat([r["enc_x2_up"], r["enc_global_up"]], dim=1),
        sd["encoder.fuse_lowres.weight"],
        sd["encoder.fuse_lowres.bias"],
    )
    enc = [r["enc_latent0"], r["enc_latent1"], r["enc_x0"], r["enc_x1"], r["enc_fused"]]
    conv = lambda k, t: F.conv2d(t, sd[f"decoder.convs.{k}.weight"], padding=1)  # noqa: E731
    r["dec_lowres_features"] = conv(4, enc[4])
    r["dec_fusion4"] = fusion(sd, 4, r["dec_lowres_features"])
    r["dec_proj3"] = conv(3, enc[3])
    r["dec_fusion3"] = fusion(sd, 3, r["dec_fusion4"], r["dec_proj3"])
    r["dec_proj2"] = conv(2, enc[2])
    r["dec_fusion2"] = fusion(sd, 2, r["dec_fusion3"], r["dec_proj2"])
    r["dec_proj1"] = conv(1, enc[1])
    r["dec_fusion1"] = fusion(sd, 1, r["dec_fusion2"], r["dec_proj1"])
    r["dec_fusion0"] = fusion(sd, 0, r["dec_fusion1"], enc[0])
    h = F.conv2d(r["dec_fusion0"], sd["head.0.weight"], sd["head.0.bias"], padding=1)
    h = F.conv_transpose2d(h, sd["head.1.weight"], sd["head.1.bias"], stride=2)
    h = F.relu(F.conv2d(h, sd["head.2.weight"], sd["head.2.bias"], padding=1))
    r["canonical_inverse_depth"] = F.relu(F.conv2d(h, sd["head.4.weight"], sd["head.4.bias"]))
    xf = F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False)
    ftok, _ = vit(sd, "fov.encoder.0.", xf)
    r["fov_tokens_final"] = ftok
    ftok = F.linear(ftok, sd["fov.encoder.1.weight"], sd["fov.encoder.1.bias"])
    r["fov_encoder_features"] = to_map(ftok)
    g = F.conv2d(r["dec_lowres_features"], sd["fov.downsample.0.weight"], sd["fov.downsample.0.bias"], stride=2, padding=1)
    r["fov_lowres_down"] = F.relu(g)
    f = r["fov_encoder_features"] + r["fov_lowres_down"]
    f = F.relu(F.conv2d(f, sd["fov.head.0.weight"], sd["fov.head.0.bias"], stride=2, padding=1))
    f = F.relu(F.conv2d(f, sd["fov.head.2.weight"], sd["fov.head.2.bias"], stride=2, padding=1))
    r["fov_deg"] = F.conv2d(f, sd["fov.head.4.weight"], sd["fov.head.4.bias"]).reshape(1)
    return r


# --------------------------------------------------------------------------------------------------
# HF run with forward hooks


def run_hf(model, x):
    cap = {}

    def hook(name):
        # Clone on capture: later in-place ops (ReLU(inplace=True)) may modify the tensors.
        def fn(_mod, _inp, out):
            if isinstance(out, torch.Tensor):
                out = out.detach().clone()
            elif isinstance(out, (list, tuple)):
                out = [t.detach().clone() for t in out]
            cap[name] = out

        return fn

    m = model
    handles = [
        m.depth_pro.encoder.patch_encoder.model.register_forward_hook(hook("patch_vit")),
        m.depth_pro.encoder.patch_encoder.register_forward_hook(hook("patch_encoder")),
        m.depth_pro.encoder.image_encoder.model.register_forward_hook(hook("image_vit")),
        m.depth_pro.encoder.image_encoder.register_forward_hook(hook("image_encoder")),
        m.depth_pro.neck.feature_upsample.register_forward_hook(hook("feature_upsample")),
        m.depth_pro.neck.fuse_image_with_low_res.register_forward_hook(hook("fuse")),
        m.depth_pro.neck.register_forward_hook(hook("neck")),
        m.fusion_stage.register_forward_hook(hook("fusion_stage")),
        m.head.layers[4].register_forward_hook(hook("head_pre_relu")),
        m.head.register_forward_hook(hook("head")),
        m.fov_model.fov_encoder.model.register_forward_hook(hook("fov_vit")),
        m.fov_model.fov_encoder.register_forward_hook(hook("fov_encoder")),
        m.fov_model.activation.register_forward_hook(hook("fov_activation")),
        m.fov_model.head.layers[4].register_forward_hook(hook("fov_head_out")),
    ]
    with torch.no_grad():
        out = model(pixel_values=x)
    for h in handles:
        h.remove()

    def c(t):
        return t.detach().clone()

    r = {}
    pv = cap["patch_vit"]
    r["patch_tokens_final_win0"] = c(pv.last_hidden_state[0:1])
    r["patch_tokens_final_win34"] = c(pv.last_hidden_state[34:35])
    r["patch_tokens_block0_win0"] = c(pv.hidden_states[1][0:1])
    r["patch_tokens_block1_win0"] = c(pv.hidden_states[2][0:1])
    pe = cap["patch_encoder"]  # [ratio .25, .5, 1, hook id 1, hook id 0] before the neck mutates nothing
    r["x2"], r["x1"], r["x0"] = c(pe[0]), c(pe[1]), c(pe[2])
    r["x_latent1"], r["x_latent0"] = c(pe[3]), c(pe[4])
    r["image_tokens_final"] = c(cap["image_vit"].last_hidden_state)
    r["x_global"] = c(cap["image_encoder"].features)
    fu = cap["feature_upsample"]  # [image_block, scaled .25, .5, 1, intermediate 0, 1]
    r["enc_global_up"], r["enc_x2_up"], r["enc_x1"], r["enc_x0"] = c(fu[0]), c(fu[1]), c(fu[2]), c(fu[3])
    r["enc_latent1"], r["enc_latent0"] = c(fu[4]), c(fu[5])
    r["enc_fused"] = c(cap["fuse"])
    nk = cap["neck"]  # projections: [convs4(fused), convs3(x1), convs2(x0), convs1(latent1), latent0]
    r["dec_lowres_features"], r["dec_proj3"], r["dec_proj2"], r["dec_proj1"] = c(nk[0]), c(nk[1]), c(nk[2]), c(nk[3])
    fs = cap["fusion_stage"]
    for k in range(5):
        r[f"dec_fusion{k}"] = c(fs[4 - k])
    r["canonical_inverse_depth"] = c(cap["head"]).unsqueeze(1)
    r["head_pre_relu"] = c(cap["head_pre_relu"])
    r["fov_tokens_final"] = c(cap["fov_vit"].last_hidden_state)
    r["fov_encoder_features"] = c(cap["fov_encoder"])
    r["fov_lowres_down"] = c(cap["fov_activation"])
    r["fov_head_out"] = c(cap["fov_head_out"])
    r["fov_deg"] = c(out.field_of_view).reshape(1)
    assert torch.equal(r["canonical_inverse_depth"][:, 0], out.predicted_depth)
    return r


# --------------------------------------------------------------------------------------------------
# Image, preprocessing, post-processing


def make_image() -> np.ndarray:
    """Deterministic 101 x 67 RGB pattern: gradients, a disc, a checkerboard band and diagonal stripes."""
    y, x = np.mgrid[0:IMAGE_H, 0:IMAGE_W].astype(np.float64)
    r = 255.0 * x / (IMAGE_W - 1)
    g = 255.0 * y / (IMAGE_H - 1)
    b = 40.0 + 60.0 * (((x // 7) + (y // 5)) % 2)
    disc = (x - 62.0) ** 2 + (y - 30.0) ** 2 < 17.0**2
    b = np.where(disc, 230.0, b)
    r = np.where(disc, 255.0 - r, r)
    stripes = ((x + 2 * y) // 6) % 2 == 0
    g = np.where((y > 48) & stripes, 20.0, g)
    img = np.stack([r, g, b], axis=-1)
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def preprocess_apple(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous().float().div(255.0)  # ToTensor
    t = (t - 0.5) / 0.5  # Normalize(mean 0.5, std 0.5)
    t = t.unsqueeze(0)
    return F.interpolate(t, size=(NET_SIZE, NET_SIZE), mode="bilinear", align_corners=False)


def preprocess_hf_emulated(img: np.ndarray) -> torch.Tensor:
    """DepthProImageProcessor (v5, torchvision backend) arithmetic, read from the 5.23 source:
    fused rescale+normalize = (x - 127.5) / 127.5 in fp32, then bilinear resize, antialias False.
    The processor itself needs torchvision, for which no wheel matching torch 2.15 was available."""
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous().float()
    mean = torch.tensor([0.5] * 3) * (1.0 / (1.0 / 255.0))
    std = torch.tensor([0.5] * 3) * (1.0 / (1.0 / 255.0))
    t = t.sub(mean[:, None, None]).div(std[:, None, None]).unsqueeze(0)
    return F.interpolate(t, size=(NET_SIZE, NET_SIZE), mode="bilinear", align_corners=False, antialias=False)


def postprocess_apple(canonical: torch.Tensor, fov_deg: torch.Tensor, f_px: torch.Tensor | None):
    """Apple infer() (docs/network.md §3.11), fp32 throughout. Returns (focal_px [1], inverse depth HxW, depth HxW)."""
    W, H = IMAGE_W, IMAGE_H
    if f_px is None:
        f_px = 0.5 * W / torch.tan(0.5 * torch.deg2rad(fov_deg.to(torch.float32)))
    inv = canonical * (W / f_px)
    inv = F.interpolate(inv, size=(H, W), mode="bilinear", align_corners=False)
    depth = 1.0 / torch.clamp(inv, min=1e-4, max=1e4)
    return f_px.reshape(1), inv[0, 0], depth[0, 0]


# --------------------------------------------------------------------------------------------------
# Storage of reference tensors (full or deterministic slices)


def slices_for(t: torch.Tensor):
    """Returns [(suffix, [[start, stop, step] per dim])]; documented in README.md."""
    shape = list(t.shape)
    if t.dim() == 3:  # tokens [1, 577, C]: class token + first 4 grid rows (97 tokens), all channels
        return [(".head", [[0, shape[0], 1], [0, 97, 1], [0, shape[2], 1]])]
    if t.numel() <= FULL_LIMIT:
        return [("", [[0, s, 1] for s in shape])]
    assert t.dim() == 4, shape
    b, c, h, w = shape
    # Feature maps (>= 16 channels): 6 x 6 corners and an 8 x 8 grid; images (1 or 3 channels): 32 x 32
    # corners and a 48 x 48 grid. Grid rows are rs/2, rs/2 + rs, ... with rs = h / n (same for columns).
    corner, n = (6, 8) if c >= 16 else (32, 48)
    rs, cs = h // n, w // n
    lead = [[0, b, 1], [0, c, 1]]
    return [
        (".tl", lead + [[0, corner, 1], [0, corner, 1]]),
        (".br", lead + [[h - corner, h, 1], [w - corner, w, 1]]),
        (".grid", lead + [[rs // 2, h, rs], [cs // 2, w, cs]]),
    ]


def take_slice(t, sl):
    idx = tuple(slice(a, b, s) for a, b, s in sl)
    return t[idx].contiguous()


# --------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="crates/depth2ply-model/tests/fixtures")
    args = ap.parse_args()
    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    model = build_hf_model()
    gen = torch.Generator().manual_seed(SEED)
    randomise(model, gen)
    round_fp16(model)

    img = make_image()
    x = preprocess_apple(img)
    x_hf = preprocess_hf_emulated(img)
    pre_diff = (x - x_hf).abs().max().item()

    # Calibration pass 1: depth head (about 20 % of pixels <= 0 before the final ReLU, median 0.5).
    r = run_hf(model, x)
    z = r["head_pre_relu"].flatten()
    q20, q50 = torch.quantile(z[:: 97], 0.2).item(), torch.quantile(z[:: 97], 0.5).item()
    s = 0.5 / (q50 - q20)
    fov_contrib = (r["fov_head_out"].flatten()[0] - model.fov_model.head.layers[4].bias[0]).item()
    with torch.no_grad():
        hl = model.head.layers[4]
        hl.weight.mul_(s)
        hl.bias.copy_(s * (hl.bias - q20))
        # FOV: scale the conv so the network's contribution is +-8 deg around 55 deg.
        fl = model.fov_model.head.layers[4]
        fl.weight.mul_(8.0 / abs(fov_contrib))
        fl.bias.fill_(55.0)
    round_fp16(model)

    # Final pass.
    r = run_hf(model, x)
    hf_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    apple_sd = hf_to_apple(hf_sd)
    with torch.no_grad():
        ra = apple_forward(apple_sd, x)
    checks = {}
    for k, v in ra.items():
        d = (v - r[k]).abs().max().item()
        scale = r[k].abs().max().item()
        checks[k] = {"max_abs_diff_apple_functional_vs_hf": d, "max_abs": scale}
        assert v.shape == r[k].shape, (k, v.shape, r[k].shape)
        assert d <= 1e-4 * max(1.0, scale), f"functional Apple forward disagrees with HF on {k}: {d}"

    canonical = r["canonical_inverse_depth"]
    fov = r["fov_deg"]
    pos_frac = (canonical > 0).float().mean().item()
    assert 0.5 < pos_frac < 0.97, pos_frac
    assert 30.0 < fov.item() < 80.0, fov.item()
    f_pred, inv_pred, depth_pred = postprocess_apple(canonical, fov, None)
    f_given = torch.tensor([GIVEN_FOCAL_FACTOR * IMAGE_W], dtype=torch.float32)
    _, inv_given, depth_given = postprocess_apple(canonical, fov, f_given)
    # HF post_process_depth_estimation arithmetic (model dtype fp32 here): must equal Apple's.
    hf_focal = 0.5 * IMAGE_W / torch.tan(0.5 * torch.deg2rad(fov[0]))
    hf_depth = F.interpolate(canonical * IMAGE_W / hf_focal, size=(IMAGE_H, IMAGE_W), mode="bilinear")
    hf_depth = 1.0 / torch.clamp(hf_depth, min=1e-4, max=1e4)
    post_diff = ((hf_depth[0, 0] - depth_pred).abs() / depth_pred).max().item()

    hf_config = model.config.to_dict()  # before .half() below changes its dtype field

    # ----- write weights
    fp16_sd = collections.OrderedDict((k, v.half()) for k, v in apple_sd.items())
    # Like `module.state_dict()`, which pickles a `_metadata` attribute (module versions) with the
    # tensors; readers must skip it.
    fp16_sd._metadata = module_metadata(fp16_sd.keys())
    torch.save(fp16_sd, os.path.join(out_dir, "tiny_apple_fp16.pt"))
    save_file({k: v.float().contiguous() for k, v in apple_sd.items()}, os.path.join(out_dir, "tiny_apple.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        model.half().save_pretrained(tmp)
        model.float()
        shutil.copyfile(os.path.join(tmp, "model.safetensors"), os.path.join(out_dir, "tiny_hf.safetensors"))
    with safetensors.safe_open(os.path.join(out_dir, "tiny_hf.safetensors"), "pt") as f:
        hf_saved_keys = sorted(f.keys())
    qkv_spelling = (
        "attention.attention.{query,key,value} + attention.output.dense"
        if any(".attention.attention.query." in k for k in hf_saved_keys)
        else "attention.{q,k,v}_proj + attention.o_proj"
    )

    # Reader test file: dtypes and views sharing one storage.
    base = apple_sd["fov.encoder.1.weight"].float()  # [16, 64]
    views = collections.OrderedDict()
    views["plain_f32"] = base.clone()
    views["transposed_f32"] = views["plain_f32"].t()  # non-contiguous view (fortran order)
    views["row3_f32"] = views["plain_f32"][3]  # storage offset 3 * 64
    views["cols_f32"] = views["plain_f32"][2:5, 10:14]  # offset + non-contiguous 2-D slice
    views["as_f64"] = base.double()
    views["as_bf16"] = base.bfloat16()
    views["as_f16"] = base.half()
    views["scalar_f32"] = torch.tensor(2.5)
    torch.save(views, os.path.join(out_dir, "pt_views_fp32.pt"))

    nested_inner = collections.OrderedDict(
        (k, apple_sd[k].half()) for k in ("head.4.weight", "head.4.bias", "fov.head.4.bias")
    )
    torch.save({"state_dict": nested_inner, "epoch": 3}, os.path.join(out_dir, "nested_state_dict.pt"))

    Image.fromarray(img).save(os.path.join(out_dir, "image.png"))
    assert np.array_equal(np.asarray(Image.open(os.path.join(out_dir, "image.png")).convert("RGB")), img)

    # ----- reference tensors
    full = {
        "input": x,
        "pyramid_x1": F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
        "pyramid_x2": F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False),
    }
    for k in ra:
        full[k] = r[k]
    full["focal_px_pred"] = f_pred
    full["inverse_depth_pred_fov"] = inv_pred
    full["depth_pred_fov"] = depth_pred
    full["focal_px_given"] = f_given
    full["inverse_depth_given_focal"] = inv_given
    full["depth_given_focal"] = depth_given
    tensors, meta = {}, {}
    for name, t in full.items():
        t = t.detach().float().contiguous()
        for suffix, sl in slices_for(t):
            tensors[name + suffix] = take_slice(t, sl)
            meta[name + suffix] = {"of": name, "source_shape": list(t.shape), "slice": sl}
    tensors["image_u8"] = torch.from_numpy(img.copy())
    meta["image_u8"] = {"of": "image_u8", "source_shape": list(img.shape), "slice": [[0, s, 1] for s in img.shape]}
    # One metadata key only: safetensors writes its metadata map in hash order, one key keeps the file
    # byte-reproducible.
    save_file(
        tensors,
        os.path.join(out_dir, "reference.safetensors"),
        metadata={"slices": json.dumps(meta, sort_keys=True, separators=(",", ":"))},
    )

    stats = {
        "canonical_inverse_depth_positive_fraction": pos_frac,
        "canonical_inverse_depth_min_max": [canonical.min().item(), canonical.max().item()],
        "fov_deg": fov.item(),
        "focal_px_pred": f_pred.item(),
        "focal_px_given": f_given.item(),
        "depth_pred_fov_min_max": [depth_pred.min().item(), depth_pred.max().item()],
        "depth_pred_fov_clamped_fraction": (depth_pred >= 1e4 * (1 - 1e-6)).float().mean().item(),
        "depth_given_focal_min_max": [depth_given.min().item(), depth_given.max().item()],
        "preprocess_apple_vs_hf_emulated_max_abs_diff": pre_diff,
        "postprocess_apple_vs_hf_max_rel_diff": post_diff,
    }
    meta_json = {
        "generator": "tools/make_parity_fixtures.py",
        "command": "/work/venv-ref/bin/python tools/make_parity_fixtures.py",
        "seed": SEED,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
        },
        "hf_config": hf_config,
        "apple_equivalent": {
            "embed_dim": EMBED,
            "depth": DEPTH,
            "num_heads": HEADS,
            "patch_size": 16,
            "img_size": 384,
            "encoder_feature_layer_ids": APPLE_HOOK_IDS,
            "encoder_feature_dims": [32, 48, 64, 64],
            "decoder_features": DECODER,
            "use_fov_head": True,
            "last_dims": [32, 1],
        },
        "image": {"width": IMAGE_W, "height": IMAGE_H},
        "given_focal_px": f_given.item(),
        "tensor_counts": {
            "apple": len(apple_sd),
            "hf_in_memory_v5_names": len(hf_sd),
            "hf_saved": len(hf_saved_keys),
            "reference": len(tensors),
        },
        "param_count": int(sum(v.numel() for v in apple_sd.values())),
        "hf_saved_attention_spelling": qkv_spelling,
        "stats": stats,
        "apple_functional_vs_hf": checks,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta_json, f, indent=1, sort_keys=False)
        f.write("\n")

    total = 0
    for fn in sorted(os.listdir(out_dir)):
        size = os.path.getsize(os.path.join(out_dir, fn))
        total += size
        print(f"{size:>10}  {fn}")
    print(f"{total:>10}  total")
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    sys.exit(main())
