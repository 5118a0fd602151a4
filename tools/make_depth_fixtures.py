#!/usr/bin/env python3
"""Writes the small depth files that `crates/depth2ply-geometry/tests/io_roundtrip.rs` loads, with NumPy
itself, so the Rust loaders are checked against real `np.save` / `np.savez_compressed` output (zip64
extra fields, header padding, Fortran order) and not only against files written by Rust.

Inputs:  none.  Requires: numpy (tools/requirements-check.txt).
Outputs: crates/depth2ply-geometry/tests/fixtures/depth/
  savez_compressed_f32.npz  keys `depth` float32 (3, 5) and `focallength_px` float32 scalar 1500,
                            written like Apple's `depth-pro-run` (np.savez_compressed)
  savez_compressed_f16.npz  key `depth` float16 (3, 5) (Depth Pro's fp16 path with an EXIF focal)
  fortran_f8.npy            float64 (3, 5), Fortran order
  mm_u2.npy                 uint16 millimetres (3, 5), to be divided by the default scale 1000
Every array holds depth[r, c] = 0.5 + 0.25 * (r * 5 + c) metres (exact in float16 and in millimetres).

Usage: python tools/make_depth_fixtures.py
"""
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "crates/depth2ply-geometry/tests/fixtures/depth"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    depth = (0.5 + 0.25 * np.arange(15, dtype=np.float64)).reshape(3, 5)
    np.savez_compressed(OUT / "savez_compressed_f32.npz", depth=depth.astype(np.float32),
                        focallength_px=np.float32(1500.0))
    np.savez_compressed(OUT / "savez_compressed_f16.npz", depth=depth.astype(np.float16))
    np.save(OUT / "fortran_f8.npy", np.asfortranarray(depth))
    np.save(OUT / "mm_u2.npy", np.round(depth * 1000).astype(np.uint16))
    for path in sorted(OUT.iterdir()):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
