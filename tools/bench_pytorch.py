#!/usr/bin/env python3
"""CPU benchmark of the PyTorch reference: one full-size Depth Pro forward pass, stage by stage.

The counterpart of ``cargo run --release -p depth2ply-model --example bench_forward``: Hugging Face
``transformers.DepthProForDepthEstimation`` at the full Apple configuration (three DINOv2 ViT-L/16, decoder
256, FOV head), random weights (same randomisation as tools/full_parity.py; speed does not depend on the
values), fp32, the attention implementation transformers picks by default (SDPA; printed), on a generated
non-square photo (default 1200x800) with the same thread count for intra-op work.

Inputs: none. Output (stdout): the same stage table as the Rust benchmark (wall time, analytic GFLOP,
GFLOP/s, % of the fp32 peak, peak RSS during the stage, CPU time), then the total, the peak RSS (VmHWM)
and the model build time. Stages are timed with forward pre-hooks/hooks on the modules:
  patch encoder   depth_pro.encoder.patch_encoder (includes the image pyramid and window split/merge)
  image encoder   depth_pro.encoder.image_encoder
  neck            depth_pro.neck.feature_upsample + depth_pro.neck.fuse_image_with_low_res
  decoder         depth_pro.neck.feature_projection + fusion_stage (Apple's decoder convs + fusions)
  head            head
  fov encoder     fov_model.fov_encoder
  fov head        fov_model.conv + fov_model.head
  preprocessing / post-processing: Apple's transform + resize and infer() post-processing in torch
  (tools/full_parity.py; DepthProImageProcessor would need torchvision, which has no wheel for torch 2.15).

Command (from the repository root; about 3 minutes and 9 GB of RAM with 2 threads on a quiet machine):
  /work/venv-ref/bin/python tools/bench_pytorch.py --threads 2
Pinned environment: tools/requirements-reference.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import transformers
from transformers import DepthProConfig, DepthProForDepthEstimation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import full_parity as full  # noqa: E402  (full config, test image)
import make_parity_fixtures as tiny  # noqa: E402  (randomisation)

VIT = dict(embed=1024, depth=24, heads=16, mlp=4096, patch=16, size=384)
DIMS = (256, 512, 1024, 1024)  # Apple encoder_feature_dims
DEC = 256
HEAD = 32


def gflop(macs: float) -> float:
    return 2.0 * macs / 1e9


def vit_gflop(windows: int) -> float:
    c, m, g, p = VIT["embed"], VIT["mlp"], VIT["size"] // VIT["patch"], VIT["patch"]
    n = g * g + 1
    embed = g * g * c * 3 * p * p
    block = n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * n * c * m
    return windows * gflop(embed + VIT["depth"] * block)


def conv(ci: int, co: int, k: int, hw: int) -> float:
    return hw * hw * ci * co * k * k


def convt(ci: int, co: int, hw: int) -> float:
    return hw * hw * ci * co * 4


def neck_gflop() -> float:
    e = VIT["embed"]
    d0, d1, d2, d3 = DIMS

    def pu(c_int, c_out, layers, hw):
        macs, c, s = conv(e, c_int, 1, hw), c_int, hw
        for _ in range(layers):
            macs += convt(c, c_out, s)
            c, s = c_out, 2 * s
        return macs

    return gflop(
        pu(d0, DEC, 3, 96) + pu(d0, d0, 2, 96) + pu(d1, d1, 1, 96) + pu(d2, d2, 1, 48) + pu(d3, d3, 1, 24)
        + convt(e, d3, 24) + conv(2 * d3, d3, 1, 48)
    )


def decoder_gflop() -> float:
    d0, d1, d2, d3 = DIMS
    d = DEC
    convs = conv(d0, d, 3, 384) + conv(d1, d, 3, 192) + conv(d2, d, 3, 96) + conv(d3, d, 3, 48)

    def fusion(s, skip, deconv):
        res = 2 * conv(d, d, 3, s)
        macs = res + (res if skip else 0)
        out = s
        if deconv:
            macs += convt(d, d, s)
            out = 2 * s
        return macs + conv(d, d, 1, out)

    return gflop(
        convs + fusion(48, False, True) + fusion(96, True, True) + fusion(192, True, True)
        + fusion(384, True, True) + fusion(768, True, False)
    )


def head_gflop() -> float:
    d = DEC
    return gflop(conv(d, d // 2, 3, 768) + convt(d // 2, d // 2, 768) + conv(d // 2, HEAD, 3, 1536) + conv(HEAD, 1, 1, 1536))


def fov_encoder_gflop() -> float:
    return vit_gflop(1) + gflop(577 * VIT["embed"] * DEC // 2)


def fov_head_gflop() -> float:
    d = DEC
    return gflop(conv(d, d // 2, 3, 24) + conv(d // 2, d // 4, 3, 12) + conv(d // 4, d // 8, 3, 6) + d // 8 * 36)


def status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class Stage:
    def __init__(self, name: str, gf: float):
        self.name, self.gflop = name, gf
        self.wall = self.cpu = 0.0
        self.peak_kib = 0
        self._t = self._c = 0.0

    def start(self) -> None:
        reset_peak()
        self._t, self._c = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall += time.perf_counter() - self._t
        self.cpu += time.process_time() - self._c
        self.peak_kib = max(self.peak_kib, status_kib("VmHWM:") or 0)


def hook(stage: Stage, *modules: torch.nn.Module) -> None:
    for m in modules:
        m.register_forward_pre_hook(lambda *_: stage.start())
        m.register_forward_hook(lambda *_: stage.stop())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--repeat", type=int, default=1, help="forward passes (the table shows the last)")
    ap.add_argument("--peak-gflops", type=float, default=250.0, help="fp32 peak of one core (GFLOP/s)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(full.SEED)

    t0 = time.perf_counter()
    cfg = DepthProConfig(
        **full.HF_CONFIG,
        image_model_config=dict(full.VIT_L),
        patch_model_config=dict(full.VIT_L),
        fov_model_config=dict(full.VIT_L),
    )
    model = DepthProForDepthEstimation(cfg).eval()
    tiny.randomise(model, torch.Generator().manual_seed(full.SEED))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.mul_(0.2)
        model.fov_model.head.layers[4].bias.fill_(55.0)
    build_s = time.perf_counter() - t0
    rss_after_build = status_kib("VmRSS:")
    peak_after_build = status_kib("VmHWM:") or 0
    attn = getattr(model.config, "_attn_implementation", "?")

    image = full.make_image(args.width, args.height)

    dp = model.depth_pro
    stages = {
        "pre": Stage("preprocessing", 0.0),
        "patch": Stage("patch encoder (35 windows)", vit_gflop(35)),
        "image": Stage("image encoder", vit_gflop(1)),
        "fov_enc": Stage("fov encoder", fov_encoder_gflop()),
        "neck": Stage("neck", neck_gflop()),
        "decoder": Stage("decoder", decoder_gflop()),
        "head": Stage("head", head_gflop()),
        "fov_head": Stage("fov head", fov_head_gflop()),
        "post": Stage("post-processing", 0.0),
    }
    hook(stages["patch"], dp.encoder.patch_encoder)
    hook(stages["image"], dp.encoder.image_encoder)
    hook(stages["neck"], dp.neck.feature_upsample, dp.neck.fuse_image_with_low_res)
    hook(stages["decoder"], dp.neck.feature_projection, model.fusion_stage)
    hook(stages["head"], model.head)
    hook(stages["fov_enc"], model.fov_model.fov_encoder)
    hook(stages["fov_head"], model.fov_model.conv, model.fov_model.head)

    for run in range(args.repeat):
        for s in stages.values():
            s.wall = s.cpu = 0.0
            s.peak_kib = 0
        t_start, c_start = time.perf_counter(), time.process_time()
        with torch.no_grad():
            stages["pre"].start()
            pixel_values = tiny.preprocess_apple(image)
            stages["pre"].stop()
            t_fwd = time.perf_counter()
            outputs = model(pixel_values=pixel_values)
            fwd_s = time.perf_counter() - t_fwd
            stages["post"].start()
            fov_deg = outputs.field_of_view.float().reshape(1)
            f_px = 0.5 * args.width / torch.tan(0.5 * torch.deg2rad(fov_deg))
            canonical = outputs.predicted_depth.reshape(1, 1, *outputs.predicted_depth.shape[-2:])
            depth = full.postprocess(canonical, args.width, args.height, f_px)
            stages["post"].stop()
        total_s, total_cpu = time.perf_counter() - t_start, time.process_time() - c_start
        if not torch.isfinite(depth).all():
            print("warning: non-finite depth", file=sys.stderr)
        print(f"run {run + 1}: {total_s:.3f} s wall, {total_cpu:.2f} s CPU", file=sys.stderr)

    peak_all = args.peak_gflops * args.threads
    load = os.getloadavg()
    print(
        f"PyTorch {torch.__version__} transformers {transformers.__version__} bench: {args.width}x{args.height} photo, "
        f"threads {args.threads}, attention {attn}, fp32, load average {load[0]:.2f} (1 min) {load[1]:.2f} (5 min)"
    )
    print(f"{'stage':<28} {'time s':>9} {'GFLOP':>9} {'GFLOP/s':>9} {'% peak':>7} {'peak MiB':>10} {'CPU s':>9} {'GF/CPU-s':>10}")
    sum_t = sum_f = sum_c = 0.0
    for s in stages.values():
        sum_t += s.wall
        sum_f += s.gflop
        sum_c += s.cpu
        rate = s.gflop / s.wall if s.gflop and s.wall else None
        per_cpu = s.gflop / s.cpu if s.gflop and s.cpu else None
        print(
            f"{s.name:<28} {s.wall:>9.3f} {s.gflop:>9.1f} {rate and f'{rate:.1f}' or '-':>9} "
            f"{rate and f'{100 * rate / peak_all:.1f}' or '-':>7} {s.peak_kib / 1024:>10.0f} {s.cpu:>9.2f} "
            f"{per_cpu and f'{per_cpu:.1f}' or '-':>10}"
        )
    other = fwd_s - sum(s.wall for k, s in stages.items() if k not in ("pre", "post"))
    print(f"{'other (outside the hooks)':<28} {other:>9.3f}")
    print(
        f"{'total':<28} {total_s:>9.3f} {sum_f:>9.1f} {sum_f / total_s:>9.1f} {100 * sum_f / total_s / peak_all:>7.1f} "
        f"{'':>10} {total_cpu:>9.2f} {sum_f / total_cpu:>10.1f}"
    )
    peak = max([peak_after_build] + [s.peak_kib for s in stages.values()])
    print(
        f"model build {build_s:.2f} s; RSS after build {(rss_after_build or 0) / 1024:.0f} MiB; peak RSS (VmHWM) "
        f"{peak / 1024:.0f} MiB; fp32 peak assumed {peak_all:.0f} GFLOP/s ({args.peak_gflops:.0f} per core)"
    )


if __name__ == "__main__":
    main()
