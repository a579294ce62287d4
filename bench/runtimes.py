"""``make bench-runtimes``: the ways to run the shipped nets on this CPU, side by side in one run.

Each option runs the shipped x2 and x6 nets on the shapes a production tile gives them (1068 and 1128 px),
in interleaved rounds so that a noisy, shared machine slows every option alike; the best round counts.
Figures are GFLOP/s of the convolutions and their share of this machine's float32 matmul rate (the best
of numpy's and TensorFlow's 2048 x 2048 matmul, measured in the same rounds), with the largest difference
from the shipped Keras path in DN. Options: Keras ``predict_on_batch`` (shipped), the same on four
quarter tiles as one batch, an XLA-compiled ``tf.function``, and, when ``onnx`` and ``onnxruntime`` are
installed, an ONNX graph built from the same weight file on onnxruntime (1 and 2 threads).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

ROUNDS = 3


def net_flops(net, pixels: int) -> float:
    """FLOPs of one net over ``pixels`` output pixels: 2 x 9 x in x out per 3x3 conv and pixel."""
    arch = net.manifest.architecture
    c_in = sum(len(b) for b in net.manifest.input_bands.values())
    c_out = len(net.manifest.output_bands)
    f = arch.features
    return 2 * 9 * pixels * (c_in * f + 2 * arch.blocks * f * f + f * c_out)


def matmul_rate(seconds: float = 1.0) -> float:
    """Best float32 FLOP/s of a 2048 x 2048 matmul under numpy and under TensorFlow (if loaded)."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best = 0.0
    candidates: list[Callable[[], object]] = [lambda: a @ a]
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        t = tf.constant(a)
        candidates.append(lambda: tf.linalg.matmul(t, t).numpy())
    for fn in candidates:
        fn()
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            one = time.perf_counter()
            fn()
            best = max(best, 2 * n**3 / (time.perf_counter() - one))
            calls += 1
    return best


def onnx_session(net, threads: int):
    """The net as an ONNX graph built from its loaded weights, on onnxruntime's CPU provider."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    m, arch = net.manifest, net.manifest.architecture
    weights = net.model.get_weights()
    groups = list(m.input_bands.items())
    inits, nodes = [numpy_helper.from_array(np.array(0.1, np.float32), "tenth")], []
    inputs = [helper.make_tensor_value_info(f"in_{r}", TensorProto.FLOAT, [1, len(b), None, None]) for r, b in groups]
    nodes.append(helper.make_node("Concat", [f"in_{r}" for r, _ in groups], ["x0"], axis=1))
    names = ["head"] + [f"block{i}_{s}" for i in range(arch.blocks) for s in "ab"] + ["tail"]
    for i, name in enumerate(names):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weights[2 * i].transpose(3, 2, 0, 1)), f"{name}_w"))
        inits.append(numpy_helper.from_array(weights[2 * i + 1], f"{name}_b"))

    def conv(x: str, name: str, relu: bool) -> str:
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        if not relu:
            return f"{name}_c"
        nodes.append(helper.make_node("Relu", [f"{name}_c"], [f"{name}_r"]))
        return f"{name}_r"

    x = conv("x0", "head", True)
    for i in range(arch.blocks):
        y = conv(conv(x, f"block{i}_a", True), f"block{i}_b", False)
        nodes.append(helper.make_node("Mul", [y, "tenth"], [f"block{i}_s"]))
        nodes.append(helper.make_node("Add", [x, f"block{i}_s"], [f"x{i + 1}"]))
        x = f"x{i + 1}"
    nodes.append(helper.make_node("Add", [f"in_{groups[-1][0]}", conv(x, "tail", False)], ["out"]))
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, len(m.output_bands), None, None])
    model = helper.make_model(helper.make_graph(nodes, "dsen2", inputs, [out], inits), opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names_in = [f"in_{r}" for r, _ in groups]

    def run(inputs: list[np.ndarray]) -> np.ndarray:
        feed = {k: (a / m.divide_by)[None].astype(np.float32) for k, a in zip(names_in, inputs, strict=True)}
        return session.run(None, feed)[0][0] * m.divide_by

    return run


def options_for(net) -> dict[str, Callable[[list[np.ndarray]], np.ndarray]]:
    import tensorflow as tf

    from s2sr.model import run_net

    scale = net.manifest.divide_by

    def quarters(inputs: list[np.ndarray]) -> np.ndarray:
        # four overlapping quarter tiles (28 px of context each side, the receptive radius is 14) as one batch
        h = inputs[0].shape[1]
        half, ctx = h // 2, 28
        spans = [(0, half + ctx), (half - ctx, h)]
        batch = [np.stack([a[:, r0:r1, c0:c1].transpose(1, 2, 0) for r0, r1 in spans for c0, c1 in spans]) / scale
                 for a in inputs]
        out = np.asarray(net.model.predict_on_batch([b.astype(np.float32) for b in batch])) * scale
        full = np.empty((out.shape[-1], h, h), np.float32)
        keep = [(0, half, 0), (half, h, ctx)]
        for i, (r0, r1, rc) in enumerate(keep):
            for j, (c0, c1, cc) in enumerate(keep):
                full[:, r0:r1, c0:c1] = out[2 * i + j, rc : rc + r1 - r0, cc : cc + c1 - c0].transpose(2, 0, 1)
        return full

    xla = tf.function(lambda xs: net.model(xs, training=False), jit_compile=True)

    def compiled(inputs: list[np.ndarray]) -> np.ndarray:
        batch = [tf.constant(np.ascontiguousarray(a.transpose(1, 2, 0)[None] / scale, dtype=np.float32)) for a in inputs]
        return xla(batch).numpy()[0].transpose(2, 0, 1) * scale

    options = {
        "Keras predict_on_batch (shipped)": lambda inputs: run_net(net, inputs),
        "Keras, 4 quarter tiles as one batch": quarters,
        "XLA-compiled tf.function": compiled,
    }
    try:
        for threads in (1, 2):
            options[f"ONNX on onnxruntime, {threads} thread(s)"] = onnx_session(net, threads)
    except ImportError:
        print("onnx/onnxruntime not installed (pip install onnx onnxruntime): ONNX skipped")
    return options


def main() -> int:
    from s2sr.inference import load_nets

    nets = load_nets("L2A", True, device="cpu")
    rng = np.random.default_rng(0)
    cases = []
    for net, side in ((nets.x2, 1068), (nets.x6, 1128)):
        inputs = [rng.uniform(300, 4000, (len(b), side, side)).astype(np.float32) for b in net.manifest.input_bands.values()]
        options = options_for(net)
        reference = options["Keras predict_on_batch (shipped)"](inputs)
        cases.append((net, side, inputs, options, reference))
    best: dict[tuple[str, str], float] = {}
    worst_diff: dict[tuple[str, str], float] = {}
    matmul = 0.0
    for _ in range(ROUNDS):
        matmul = max(matmul, matmul_rate())
        for net, _side, inputs, options, reference in cases:
            for name, fn in options.items():
                start = time.perf_counter()
                out = fn(inputs)
                seconds = time.perf_counter() - start
                key = (net.manifest.name, name)
                best[key] = min(best.get(key, np.inf), seconds)
                worst_diff[key] = float(np.abs(out - reference).max())
    print(f"float32 matmul on this machine ({os.cpu_count()} cores): {matmul / 1e9:.0f} GFLOP/s (best of {ROUNDS} rounds)")
    for net, side, _, options, _ in cases:
        flops = net_flops(net, side * side)
        print(f"{net.manifest.name} on {side} x {side} px ({flops / 1e9:.0f} GFLOP):")
        for name in options:
            seconds = best[(net.manifest.name, name)]
            rate = flops / seconds
            print(f"  {name:38s} {seconds:6.2f} s  {rate / 1e9:5.0f} GFLOP/s  {rate / matmul:4.2f} of matmul"
                  f"  max diff {worst_diff[(net.manifest.name, name)]:.4f} DN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
