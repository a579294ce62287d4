"""Throughput of the two shipped nets on whatever device Keras sees, float32 and bfloat16, tiles batched.

Runs under any Keras 3 backend: TensorFlow here, JAX or PyTorch on a GPU machine
(``KERAS_BACKEND=jax python bench/nets_throughput.py``). Prints Mpx/s, achieved TFLOP/s, the projected net
time of a whole 10980 x 10980 product, and how far bfloat16 output is from float32 on real imagery when a
scene bundle is given (``--scenes``, see ``s2sr.training.sources.save_bundle``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from s2sr.model import load_net
from s2sr.resample import upsample

PRODUCT_SIDE = 10980
TILE = 996


def flops_per_pixel(features: int, blocks: int, cin: int, cout: int) -> int:
    """Multiply-adds x 2 of every 3x3 conv of a DSen2 net, per output pixel."""
    return 2 * 9 * (cin * features + 2 * blocks * features * features + features * cout)


def nets(weights_dir: Path | None, precision: str):
    """The two nets as the library builds them in ``precision`` (bfloat16: the residual blocks, see build_dsen2)."""
    return [(net.manifest, net.model) for net in (load_net(name, weights_dir, precision=precision)
                                                  for name in ("dsen2_x2", "dsen2_x6"))]


def inputs_for(scale: int, batch: int, side: int, rng) -> list[np.ndarray]:
    chans = [4, 6] if scale == 2 else [4, 6, 2]
    return [rng.uniform(0.05, 1.5, (batch, side, side, c)).astype(np.float32) for c in chans]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--side", type=int, default=1104, help="tile side read, border included")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--scenes", type=Path, default=None, help="scene bundle for the bfloat16 check")
    args = parser.parse_args()
    import keras

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    rng = np.random.default_rng(0)
    results = {}
    for precision in ("float32", "bfloat16"):
        total_s = 0.0
        for manifest, model in nets(args.weights_dir, precision):
            arch = manifest.architecture
            x = inputs_for(manifest.scale, args.batch, args.side, rng)
            cin, cout = sum(a.shape[-1] for a in x), len(manifest.output_bands)
            np.asarray(model.predict_on_batch(x))  # compile / warm up
            start = time.perf_counter()
            for _ in range(args.repeats):
                np.asarray(model.predict_on_batch(x))
            seconds = (time.perf_counter() - start) / args.repeats
            px = args.batch * args.side * args.side
            tflops = px * flops_per_pixel(arch.features, arch.blocks, cin, cout) / seconds / 1e12
            per_tile = seconds / args.batch
            total_s += per_tile
            print(f"{precision:8s} {manifest.name}: batch {args.batch} x {args.side}^2 px in {seconds:.3f} s, "
                  f"{px / seconds / 1e6:.0f} Mpx/s, {tflops:.1f} TFLOP/s")
        tiles = (-(-PRODUCT_SIDE // TILE)) ** 2
        results[precision] = total_s * tiles
        print(f"{precision:8s} both nets, whole product ({tiles} tiles of {args.side}^2 px): {total_s * tiles:.1f} s")
    if args.scenes is not None:
        from s2sr.training.sources import load_bundle

        scene = max(load_bundle(args.scenes), key=lambda s: s.im10[0].size)
        h, w = scene.size10
        b10, up20 = scene.im10, upsample(scene.im20, 2)[:, :h, :w]
        up60 = upsample(scene.im60, 6)[:, :h, :w]
        outs = {}
        for precision in ("float32", "bfloat16"):
            outs[precision] = []
            for manifest, model in nets(args.weights_dir, precision):
                feed = [b10, up20] if manifest.scale == 2 else [b10, up20, up60]
                batch = [a.transpose(1, 2, 0)[None] / manifest.divide_by for a in feed]
                outs[precision].append(np.asarray(model.predict_on_batch(batch), np.float32)[0] * manifest.divide_by)
        for i, name in enumerate(("x2", "x6")):
            diff = outs["bfloat16"][i] - outs["float32"][i]
            print(f"bfloat16 vs float32 on {scene.name} ({h}x{w}), {name}: RMS {np.sqrt((diff**2).mean()):.2f} DN, "
                  f"max {np.abs(diff).max():.1f} DN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
