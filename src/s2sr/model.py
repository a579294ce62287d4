"""The DSen2 networks (Lanaras et al., 2018) as Keras 3 models, and their weight files.

Each weight file ``s2sr/weights/<name>.npz`` travels with ``s2sr/weights/<name>.json``, its manifest: band order,
normalisation, context border, level, architecture, training provenance and the file's sha256. Loading
checks all of it, so a model never runs with weights meant for other bands or another scaling.
Keras is imported only when a model is built: importing s2sr stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .bands import BANDS_10M, BANDS_20M, BANDS_60M
from .errors import DeviceError, WeightsError

#: Where the shipped weights live: inside the package (``src/s2sr/weights`` in a checkout), one place for
#: the editable install, the wheel and the container alike.
_PACKAGE_WEIGHTS = Path(__file__).parent / "weights"


def default_weights_dir() -> Path:
    """The shipped weights, packaged with the code."""
    if _PACKAGE_WEIGHTS.is_dir() and any(_PACKAGE_WEIGHTS.glob("*.json")):
        return _PACKAGE_WEIGHTS
    raise WeightsError(f"no weights found in {_PACKAGE_WEIGHTS}; reinstall s2sr")


@dataclass(frozen=True)
class Architecture:
    """DSen2 shape: ``features`` filters per conv, ``blocks`` residual blocks (paper: 128 and 6)."""

    features: int = 128
    blocks: int = 6

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each side that reach one output pixel: one per 3x3 conv."""
        return 2 + 2 * self.blocks

    @property
    def required_border(self) -> int:
        """Context border (10 m px, a multiple of 6) that makes tiled output equal untiled output.

        The nets' receptive radius plus the reach of bicubic upsampling from the 60 m grid (two coarse
        pixels beyond the one a pixel lies in: up to 18 px).
        """
        return -(-(self.receptive_radius + 18) // 6) * 6


#: What a net's output may be a residual to (``WeightsManifest.residual_to``).
RESIDUAL_TO = ("bicubic", "regression")


@dataclass(frozen=True)
class WeightsManifest:
    """What a weight file is: everything needed to use it correctly, and where it came from."""

    name: str
    scale: int  # 2: the 20 m net, 6: the 60 m net
    level: str  # "L1C", "L2A" or "any"
    architecture: Architecture
    weights_file: str
    sha256: str
    input_bands: dict[str, list[str]]
    output_bands: list[str]
    divide_by: float = 2000.0
    context_border: int = 36
    dtype: str = "float16"
    placeholder: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)  # refine.Fusion: how net and regression combine
    #: What the net's last input carries and its output is a residual to: the bicubic upsampling of the target
    #: bands (DSen2), or the scene-adaptive regression's estimate (bicubic plus its detail, x6 only).
    residual_to: str = "bicubic"
    #: The data the net learnt from and was chosen on: source, licence, roles (training, selection), attribution.
    training_data: list[dict[str, Any]] = field(default_factory=list)
    #: The shipped calibration of the per-pixel uncertainty (``uncertainty.shipped``): per band, the quantile of
    #: |error| / scale, for products too small to calibrate themselves one level down.
    uncertainty: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path) -> WeightsManifest:
        try:
            raw = json.loads(path.read_text())
            raw["architecture"] = Architecture(**raw["architecture"])
            raw["divide_by"] = raw.pop("normalisation")["divide_by"]
            manifest = cls(**raw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"weights manifest {path} is unreadable: {exc}") from exc
        if manifest.residual_to not in RESIDUAL_TO or (manifest.residual_to == "regression" and manifest.scale != 6):
            raise WeightsError(f"weights manifest {path}: residual_to {manifest.residual_to!r} is not one of "
                               f"{', '.join(RESIDUAL_TO)} (regression: x6 nets only)")
        return manifest

    def to_json(self) -> str:
        raw = {
            "name": self.name,
            "scale": self.scale,
            "level": self.level,
            "architecture": {"features": self.architecture.features, "blocks": self.architecture.blocks},
            "weights_file": self.weights_file,
            "sha256": self.sha256,
            "input_bands": self.input_bands,
            "output_bands": self.output_bands,
            "normalisation": {"divide_by": self.divide_by},
            "context_border": self.context_border,
            "dtype": self.dtype,
            "placeholder": self.placeholder,
            "training": self.training,
            "fusion": self.fusion,
            "residual_to": self.residual_to,
            "training_data": self.training_data,
            **({"uncertainty": self.uncertainty} if self.uncertainty else {}),
        }
        return json.dumps(raw, indent=2) + "\n"


def expected_bands(scale: int) -> tuple[dict[str, list[str]], list[str]]:
    """Input groups and output bands of the x2 or x6 net, in the order the arrays carry them."""
    if scale == 2:
        return {"10m": list(BANDS_10M), "20m": list(BANDS_20M)}, list(BANDS_20M)
    if scale == 6:
        return {"10m": list(BANDS_10M), "20m": list(BANDS_20M), "60m": list(BANDS_60M)}, list(BANDS_60M)
    raise ValueError(f"scale must be 2 or 6, got {scale}")


PRECISIONS = ("auto", "float32", "bfloat16")
#: The library's, the CLI's and the block's default: bfloat16 where it is native (see ``resolve_precision``).
DEFAULT_PRECISION = "auto"
#: The Keras dtype policy of the layers that carry the convolutions' work under ``bfloat16``: bfloat16 inputs
#: and weights, float32 accumulation inside oneDNN / cuDNN, float32 variables.
MIXED_BF16 = "mixed_bfloat16"


#: One TensorFlow call at a time per process: building a graph is not safe across threads (seen: a cube's
#: Dask threads tracing one net for two chunk shapes at once failed inside ``tf.cast`` with AttributeError
#: ``number_attr``), and a net already uses every core itself. Held by every net call and every model build
#: (Keras traces a graph to build one); re-entrant: adaptation holds it around its training and builds inside it.
TF_CALLS = threading.RLock()


def build_dsen2(scale: int, arch: Architecture, precision: str = "float32") -> Any:
    """The DSen2 net: concatenated inputs, conv, residual blocks, conv, plus the upsampled target bands.

    The last conv starts at zero, so an untrained net returns exactly its bicubic input. With ``precision``
    ``bfloat16`` the residual blocks (12 of the 14 convs, 98 % of the multiply-adds) compute in bfloat16 with
    float32 accumulation; the head conv, the tail conv and the residual addition of the bicubic input stay
    float32. Measured on a real 1926 px L1C scene: a bfloat16 head (its input, reflectance rounded to 8 bits)
    doubles the distance to float32 (x2: 2.3 DN RMS instead of 1.2) to save 1.3 % of the work.
    """
    with TF_CALLS:
        return _build_dsen2(scale, arch, precision)


def _build_dsen2(scale: int, arch: Architecture, precision: str) -> Any:
    import keras
    from keras import layers

    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16 once resolved, got {precision!r}")
    body = MIXED_BF16 if precision == "bfloat16" else "float32"
    groups, outputs = expected_bands(scale)
    inputs = [keras.Input(shape=(None, None, len(bands)), name=f"in_{res}") for res, bands in groups.items()]
    x = layers.Concatenate(axis=-1)(inputs) if len(inputs) > 1 else inputs[0]
    x = layers.Conv2D(arch.features, 3, padding="same", activation="relu", name="head", dtype="float32")(x)
    for i in range(arch.blocks):
        y = layers.Conv2D(arch.features, 3, padding="same", activation="relu", name=f"block{i}_a", dtype=body)(x)
        y = layers.Conv2D(arch.features, 3, padding="same", name=f"block{i}_b", dtype=body)(y)
        y = layers.Rescaling(0.1, name=f"block{i}_scale", dtype=body)(y)
        x = layers.Add(name=f"block{i}_add", dtype=body)([x, y])
    x = layers.Conv2D(len(outputs), 3, padding="same", kernel_initializer="zeros", name="tail", dtype="float32")(x)
    out = layers.Add(name="residual", dtype="float32")([inputs[-1], x])
    return keras.Model(inputs, out, name=f"dsen2_x{scale}")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(model: Any, manifest: WeightsManifest, directory: Path) -> WeightsManifest:
    """Write ``<name>.npz`` (float16 or float32) and its manifest, the sha256 filled in; temp name, then rename."""
    directory.mkdir(parents=True, exist_ok=True)
    npz_path = directory / manifest.weights_file
    arrays = {f"w{i:03d}": w.astype(manifest.dtype) for i, w in enumerate(model.get_weights())}
    tmp = npz_path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(npz_path)
    final = WeightsManifest(**{**manifest.__dict__, "sha256": sha256_of(npz_path)})
    json_path = directory / f"{manifest.name}.json"
    tmp_json = json_path.with_suffix(".json.tmp")
    tmp_json.write_text(final.to_json())
    tmp_json.replace(json_path)
    return final


@dataclass(frozen=True)
class LoadedNet:
    manifest: WeightsManifest
    model: Any
    device: str = "cpu:0"  # Keras device name the weights live on and the net runs on
    precision: str = "float32"  # what its convolutions compute in: float32 or bfloat16 (resolved, never auto)


def load_manifest(name: str, weights_dir: Path | None = None) -> WeightsManifest:
    directory = weights_dir or default_weights_dir()
    path = directory / f"{name}.json"
    if not path.is_file():
        raise WeightsError(f"weights manifest {path} not found")
    return WeightsManifest.from_json(path)


def load_net(name: str, weights_dir: Path | None = None, device: str = "auto", precision: str = "float32") -> LoadedNet:
    """Build a net and load its weights, after checking the manifest's bands and the file's sha256.

    ``device``: ``cpu``, ``gpu`` or ``auto`` (see :func:`resolve_device`); the weights go there once.
    ``precision``: ``float32``, ``bfloat16`` or ``auto`` (see :func:`resolve_precision`).
    """
    directory = weights_dir or default_weights_dir()
    manifest = load_manifest(name, directory)
    groups, outputs = expected_bands(manifest.scale)
    if manifest.input_bands != groups or manifest.output_bands != outputs:
        raise WeightsError(f"{name}: manifest bands {manifest.input_bands} do not match the x{manifest.scale} net")
    if manifest.context_border < manifest.architecture.required_border:
        raise WeightsError(
            f"{name}: context border {manifest.context_border} px is below the "
            f"{manifest.architecture.required_border} px the architecture needs"
        )
    npz_path = directory / manifest.weights_file
    if not npz_path.is_file():
        raise WeightsError(f"weight file {npz_path} not found")
    digest = sha256_of(npz_path)
    if digest != manifest.sha256:
        raise WeightsError(f"weight file {npz_path} has sha256 {digest}, manifest says {manifest.sha256}")
    import keras

    placed = resolve_device(device)
    computes = resolve_precision(precision, placed)
    with np.load(npz_path) as data:
        weights = [data[k].astype(np.float32) for k in sorted(data.files)]
    with keras.device(placed):
        model = build_dsen2(manifest.scale, manifest.architecture, computes)
        try:
            model.set_weights(weights)
        except ValueError as exc:
            raise WeightsError(f"weight file {npz_path} does not fit {manifest.architecture}: {exc}") from exc
    return LoadedNet(manifest, model, placed, computes)


def weights_name(scale: int, level: str, weights_dir: Path | None = None) -> str:
    """Stem of the weights for a net and product level: ``dsen2_x2_l2a`` if shipped, else ``dsen2_x2``.

    One set serves both levels unless the evaluation shows a level needs its own.
    """
    directory = weights_dir or default_weights_dir()
    specific = f"dsen2_x{scale}_{level.lower()}"
    if (directory / f"{specific}.json").is_file():
        return specific
    return f"dsen2_x{scale}"


DEVICES = ("auto", "cpu", "gpu")


def visible_gpus() -> list[str]:
    """The GPUs the Keras backend can run on (names), empty on a machine or an image without one."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def resolve_device(device: str) -> str:
    """The Keras device name for ``auto`` (the first GPU if there is one, else the CPU), ``cpu`` or ``gpu``.

    Asking for a GPU where the backend sees none is an error, not a silent fall back to a 50x slower run.
    """
    if device in ("cpu:0", "gpu:0"):  # already resolved
        return device
    if device not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu:0"
    if visible_gpus():
        return "gpu:0"
    if device == "gpu":
        import keras

        raise DeviceError(f"device 'gpu' asked for, but Keras on {keras.backend.backend()} sees no GPU; "
                          "use --device auto or cpu")
    return "cpu:0"


#: CPU flags (as Linux names them in /proc/cpuinfo) of native bfloat16 dot products, which oneDNN uses for
#: convolutions: AVX512_BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) and AMX (Sapphire Rapids and
#: later). Without them oneDNN emulates bfloat16 in float32 units, slower than float32 itself.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: CUDA compute capability from which a GPU has bfloat16 tensor cores (Ampere); a T4 (7.5) has none.
BF16_GPU_CAPABILITY = (8, 0)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux lists them in /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def gpu_capability() -> tuple[int, int] | None:
    """CUDA compute capability of the first GPU the Keras backend sees, None without one (or unknown)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            found = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") if gpus else None
            return tuple(found) if found else None
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            found = getattr(gpus[0], "compute_capability", None) if gpus else None
            return tuple(int(v) for v in str(found).split(".")[:2]) if found else None
        if backend == "torch":
            import torch

            return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None
    except (RuntimeError, ValueError, IndexError):
        return None
    return None


def native_bf16(device: str, flags: frozenset[str] | None = None, capability: tuple[int, int] | None = None) -> str | None:
    """What runs bfloat16 natively on a resolved ``device`` (a CPU flag, a GPU's capability), None if nothing.

    ``flags`` and ``capability`` default to this machine's (:func:`cpu_flags`, :func:`gpu_capability`);
    tests pass others to see the choice another machine would make.
    """
    if device.startswith("gpu"):
        capability = gpu_capability() if capability is None else capability
        return f"compute capability {capability[0]}.{capability[1]}" if capability and capability >= BF16_GPU_CAPABILITY else None
    flags = cpu_flags() if flags is None else flags
    return next((f.upper() for f in BF16_CPU_FLAGS if f in flags), None)


def resolve_precision(precision: str, device: str, flags: frozenset[str] | None = None,
                      capability: tuple[int, int] | None = None) -> str:
    """``float32`` or ``bfloat16`` for ``precision`` on a resolved ``device``: ``auto`` is bfloat16 where the
    device runs it natively (:func:`native_bf16`), float32 elsewhere, where emulated bfloat16 is slower."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if native_bf16(device, flags, capability) else "float32"


def compute_device(device: str = "auto", precision: str = DEFAULT_PRECISION) -> str:
    """Which Keras backend runs the nets, on which device and in which precision, for the log line of a run."""
    import keras

    placed = resolve_device(device)
    gpus = visible_gpus()
    where = f"GPU ({gpus[0]})" if placed.startswith("gpu") else "CPU" + ("" if gpus else " (no GPU visible)")
    computes = resolve_precision(precision, placed)
    unit = "GPU" if placed.startswith("gpu") else "CPU"
    native = native_bf16(placed)
    if precision == "auto":
        why = f" (auto: native on this {unit}, {native})" if native else f" (auto: bfloat16 is not native on this {unit})"
    elif computes == "bfloat16":
        why = f" (native on this {unit}, {native})" if native else f" (emulated on this {unit}: slower than float32)"
    else:
        why = ""
    return f"Keras {keras.__version__} on {keras.backend.backend()}, {where}, {computes}{why}"


#: Rows per net call. A taller input runs in row strips, each with the net's receptive radius of context, so
#: the activations (64 features x width x rows, several alive at once) are bounded by the strip: at the
#: production tile two strips instead of one call take 0.68 GiB less memory and about 2 % longer (measured).
NET_STRIP_ROWS = 640


def run_net(net: LoadedNet, inputs: list[np.ndarray]) -> np.ndarray:
    """Apply a net to band-first float arrays in reflectance x 10000; returns (bands, H, W).

    Inputs taller than ``NET_STRIP_ROWS`` go through in row strips that overlap by the receptive radius,
    whose overlap is cut away: every output pixel still sees its whole receptive field.
    """
    h = inputs[0].shape[1]
    strips = -(-h // NET_STRIP_ROWS)
    if strips <= 1:
        return _run_once(net, inputs)
    radius = net.manifest.architecture.receptive_radius
    edges = [round(i * h / strips) for i in range(strips + 1)]
    parts = []
    for top, bottom in zip(edges[:-1], edges[1:], strict=True):
        lo, hi = max(0, top - radius), min(h, bottom + radius)
        out = _run_once(net, [a[:, lo:hi] for a in inputs])
        parts.append(out[:, top - lo : top - lo + bottom - top])
    return np.concatenate(parts, axis=1)


def _run_once(net: LoadedNet, inputs: list[np.ndarray]) -> np.ndarray:
    scale = net.manifest.divide_by
    batch = [np.ascontiguousarray(a.transpose(1, 2, 0)[None] / scale, dtype=np.float32) for a in inputs]
    import keras

    with TF_CALLS, keras.device(net.device):
        out = net.model.predict_on_batch(batch)  # compiled: about 1.8x the eager call's speed on the CPU
    return np.asarray(out)[0].transpose(2, 0, 1) * scale
