#!/usr/bin/env python3
"""Independent check of a PLY written by depth2ply, with `plyfile` (and Open3D when it is importable).

It reads the file with code that shares nothing with the Rust writer and checks what MeshLab,
CloudCompare and Open3D rely on (see docs/pointcloud.md §6):

- one `vertex` element and no other element (no `face`);
- properties exactly `x y z` [`nx ny nz`] [`red green blue`] in that order, `float32` for coordinates and
  normals, `uint8` for colours (no `double`, no `alpha`, no `intensity`);
- the encoding (binary little endian unless `--format ascii`), the vertex count, finite coordinates and
  normals, unit-length normals;
- optional value checks: every point on the plane z = Z (`--plane-z`, normals then (0, 0, -sign Z)),
  normals facing the camera at the origin (`--camera-facing`), header comments (`--comment`), points,
  normals or colours equal to arrays in .npy files (`--expected-points/-normals/-colors`).
- With Open3D importable (and no `--no-open3d`): `open3d.io.read_point_cloud` must load the same number
  of points with the same coordinates, and report normals/colours exactly when the file has them.

Inputs:  FILE.ply, expectations as flags and/or a JSON sidecar (`--expect FILE.json`, same names with
         underscores: {"vertices": 100, "normals": true, "colors": true, "plane_z": 2.0,
         "comments": ["frame=opencv"]}); flags override the sidecar.
Outputs: "OK: …" on stdout and exit 0; otherwise every failed check on stderr and exit 1
         (exit 2 for usage errors or a file that cannot be parsed at all).
Requires: tools/requirements-check.txt (plyfile==1.1.5, numpy); open3d optional.

Examples:
  python tools/check_ply.py out.ply --vertices 307200 --normals --colors
  python tools/check_ply.py plane.ply --vertices 12 --normals --plane-z 2.0 --camera-facing
  python tools/check_ply.py out.ply --expect out.expect.json --expected-points points.npy
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from plyfile import PlyData

XYZ = ["x", "y", "z"]
NORMALS = ["nx", "ny", "nz"]
COLORS = ["red", "green", "blue"]


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed: list[str] = []

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed.append(what)
        else:
            self.failures.append(f"{what}: {detail}" if detail else what)
        return ok


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ply", type=Path, help="PLY file to check")
    p.add_argument("--expect", type=Path, help="JSON sidecar with expectations (flags override it)")
    p.add_argument("--vertices", type=int, help="exact vertex count")
    p.add_argument("--min-vertices", type=int, help="lower bound on the vertex count")
    p.add_argument("--max-vertices", type=int, help="upper bound on the vertex count")
    p.add_argument("--normals", action=argparse.BooleanOptionalAction, default=None,
                   help="nx ny nz must be present (--no-normals: absent; default: absent)")
    p.add_argument("--colors", action=argparse.BooleanOptionalAction, default=None,
                   help="red green blue must be present (--no-colors: absent; default: absent)")
    p.add_argument("--format", choices=["binary_little_endian", "ascii"], help="default binary_little_endian")
    p.add_argument("--plane-z", type=float, help="every point must have z = this value (metres)")
    p.add_argument("--tol", type=float, help="absolute tolerance for --plane-z and expected arrays (default 1e-5)")
    p.add_argument("--normal-tol", type=float, help="tolerance on |n| = 1 and on plane normals (default 1e-4)")
    p.add_argument("--camera-facing", action="store_true", default=None,
                   help="every normal must face the camera at the origin: n . p <= 0")
    p.add_argument("--comment", action="append", dest="comments",
                   help="a header comment must contain this text (repeatable)")
    p.add_argument("--expected-points", type=Path, help=".npy of shape (N, 3): expected x y z in file order")
    p.add_argument("--expected-normals", type=Path, help=".npy of shape (N, 3): expected normals")
    p.add_argument("--expected-colors", type=Path, help=".npy of shape (N, 3) uint8: expected colours")
    p.add_argument("--no-open3d", action="store_true", default=None, help="skip the Open3D cross-check")
    args = p.parse_args(argv)

    if args.expect is not None:
        try:
            sidecar = json.loads(args.expect.read_text())
        except (OSError, ValueError) as e:
            p.error(f"cannot read the expectations file {args.expect}: {e}")
        if not isinstance(sidecar, dict):
            p.error(f"{args.expect} must hold a JSON object")
        known = {a.dest for a in p._actions}
        for key, value in sidecar.items():
            dest = key.replace("-", "_")
            if dest not in known or dest in ("ply", "expect", "help"):
                p.error(f"unknown key {key!r} in {args.expect}")
            if getattr(args, dest) is None:
                if dest.startswith("expected_") and value is not None:
                    value = (args.expect.parent / value)
                setattr(args, dest, value)
    args.normals = bool(args.normals)
    args.colors = bool(args.colors)
    args.format = args.format or "binary_little_endian"
    args.tol = 1e-5 if args.tol is None else args.tol
    args.normal_tol = 1e-4 if args.normal_tol is None else args.normal_tol
    args.comments = args.comments or []
    return args


def stack(data: np.ndarray, names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(data[n]) for n in names], axis=1)


def run_checks(args: argparse.Namespace) -> Checker:
    c = Checker()
    try:
        ply = PlyData.read(str(args.ply))
    except Exception as e:  # plyfile raises several types for malformed/truncated files
        print(f"check_ply: cannot parse {args.ply}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)

    fmt = "ascii" if ply.text else {"<": "binary_little_endian", ">": "binary_big_endian"}.get(
        ply.byte_order, f"binary ({ply.byte_order})")
    c.check(fmt == args.format, "format", f"file is {fmt}, expected {args.format}")
    names = [e.name for e in ply.elements]
    c.check(names == ["vertex"], "elements", f"found {names}, expected only ['vertex'] (no face element)")
    if "vertex" not in names:
        return c
    vertex = ply["vertex"]
    expected_props = XYZ + (NORMALS if args.normals else []) + (COLORS if args.colors else [])
    props = [(p.name, p.val_dtype) for p in vertex.properties]
    c.check([n for n, _ in props] == expected_props, "property names",
            f"found {[n for n, _ in props]}, expected {expected_props}")
    for name, dtype in props:
        want = "u1" if name in COLORS else "f4"
        c.check(np.dtype(dtype) == np.dtype(want), f"type of {name}", f"{dtype}, expected {want}")

    n = vertex.count
    if args.vertices is not None:
        c.check(n == args.vertices, "vertex count", f"{n}, expected {args.vertices}")
    if args.min_vertices is not None:
        c.check(n >= args.min_vertices, "vertex count", f"{n} < minimum {args.min_vertices}")
    if args.max_vertices is not None:
        c.check(n <= args.max_vertices, "vertex count", f"{n} > maximum {args.max_vertices}")

    for text in args.comments:
        c.check(any(text in comment for comment in ply.comments), f"comment containing {text!r}",
                f"comments are {ply.comments}")

    data = vertex.data
    have = set(data.dtype.names or ())
    xyz = stack(data, XYZ).astype(np.float64) if set(XYZ) <= have else None
    nrm = stack(data, NORMALS).astype(np.float64) if set(NORMALS) <= have else None
    rgb = stack(data, COLORS) if set(COLORS) <= have else None

    if xyz is not None:
        bad = ~np.isfinite(xyz).all(axis=1)
        c.check(not bad.any(), "finite coordinates", f"{bad.sum()} points, first index {np.argmax(bad)}")
    if nrm is not None:
        bad = ~np.isfinite(nrm).all(axis=1)
        c.check(not bad.any(), "finite normals", f"{bad.sum()} normals, first index {np.argmax(bad)}")
        length_err = np.abs(np.linalg.norm(nrm, axis=1) - 1.0)
        worst = float(length_err.max(initial=0.0))
        c.check(worst <= args.normal_tol, "unit normals", f"| |n| - 1 | up to {worst:.3g} (tol {args.normal_tol})")
        if args.camera_facing and xyz is not None:
            dots = np.einsum("ij,ij->i", nrm, xyz)
            c.check(not (dots > 1e-6).any(), "camera-facing normals",
                    f"{int((dots > 1e-6).sum())} of {n} normals have n . p > 0")

    if args.plane_z is not None and xyz is not None:
        err = float(np.abs(xyz[:, 2] - args.plane_z).max(initial=0.0))
        c.check(err <= args.tol, f"plane z = {args.plane_z}", f"max |z - {args.plane_z}| = {err:.3g}")
        if nrm is not None:
            target = np.array([0.0, 0.0, -np.sign(args.plane_z)])
            nerr = float(np.abs(nrm - target).max(initial=0.0))
            c.check(nerr <= args.normal_tol, f"plane normals {target.tolist()}", f"max deviation {nerr:.3g}")

    for label, path, actual, atol in (("points", args.expected_points, xyz, args.tol),
                                      ("normals", args.expected_normals, nrm, args.tol),
                                      ("colors", args.expected_colors, rgb, 0)):
        if path is None:
            continue
        expected = np.load(path)
        if not c.check(actual is not None, f"expected {label}", f"the file has no {label}"):
            continue
        if not c.check(expected.shape == actual.shape, f"expected {label} shape",
                       f"file {actual.shape}, {path} {expected.shape}"):
            continue
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        worst = float(diff.max(initial=0.0))
        c.check(worst <= atol, f"expected {label}",
                f"max difference {worst:.3g} at row {int(np.argmax(diff.max(axis=1)))} (atol {atol})")

    if not args.no_open3d:
        open3d_checks(args, c, xyz, nrm is not None, rgb)
    return c


def open3d_checks(args, c: Checker, xyz, has_normals: bool, rgb) -> None:
    try:
        import open3d as o3d  # noqa: PLC0415 (optional dependency)
    except ImportError:
        return
    pcd = o3d.io.read_point_cloud(str(args.ply))
    pts = np.asarray(pcd.points)
    if not c.check(xyz is not None and pts.shape == xyz.shape, "open3d point count",
                   f"open3d read {pts.shape[0]} points"):
        return
    if xyz.size:
        err = float(np.abs(pts - xyz).max())
        c.check(err <= 1e-6 * max(1.0, float(np.abs(xyz).max())), "open3d coordinates", f"max difference {err:.3g}")
    # An empty cloud has no attributes in Open3D's eyes.
    if len(pts):
        c.check(pcd.has_normals() == has_normals, "open3d normals", f"has_normals() = {pcd.has_normals()}")
        c.check(pcd.has_colors() == (rgb is not None), "open3d colours", f"has_colors() = {pcd.has_colors()}")
        if rgb is not None and pcd.has_colors():
            err = float(np.abs(np.asarray(pcd.colors) * 255.0 - rgb).max())
            c.check(err <= 1e-3, "open3d colour values", f"max difference {err:.3g} (of 255)")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    c = run_checks(args)
    if c.failures:
        for f in c.failures:
            print(f"check_ply: FAIL {args.ply}: {f}", file=sys.stderr)
        return 1
    print(f"OK: {args.ply}: {len(c.passed)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
