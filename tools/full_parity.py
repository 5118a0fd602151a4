#!/usr/bin/env python3
"""Full-size Depth Pro parity: reference side.

Builds Hugging Face ``transformers.DepthProForDepthEstimation`` at the FULL Apple configuration (three
DINOv2 ViT-L/16 encoders, 1024 wide, 24 blocks, 16 heads, hooks after blocks 5 and 11, decoder 256, FOV head)
with every tensor random (seeded, rounded through fp16 like the real checkpoint), saves the weights exactly
as Apple ships them (``depth_pro.pt``: torch zip pickle of a flat fp16 state dict with Apple's key names,
1119 tensors), renders one non-square photo-sized test image, runs the reference and writes what the Rust
side must reproduce.

Inputs: none (everything comes from the seed).

Outputs (in --out, default target/full-parity/; ~2 GB, never committed):
  depth_pro.pt           random weights, Apple naming, fp16 (same format as Apple's checkpoint)
  image.png              the --width x --height uint8 RGB test image
  depth_pred_fov.npy     reference metric depth (float32, H x W) with the FOV head's focal length
  depth_given_focal.npy  reference metric depth with the focal length given as 1.2 * W
  reference.json         predicted FOV (deg), focal lengths (px), timings, versions

Then run the Rust side on the same files:
  cargo run --release -p depth2ply-model --example full_parity -- target/full-parity

Command (from the repository root; about 10 minutes and 12 GB of RAM on 2 CPU cores):
  /work/venv-ref/bin/python tools/full_parity.py
Pinned environment: tools/requirements-reference.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from transformers import DepthProConfig, DepthProForDepthEstimation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as tiny  # noqa: E402  (shared randomisation, key mapping, preprocessing)

SEED = 20241121
NET_SIZE = 1536
GIVEN_FOCAL_FACTOR = 1.2

# Apple's released model (docs/network.md §2, §9.1): DINOv2 ViT-L/16 sub-models, hooks [11, 5],
# dims [256, 256], scaled-image dims [1024, 1024, 512], decoder 256.
VIT_L = dict(
    model_type="dinov2",
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    patch_size=16,
    image_size=384,
    use_mask_token=False,
)
HF_CONFIG = dict(
    patch_size=384,
    fusion_hidden_size=256,
    intermediate_hook_ids=[11, 5],
    intermediate_feature_dims=[256, 256],
    scaled_images_feature_dims=[1024, 1024, 512],
    use_fov_model=True,
)


def make_image(width: int, height: int) -> np.ndarray:
    """Deterministic photo-like pattern: smooth gradients, discs and stripes, all sizes non-square-safe."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)
    r = 255.0 * (0.5 + 0.5 * np.sin(6.0 * u + 2.0 * v))
    g = 255.0 * v
    b = 60.0 + 120.0 * ((np.floor(x / 37.0) + np.floor(y / 23.0)) % 2)
    for cx, cy, rad in ((0.3, 0.4, 0.15), (0.7, 0.6, 0.2)):
        disc = (u - cx) ** 2 + ((v - cy) * height / width) ** 2 < rad**2
        r = np.where(disc, 255.0 - r, r)
        b = np.where(disc, 230.0, b)
    img = np.stack([r, g, b], axis=-1)
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def postprocess(canonical: torch.Tensor, width: int, height: int, f_px: torch.Tensor) -> torch.Tensor:
    """Apple ``infer()`` (docs/network.md §3.11) in fp32: metric depth H x W."""
    inv = canonical * (width / f_px)
    inv = F.interpolate(inv, size=(height, width), mode="bilinear", align_corners=False)
    return (1.0 / torch.clamp(inv, min=1e-4, max=1e4))[0, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="target/full-parity")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    cfg = DepthProConfig(
        **HF_CONFIG,
        image_model_config=dict(VIT_L),
        patch_model_config=dict(VIT_L),
        fov_model_config=dict(VIT_L),
    )
    model = DepthProForDepthEstimation(cfg).eval()
    model.set_attn_implementation("eager")
    tiny.randomise(model, torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        # 24 blocks instead of 2: smaller LayerScale keeps the residual stream O(1), as in trained DINOv2.
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.mul_(0.2)
        # The FOV bias puts the predicted field of view near a typical 55 degrees.
        model.fov_model.head.layers[4].bias.fill_(55.0)
    tiny.round_fp16(model)
    t_build = time.time() - t0

    img = make_image(args.width, args.height)
    Image.fromarray(img).save(os.path.join(args.out, "image.png"))
    x = tiny.preprocess_apple(img)

    # The last depth conv's input is captured so that the conv can be re-calibrated without a second
    # full forward pass: the final conv + ReLU are then re-run on that input with the calibrated weights,
    # which is exactly what the full model computes with them.
    last_conv = model.head.layers[4]
    captured = {}
    hook = last_conv.register_forward_hook(lambda _m, inp, _out: captured.update(x=inp[0].detach().clone()))
    t0 = time.time()
    with torch.no_grad():
        out = model(pixel_values=x)
    t_forward = time.time() - t0
    hook.remove()
    with torch.no_grad():
        # Same rule as the tiny fixtures: ~20 % of the pre-ReLU output <= 0, median 0.5.
        z = last_conv(captured["x"]).flatten()[::97]
        q20, q50 = torch.quantile(z, 0.2).item(), torch.quantile(z, 0.5).item()
        s = 0.5 / (q50 - q20)
        last_conv.weight.mul_(s)
        last_conv.bias.copy_(s * (last_conv.bias - q20))
        last_conv.weight.copy_(last_conv.weight.half().float())
        last_conv.bias.copy_(last_conv.bias.half().float())
        canonical = torch.relu(last_conv(captured["x"])).float()
    fov_deg = out.field_of_view.float().reshape(1)
    f_pred = 0.5 * args.width / torch.tan(0.5 * torch.deg2rad(fov_deg))
    f_given = torch.tensor([GIVEN_FOCAL_FACTOR * args.width], dtype=torch.float32)
    depth_pred = postprocess(canonical, args.width, args.height, f_pred)
    depth_given = postprocess(canonical, args.width, args.height, f_given)
    np.save(os.path.join(args.out, "depth_pred_fov.npy"), depth_pred.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "depth_given_focal.npy"), depth_given.numpy().astype(np.float32))

    tiny.DEPTH = VIT_L["num_hidden_layers"]  # hf_to_apple walks this many blocks per ViT
    apple_sd = tiny.hf_to_apple({k: v.detach() for k, v in model.state_dict().items()})
    fp16_sd = type(apple_sd)((k, v.half()) for k, v in apple_sd.items())
    fp16_sd._metadata = tiny.module_metadata(fp16_sd.keys())
    torch.save(fp16_sd, os.path.join(args.out, "depth_pro.pt"))

    ref = {
        "image": {"width": args.width, "height": args.height},
        "fov_deg": fov_deg.item(),
        "focal_px_pred": f_pred.item(),
        "focal_px_given": f_given.item(),
        "canonical_positive_fraction": (canonical > 0).float().mean().item(),
        "depth_pred_fov_min_max": [depth_pred.min().item(), depth_pred.max().item()],
        "tensors": len(apple_sd),
        "params": int(sum(v.numel() for v in apple_sd.values())),
        "seconds": {"build": t_build, "forward": t_forward},
        "threads": args.threads,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    sys.exit(main())
