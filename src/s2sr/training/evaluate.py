"""``s2sr evaluate``: Wald-protocol quality of the nets against bicubic upsampling, x2 and x6."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import load_net, weights_name
from ..tiling import Window
from .metrics import summary
from .sources import Scene, make_scene
from .train import predict_pair
from .wald import bicubic_baseline, wald_pair

METRICS = ("rmse", "sre", "sam", "uiq", "ergas")


@dataclass(frozen=True)
class Row:
    scene: str
    scale: int
    method: str
    metrics: dict
    level: str = ""


def evaluate_scenes(scenes: list[Scene], scales=(2, 6), level: str = "L2A", weights_dir: Path | None = None) -> list[Row]:
    """Metrics of the net and of bicubic for every scene large enough for each scale."""
    rows: list[Row] = []
    for scale in scales:
        net = load_net(weights_name(scale, level, weights_dir), weights_dir)
        for scene in scenes:
            pair = wald_pair(scene, scale)
            if pair is None:
                continue
            rows.append(Row(scene.name, scale, "bicubic", summary(bicubic_baseline(pair), pair.target, scale), scene.level))
            pred = predict_pair(net.model, pair, net.manifest.divide_by)
            rows.append(Row(scene.name, scale, "dsen2", summary(pred, pair.target, scale), scene.level))
    return rows


def mean_rows(rows: list[Row]) -> list[Row]:
    """Per scale, product level (and all levels) and method, the mean of each metric over scenes."""
    out = []
    levels = sorted({r.level for r in rows})
    groups = [(lv, [lv]) for lv in levels] + ([("all", levels)] if len(levels) > 1 else [])
    for scale in sorted({r.scale for r in rows}):
        for name, members in groups:
            for method in ("bicubic", "dsen2"):
                sel = [r.metrics for r in rows if r.scale == scale and r.method == method and r.level in members]
                if sel:
                    mean = {m: float(np.mean([s[m] for s in sel])) for m in METRICS}
                    out.append(Row(f"mean of {len(sel)} ({name})", scale, method, mean, name))
    return out


def markdown(rows: list[Row]) -> str:
    """A table with the RMSE ratio to bicubic on every net row."""
    bicubic = {(r.scene, r.scale): r.metrics["rmse"] for r in rows if r.method == "bicubic"}
    lines = ["| scene | scale | method | RMSE | ratio | SRE dB | SAM deg | UIQ | ERGAS |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r.metrics
        ratio = m["rmse"] / bicubic[(r.scene, r.scale)] if (r.scene, r.scale) in bicubic else float("nan")
        lines.append(
            f"| {r.scene} | x{r.scale} | {r.method} | {m['rmse']:.1f} | {ratio:.3f} | {m['sre']:.2f} | {m['sam']:.3f} | {m['uiq']:.4f} | {m['ergas']:.3f} |"
        )
    return "\n".join(lines)


def scene_from_npz(path: Path) -> Scene:
    with np.load(path) as z:
        return make_scene(path.stem, "npz", "unknown", z["im10"], z["im20"], z["im60"])


def scene_from_product(path: Path, size: int = 1080) -> Scene:
    """A centre crop of a product (at most ``size`` 10 m pixels a side), harmonised to reflectance x 10000."""
    from ..product import ProductReader, open_product

    product = open_product(path)
    with ProductReader(product) as reader:
        h, w = min(size, reader.height) // 36 * 36, min(size, reader.width) // 36 * 36
        row, col = (reader.height - h) // 2 // 6 * 6, (reader.width - w) // 2 // 6 * 6
        g10, g20, g60 = reader.read(Window(row, col, h, w))

    def dn(g):
        return np.where(g.valid, np.maximum(g.values, 1), 0)

    return make_scene(product.name, "product", product.level, dn(g10), dn(g20), dn(g60))
