"""Run-time adaptation: the x2 net fine-tuned on the product's own bands, one level down, before the tiles.

DSen2 rests on one assumption: the bands relate across scales the same way one level down. A product
therefore holds a training set that needs no truth: its 10 m and 20 m bands degraded by 2 as input, its own
20 m bands as target (:mod:`s2sr.pairs`), each window's pair made twice, with the run's sensor model and with
the paper's kernel, since the product cannot tell which of the two its own blur is nearer
(:data:`PAIR_BLURS`). The shipped net learnt from some thirty small scenes; a few dozen steps on the product teach it this scene's land cover, season,
atmosphere and blur.

- **Fixed windows**: the pairs come from the product grid's estimation windows (:func:`s2sr.blur.
  estimation_windows`, the ones the sensor model is measured on), so an AOI run, a whole-product run and any
  tile size adapt the same net; patches are drawn by a fixed seed, so the same product on the same machine
  gives the same weights, bit for bit.
- **A guard that uses no truth**: the last rows of every window are held back; the adapted net is kept only
  if it fits them better (RMSE) than the shipped one, otherwise the run uses the shipped net. Too few
  usable pixels (a small AOI-free product, nodata, saturation) falls back the same way, with the reason.
- **What it did** is a value, :class:`Adaptation`, that the GeoTIFF tags and the STAC Item record.

Only the x2 net adapts: pairs for the x6 net need 60 m bands degraded to 360 m, and no real scene here is
large enough to show that helps (``docs/how-it-works.md``, *Adaptation*).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .bands import BANDS_10M, BANDS_20M
from .blur import estimation_windows, sensor_model_for
from .errors import InputParametersError
from .inference import FILL_REACH, BandGroup, Nets
from .model import TF_CALLS, LoadedNet, build_dsen2
from .pairs import WaldPair, pair_inputs, patch_origins, sample_patches
from .refine import usable_coarse
from .resample import inner
from .runner import StageTimes
from .sensor import SensorModel, mtf_sigma, protocol_sigma
from .tiling import Window
from .x6_decision import decide_x6

#: Fine-tuning steps of every run unless asked otherwise (0 turns adaptation off): the one default of the
#: library, the CLI, the batch and the block.
DEFAULT_ADAPT_STEPS = 40


#: Blurs of the pairs one level down: the product's own (its sensor model) and the paper's kernel. A product
#: cannot tell how blurred it is (its sensor model measures the 20 m bands' blur relative to the 10 m bands',
#: and an absolute sharpness statistic spans more from scene to scene than between the two kernels), so the net
#: learns the scene under both ends of the blur range instead of betting on one: on the selection scenes that
#: moved the trade between the kernels, at the same figure under the sensor's kernel a lower one under the
#: paper's (``docs/how-it-works.md``, *Adaptation*, "Pairs under two blurs").
PAIR_BLURS = ("product", "paper")


@dataclass(frozen=True)
class AdaptOptions:
    """How the x2 net is fine-tuned on a product. ``steps`` 0: not at all."""

    steps: int = DEFAULT_ADAPT_STEPS
    learning_rate: float = 1e-4
    #: Share of the fine-tuned change kept: shipped + share x (fine-tuned - shipped). Weight-space ensembling
    #: (Wortsman et al., 2022): a longer fine-tune taken part of the way keeps more of what the product
    #: teaches per unit of what it unlearns than a shorter one taken whole (``docs/how-it-works.md``).
    interpolation: float = 0.5
    batch: int = 16
    patch: int = 48  # target (20 m) pixels
    holdout: float = 0.25  # share of each window's rows held back for the guard
    margin: int = 8  # target pixels cut off each window's pair: there the degradation read reflected edges
    min_patches: int = 64  # fewest distinct usable patch corners to train on
    min_heldout: int = 1024  # fewest usable held-back target pixels to judge by
    seed: int = 20181
    #: Blurs the pairs are degraded with, one pair per window and blur (:func:`pair_blur`).
    pair_blurs: tuple[str, ...] = PAIR_BLURS

    @classmethod
    def parse(cls, steps: int) -> AdaptOptions:
        """From the one number users give (steps, 0 = off), checked."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InputParametersError(f"adapt_steps must be a whole number of 0 or more (0 turns adaptation off), got {steps!r}")
        return cls(steps=steps)


@dataclass(frozen=True)
class Adaptation:
    """What adaptation did for one net of one product (recorded in the GeoTIFF tags and the STAC Item)."""

    scale: int
    steps: int
    windows: int
    kept: bool
    reason: str
    heldout_rmse_before: float | None = None  # DN, the shipped net on the held-back pairs
    heldout_rmse_after: float | None = None  # DN, the adapted net on the same pairs
    train_pixels: int = 0
    heldout_pixels: int = 0
    seconds: float = 0.0
    weights_sha256: str | None = None  # of the adapted weights, kept or not (same product and machine: same)

    def to_dict(self) -> dict:
        out = {
            "scale": self.scale, "steps": self.steps, "windows": self.windows, "kept": self.kept, "reason": self.reason,
            "heldout_rmse_before": _rounded(self.heldout_rmse_before), "heldout_rmse_after": _rounded(self.heldout_rmse_after),
            "train_pixels": self.train_pixels, "heldout_pixels": self.heldout_pixels, "seconds": round(self.seconds, 1),
        }
        if self.weights_sha256:
            out["weights_sha256"] = self.weights_sha256
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> Adaptation:
        """From what :meth:`to_dict` wrote (the tags, the STAC Item's ``s2sr:adaptation``)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def describe(self) -> str:
        """One line for people."""
        if self.heldout_rmse_before is None:
            return f"x{self.scale} net not adapted: {self.reason}"
        verdict = "adapted" if self.kept else "shipped net kept"
        return (f"x{self.scale} net {verdict} ({self.steps} steps, {self.seconds:.0f} s): held-back RMSE "
                f"{self.heldout_rmse_before:.1f} -> {self.heldout_rmse_after:.1f} DN; {self.reason}")


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def pair_blur(sensor: SensorModel, kind: str = "product") -> dict[str, float]:
    """Each band's blur one level down (sigma in its own pixels). ``paper``: the paper's kernel, 1/2 for every
    band. ``product``, by scale invariance: a 20 m band keeps the blur the sensor model gives it on the 10 m
    grid; a 10 m band, which the model does not cover, takes its documented MTF blur.

    The 10 m bands' own blur cannot be read off the product: the model measures each 20 m band's blur
    relative to the 10 m bands, and a sharper 10 m band with a sharper 20 m band measure the same as a
    blurrier pair. An earlier rule scaled the documented 10 m blur by the red-edge estimate's ratio to the
    documented red edge; that ratio came out near 0.9 under both protocols, and on the selection scenes the
    documented blur alone adapted better under the sensor's kernel and the decimated tile's paper figure
    (``docs/how-it-works.md``, *Adaptation*)."""
    if kind == "paper":
        return {b: protocol_sigma(b, 2, "paper") for b in BANDS_10M + BANDS_20M}
    if kind != "product":
        raise ValueError(f"pair blur must be 'product' or 'paper', got {kind!r}")
    blur = {b: float(mtf_sigma(b, 2)) for b in BANDS_10M}
    blur.update({b: sensor.kernel(b).sigma for b in BANDS_20M})
    return blur


Read = Callable[[Window], tuple[BandGroup, BandGroup, BandGroup | None]]


def window_pairs(read: Read, windows: list[Window], sensor: SensorModel, options: AdaptOptions) -> list[WaldPair]:
    """The x2 Wald pairs of each window (on its 20 m grid, less the margin), one per blur of
    ``options.pair_blurs`` in that order, window by window, with their usable target pixels.

    Nodata is filled as the tiles fill it; a target pixel is usable where the 20 m bands hold unsaturated
    data and the 10 m bands hold data over it."""
    blurs = [(kind, pair_blur(sensor, kind)) for kind in options.pair_blurs]
    pairs = []
    for w in windows:
        h, wd = w.height // 12 * 12, w.width // 12 * 12
        if h < 12 or wd < 12:
            continue
        g10, g20, _ = read(w)  # the window the sensor model read (decoded once), cut to whole 40 m pixels
        im10, im20 = g10.filled(FILL_REACH)[:, :h, :wd], g20.filled(FILL_REACH // 2)[:, : h // 2, : wd // 2]
        usable = usable_coarse(g10.valid[:h, :wd], g20.saturated[:, : h // 2, : wd // 2], g20.valid[: h // 2, : wd // 2], 2)
        m = options.margin
        target, usable = np.ascontiguousarray(inner(im20, m)), np.ascontiguousarray(inner(usable, m))
        for kind, blur in blurs:
            inputs = pair_inputs(2, im10, im20, None, blur)
            pairs.append(WaldPair(f"window {w.row},{w.col}, {kind} blur", [np.ascontiguousarray(inner(a, m)) for a in inputs],
                                  target, usable))
    return pairs


def _heldout_rows(pair: WaldPair, options: AdaptOptions) -> int:
    """First held-back row of a pair: its last ``holdout`` share of rows."""
    return pair.size[0] - max(1, round(pair.size[0] * options.holdout))


def _heldout_sq(model, pair: WaldPair, divide_by: float, first: int) -> tuple[float, int]:
    """Squared error of a model over a pair's usable held-back pixels, and their count."""
    batch = [a.transpose(1, 2, 0)[None] / divide_by for a in pair.inputs]
    pred = np.asarray(model.predict_on_batch(batch))[0].transpose(2, 0, 1) * divide_by
    rows = slice(first, None)
    mask = pair.usable[rows]
    err = pred[:, rows][:, mask] - pair.target[:, rows][:, mask]
    return float((err.astype(np.float64) ** 2).sum()), int(err.size)


def heldout_rmse(model, pairs: list[WaldPair], divide_by: float, options: AdaptOptions) -> float:
    """RMSE (DN) of a model over the held-back rows of every pair, pooled (the pixel count the record gives is
    each window's, counted once: :func:`adapt_x2`)."""
    sq, n = 0.0, 0
    for p in pairs:
        s, k = _heldout_sq(model, p, divide_by, _heldout_rows(p, options))
        sq, n = sq + s, n + k
    return float(np.sqrt(sq / n)) if n else float("nan")


def _digest(weights: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def adapt_x2(net: LoadedNet, pairs: list[WaldPair], options: AdaptOptions, windows: int) -> tuple[LoadedNet, Adaptation]:
    """The x2 net fine-tuned on a product's pairs if that fits their held-back rows better, else ``net``."""
    started = time.monotonic()

    def fallback(reason: str, **record) -> tuple[LoadedNet, Adaptation]:
        return net, Adaptation(2, options.steps, windows, False, reason, seconds=time.monotonic() - started, **record)

    origins = [patch_origins(p, options.patch, _heldout_rows(p, options)) for p in pairs]
    per_window = max(1, len(options.pair_blurs))  # the pixels of a window are counted once, whatever its blurs
    corners = sum(len(o) for o in origins[::per_window])
    heldout = sum(int(p.usable[_heldout_rows(p, options) :].sum()) for p in pairs[::per_window])
    train_pixels = sum(int(p.usable[: _heldout_rows(p, options)].sum()) for p in pairs[::per_window])
    if corners < options.min_patches or heldout < options.min_heldout:
        return fallback(f"too few usable pixels to learn from ({corners} patch positions of {options.patch} px, "
                        f"{heldout} held-back pixels; needs {options.min_patches} and {options.min_heldout})",
                        train_pixels=train_pixels, heldout_pixels=heldout)
    import keras

    divide_by = net.manifest.divide_by
    with TF_CALLS, keras.device(net.device):  # also: one adaptation at a time, the training copies are shared
        trainer = _trainer(net, options.learning_rate)
        before = heldout_rmse(trainer, pairs, divide_by, options)
        rng = np.random.default_rng(options.seed)
        for _ in range(options.steps):
            xs, y = sample_patches(pairs, options.batch, options.patch, rng, origins=origins)
            trainer.train_on_batch([x / divide_by for x in xs], y / divide_by)
        weights = trainer.get_weights()
        if options.interpolation != 1.0:
            share = np.float32(options.interpolation)
            weights = [s + share * (w - s) for s, w in zip(net.model.get_weights(), weights, strict=True)]
            trainer.set_weights(weights)
        after = heldout_rmse(trainer, pairs, divide_by, options)
    record = dict(heldout_rmse_before=before, heldout_rmse_after=after, train_pixels=train_pixels,
                  heldout_pixels=heldout, weights_sha256=_digest(weights))
    if not after < before:
        return fallback("the adapted net fits the held-back pairs no better", **record)
    adapted = Adaptation(2, options.steps, windows, True, "fits the held-back pairs better",
                         seconds=time.monotonic() - started, **record)
    return _with_weights(net, weights), adapted


#: Compiled training copies of the x2 net, one per architecture, precision, device and rate. Keras keeps some
#: 30 MB per compiled model for the life of the process (measured: a model compiled per product grew a
#: process by that much per product), so a batch worker running a year of scenes trains one copy, its
#: weights and optimizer reset for each product; the adapted weights then go into a plain model of their own.
_TRAINERS: dict[tuple, Any] = {}


def _trainer(net: LoadedNet, learning_rate: float):
    """The process's training copy of ``net``, holding ``net``'s weights and a fresh optimizer state."""
    import keras

    key = (net.manifest.architecture, net.precision, net.device, learning_rate)
    if key not in _TRAINERS:
        with keras.device(net.device):
            model = build_dsen2(2, net.manifest.architecture, net.precision)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_absolute_error")
        _TRAINERS[key] = model
    model = _TRAINERS[key]
    model.set_weights(net.model.get_weights())
    for variable in model.optimizer.variables:  # Adam as new: step count and moments at zero, the rate kept
        if variable is not model.optimizer.learning_rate and "learning_rate" not in variable.path:
            variable.assign(np.zeros(variable.shape, variable.dtype))
    return model


def _with_weights(net: LoadedNet, weights: list[np.ndarray]) -> LoadedNet:
    """``net`` with other weights, in a model of its own (plain: built models cost no lasting memory)."""
    import keras

    with keras.device(net.device):
        model = build_dsen2(2, net.manifest.architecture, net.precision)
        model.set_weights(weights)
    return replace(net, model=model)


def adapt_nets(nets: Nets, read: Read, height: int, width: int, options: AdaptOptions) -> Nets:
    """``nets`` with the x2 net adapted to the product behind ``read`` (a raster of ``height`` x ``width``
    10 m pixels), and what adaptation did in ``nets.adaptation``; unchanged where ``options.steps`` is 0."""
    if options.steps == 0:
        return replace(nets, adaptation=(Adaptation(2, 0, 0, False, "turned off"),))
    windows = estimation_windows(height, width)
    pairs = window_pairs(read, windows, nets.sensor, options)
    x2, record = adapt_x2(nets.x2, pairs, options, len(windows))
    return replace(nets, x2=x2, adaptation=(record,))


#: Adapted x2 nets this process built from shipped weights, by the digest of their weights (a cube's chunk
#: tasks on one worker share their date's net instead of building it per chunk).
_BUILT: dict[str, LoadedNet] = {}
_BUILT_MAX = 4


def adapted_weights(nets: Nets) -> tuple[str, list[np.ndarray]] | None:
    """The kept adapted x2 weights of prepared ``nets`` (digest, arrays), None where the shipped net runs: what
    a cube's date task hands to its chunk tasks, which load the shipped nets themselves."""
    kept = [a for a in nets.adaptation if a.kept and a.scale == 2]
    return (kept[0].weights_sha256, nets.x2.model.get_weights()) if kept else None


def with_adapted_weights(nets: Nets, weights: tuple[str, list[np.ndarray]] | None) -> Nets:
    """``nets`` (shipped, as a worker loaded them) with the x2 net's weights replaced by ``weights``
    (:func:`adapted_weights`), built once per process and digest."""
    if weights is None:
        return nets
    digest, arrays = weights
    with TF_CALLS:  # a cube's chunk tasks arrive in threads: one builds, the others take it
        if digest not in _BUILT:
            while len(_BUILT) >= _BUILT_MAX:
                _BUILT.pop(next(iter(_BUILT)))
            _BUILT[digest] = _with_weights(nets.x2, arrays)
        return replace(nets, x2=_BUILT[digest])


class _ReadOnce:
    """``read`` that decodes each window once: the sensor model and adaptation read the same windows."""

    def __init__(self, read: Read):
        self._read, self._seen = read, {}

    def __call__(self, window: Window):
        if window not in self._seen:
            self._seen[window] = self._read(window)
        return self._seen[window]


def prepare_nets(nets: Nets, read: Read, height: int, width: int, sensor_model: str | SensorModel,
                 options: AdaptOptions, times: StageTimes | None = None, uncertainty: bool = False,
                 warn: Callable[[str], None] | None = None) -> Nets:
    """What a product's tiles (a cube date's chunks) run with, made once before them, never per tile: the sensor
    model measured on the product's fixed windows (:func:`s2sr.blur.sensor_model_for`), then the x2 net adapted
    on the same windows, each window decoded once, then whether the x6 net runs, judged on larger windows of
    the product one level down (:func:`s2sr.x6_decision.decide_x6`; read one at a time, not kept), then, with
    ``uncertainty``, the intervals calibrated one level down on the adaptation's windows with the nets as decided
    (:func:`s2sr.uncertainty.calibrate`). ``times`` gets the seconds of each. A calibration that fails leaves the
    nets without one (no uncertainty, never the bands lost) and calls ``warn``."""
    times = times if times is not None else StageTimes()
    once = _ReadOnce(read)
    with times.timing("sensor model"):
        nets = replace(nets, sensor=sensor_model_for(sensor_model, once, height, width))
    with times.timing("adaptation"):
        nets = adapt_nets(nets, once, height, width, options)
    with times.timing("x6 decision"):
        nets = decide_x6(nets, read, height, width)
    if not uncertainty:
        return replace(nets, calibration=None)
    from .uncertainty import calibrate

    with times.timing("calibration"):
        try:
            return replace(nets, calibration=calibrate(nets, once, height, width))
        except Exception as exc:  # the uncertainty never costs the bands
            if warn is not None:
                warn(f"uncertainty not computed: calibration failed ({type(exc).__name__}: {exc})")
            return replace(nets, calibration=None)
