#!/usr/bin/env python3
"""Runs the Rust and the PyTorch Depth Pro CPU benchmarks back to back and prints their ratio.

Both sides see the same machine, thread count and input size in one run: Rust, then PyTorch, then Rust
again (so a load change during the run shows up as a difference between the two Rust runs, and the
ratio uses their mean). Each benchmark prints its own stage table, which is passed through.

Inputs: the Rust benchmark binary (build it first) and a Python with torch + transformers
(tools/requirements-reference.txt). Command, from the repository root:

  cargo build --release -p depth2ply-model --example bench_forward
  /work/venv-ref/bin/python tools/bench_compare.py --threads 2

Output (stdout): both tables, then one summary line per side (forward time, peak RSS, model load time)
and the time ratio Rust / PyTorch.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd: list[str]) -> str:
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    return out


def field(pattern: str, text: str, what: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        sys.exit(f"bench_compare: no {what} in the benchmark output (pattern {pattern!r})")
    return float(match.group(1))


def summary(text: str) -> dict[str, float]:
    return {
        "total_s": field(r"^total\b[^\n]*?\s+([0-9.]+)\s+19247", text, "total time"),
        "peak_mib": field(r"peak RSS \(VmHWM\) ([0-9]+) MiB", text, "peak RSS"),
        "load_s": field(r"model build(?:/load)? ([0-9.]+) s", text, "model load time"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rust",
        default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release/examples/bench_forward"),
        help="the Rust benchmark binary (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        help="a depth_pro.pt for the Rust side, so that its load time is that of a real checkpoint "
        "(e.g. target/full-parity/depth_pro.pt from tools/full_parity.py)",
    )
    args = parser.parse_args()

    rust_cmd = [args.rust, "--threads", str(args.threads)]
    if args.weights:
        rust_cmd += ["--weights", args.weights]
    py_cmd = [sys.executable, os.path.join("tools", "bench_pytorch.py"), "--threads", str(args.threads)]

    rust = [summary(run(rust_cmd))]
    torch = summary(run(py_cmd))
    rust.append(summary(run(rust_cmd)))

    for i, r in enumerate(rust, 1):
        print(
            f"depth2ply run {i}: forward {r['total_s']:.1f} s, peak RSS {r['peak_mib']:.0f} MiB, "
            f"model load {r['load_s']:.2f} s"
        )
    print(
        f"PyTorch:         forward {torch['total_s']:.1f} s, peak RSS {torch['peak_mib']:.0f} MiB, "
        f"model build {torch['load_s']:.2f} s"
    )
    mean = sum(r["total_s"] for r in rust) / len(rust)
    print(f"ratio depth2ply / PyTorch (forward, mean of the two depth2ply runs): {mean / torch['total_s']:.3f}")


if __name__ == "__main__":
    main()
