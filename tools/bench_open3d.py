#!/usr/bin/env python3
"""Times Open3D 0.20 on the depth → coloured cloud → normals → binary PLY job, and depth2ply's
`pipeline_peak` example on the same input files in the same run, and prints the ratio.

Open3D job (legacy API, metric settings from docs/pointcloud.md §1.2):
  read_image(rgb.png), read_image(depth.png)
  RGBDImage.create_from_color_and_depth(depth_scale=1000, depth_trunc=1e4, convert_rgb_to_intensity=False)
  PointCloud.create_from_rgbd_image(PinholeCameraIntrinsic(W, H, fx, fy, cx, cy))
  estimate_normals(KDTreeSearchParamKNN(knn)) + orient_normals_towards_camera_location()
  io.write_point_cloud(out.ply, write_ascii=False)       (Open3D writes double x y z / nx ny nz)
depth2ply job (`examples/pipeline_peak.rs`): load_depth + image::open, cloud_from_depth with the default
filters (flying pixels) and image-grid normals, write_ply_file (float, binary little endian).
The two jobs differ in what they compute (k-NN PCA normals vs grid normals, no filter vs flying-pixel
filter); the comparison is "the usual way to do this job in Open3D" against ours.

Each job runs in its own process, so peak RSS (ru_maxrss of the child) is per job.

Inputs:  --inputs DIR with rgb.png, depth.png (16-bit mm, 0 = no depth) and camera.json
         ({"width", "height", "fx_px", "fy_px", "cx_px", "cy_px"}). When they are missing and --ours is
         given, `OURS --write-inputs DIR` creates the 4032×3024 synthetic scene first.
         --ours PATH: the built example, e.g. target/release/examples/pipeline_peak
         (cargo build --release -p depth2ply-geometry --example pipeline_peak).
Outputs: a table on stdout (seconds per stage, total, peak RSS, PLY size, points) and the ratio
         Open3D total / depth2ply total. PLYs go to DIR/open3d.ply and DIR/depth2ply.ply.
Requires: numpy, open3d==0.20.0 (tools/requirements-check.txt lists numpy; open3d is optional there).

Example:
  python tools/bench_open3d.py --inputs /tmp/d2p-bench --ours target/release/examples/pipeline_peak
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def open3d_worker(inputs: Path, out: Path, knn: int) -> None:
    """Runs in a child process; prints one JSON line of timings."""
    import numpy as np
    import open3d as o3d

    cam = json.loads((inputs / "camera.json").read_text())
    t0 = time.perf_counter()
    color = o3d.io.read_image(str(inputs / "rgb.png"))
    depth = o3d.io.read_image(str(inputs / "depth.png"))
    t1 = time.perf_counter()
    rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
        color, depth, depth_scale=1000.0, depth_trunc=1e4, convert_rgb_to_intensity=False)
    intrinsic = o3d.camera.PinholeCameraIntrinsic(
        cam["width"], cam["height"], cam["fx_px"], cam["fy_px"], cam["cx_px"], cam["cy_px"])
    pcd = o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intrinsic)
    t2 = time.perf_counter()
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=knn))
    pcd.orient_normals_towards_camera_location(np.zeros(3))
    t3 = time.perf_counter()
    if not o3d.io.write_point_cloud(str(out), pcd, write_ascii=False):
        raise SystemExit(f"open3d could not write {out}")
    t4 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "cloud_s": t2 - t1, "normals_s": t3 - t2, "write_s": t4 - t3,
                      "wall_s": t4 - t0, "points": len(pcd.points)}))


def run_measured(cmd: list[str]) -> tuple[str, float, int]:
    """Runs cmd and measures its own peak RSS with wait4 (Linux/macOS)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        # stderr goes to a file so that neither pipe can fill up while stdout is read.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = proc.stdout.read() if proc.stdout else ""
        # wait4 instead of wait: it also returns the child's own resource usage.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return stdout, wall, usage.ru_maxrss * scale


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=Path, default=Path("/tmp/depth2ply-bench-inputs"))
    p.add_argument("--ours", type=Path, help="path of the built pipeline_peak example")
    p.add_argument("--knn", type=int, default=30, help="Open3D normal neighbourhood (default 30)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        open3d_worker(args.inputs, args.inputs / "open3d.ply", args.knn)
        return 0

    needed = [args.inputs / n for n in ("rgb.png", "depth.png", "camera.json")]
    if not all(f.exists() for f in needed):
        if args.ours is None:
            p.error(f"{args.inputs} lacks rgb.png/depth.png/camera.json; pass --ours to generate them")
        subprocess.run([str(args.ours), "--write-inputs", str(args.inputs)], check=True)
    cam = json.loads((args.inputs / "camera.json").read_text())
    print(f"inputs: {args.inputs} ({cam['width']}x{cam['height']}, fx={cam['fx_px']})")

    o3d_out, o3d_wall, o3d_peak = run_measured([sys.executable, __file__, "--worker", "--inputs",
                                                str(args.inputs), "--knn", str(args.knn)])
    o3d = json.loads(o3d_out.strip().splitlines()[-1])
    o3d_size = (args.inputs / "open3d.ply").stat().st_size
    rows = [("open3d 0.20", o3d["load_s"], o3d["cloud_s"], o3d["normals_s"], o3d["write_s"], o3d["wall_s"],
             o3d_wall, o3d_peak, o3d_size, o3d["points"])]

    if args.ours is not None:
        ours_ply = args.inputs / "depth2ply.ply"
        out, wall, peak = run_measured([str(args.ours), "--rgb", str(args.inputs / "rgb.png"), "--depth",
                                        str(args.inputs / "depth.png"), "--focal-px", str(cam["fx_px"]),
                                        "--out", str(ours_ply)])
        kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and " " not in line)
        rows.append(("depth2ply", float(kv["load_s"]), float(kv["cloud_s"]), float("nan"), float(kv["write_s"]),
                     float(kv["wall_s"]), wall, peak, int(kv["ply_bytes"]), int(kv["points"])))

    header = f"{'job':<12} {'load_s':>7} {'cloud_s':>8} {'normals_s':>9} {'write_s':>8} {'total_s':>8} " \
             f"{'process_s':>9} {'peak_MiB':>9} {'ply_MiB':>8} {'peak/ply':>8} {'points':>10}"
    print(header)
    for name, load, cloud, normals, write, total, process, peak, size, points in rows:
        normals_text = "(in cloud)" if normals != normals else f"{normals:9.2f}"
        print(f"{name:<12} {load:7.2f} {cloud:8.2f} {normals_text:>9} {write:8.2f} {total:8.2f} {process:9.2f} "
              f"{peak / 2**20:9.0f} {size / 2**20:8.0f} {peak / size:8.2f} {points:10d}")
    if len(rows) == 2:
        print(f"ratio open3d/depth2ply: total {rows[0][5] / rows[1][5]:.2f}x, "
              f"process {rows[0][6] / rows[1][6]:.2f}x, peak RSS {rows[0][7] / rows[1][7]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
