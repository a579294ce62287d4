"""The per-product x6 decision: the net runs only where the product's own pairs one level down say it wins."""

from dataclasses import replace

import numpy as np
import pytest

from s2sr import inference, x6_decision
from s2sr.api import _reader, superresolve
from s2sr.bands import SATURATED_DN
from s2sr.inference import load_nets
from s2sr.resample import block_mean
from s2sr.sample import SampleSpec, _reflectance
from s2sr.sensor import SensorModel
from s2sr.tiling import Window
from s2sr.x6_decision import X6Decision, decide_x6, decision_windows


def _arrays(size=432, seed=0):
    refl = _reflectance(SampleSpec(size=size, seed=seed)) * 10000
    return refl[[1, 2, 3, 7]], block_mean(refl[[4, 5, 6, 8, 11, 12]], 2), block_mean(refl[[0, 9]], 6)


def _nets(weights):
    return replace(load_nets("L2A", True, weights), sensor=SensorModel.documented())


def test_the_windows_are_fixed_on_the_product_grid():
    whole = decision_windows(10980, 10980)
    assert len(whole) == 9 and all(w.height == w.width == 1008 and w.row % 36 == 0 == w.col % 36 for w in whole)
    assert {w.row for w in whole} == {w.col for w in whole} == {0, 4104, 8208}  # each inside one 1024 px JP2 block
    assert all(w.row // 1024 == (w.row_stop - 1) // 1024 for w in whole)
    assert len(decision_windows(5000, 4000)) == 9 and all(w.row_stop <= 5000 and w.col_stop <= 4000
                                                          for w in decision_windows(5000, 4000))
    assert decision_windows(500, 2000) == [Window(0, 0, 468, 1980)]
    assert decision_windows(1830, 3100) == [Window(0, 540, 1800, 2016)]
    assert decision_windows(30, 30) == []


def test_a_small_product_falls_back_to_the_regression_and_the_net_does_not_run(tiny_weights_on_regression, monkeypatch):
    b10, b20, b60 = _arrays(432)
    nets = decide_x6(_nets(tiny_weights_on_regression), _reader(b10, b20, b60), 432, 432)
    d = nets.x6_decision
    assert d.net_weight == 0 and d.fused_weight == 1 and "too few usable 60 m pixels" in d.reason
    assert nets.fusion(6).net_weight == 0 and nets.fusion_record()["x6"]["decision"] == d.to_dict()
    ran = []
    run_net = inference.run_net
    monkeypatch.setattr(inference, "run_net", lambda net, inputs: ran.append(net.manifest.scale) or run_net(net, inputs))
    out = superresolve(b10, b20, b60, weights_dir=tiny_weights_on_regression, sensor_model="mtf", adapt_steps=0)
    assert out.b60 is not None and 6 not in ran


@pytest.mark.parametrize("spoil", ["nodata", "saturated"])
def test_60m_bands_without_usable_pixels_fall_back(tiny_weights_on_regression, monkeypatch, spoil):
    monkeypatch.setattr(x6_decision, "MIN_PIXELS", 100)
    b10, b20, b60 = _arrays(432)
    b60[:] = 0 if spoil == "nodata" else SATURATED_DN
    d = decide_x6(_nets(tiny_weights_on_regression), _reader(b10, b20, b60), 432, 432).x6_decision
    assert d.net_weight == 0 and "to judge the net (0, needs 100" in d.reason and d.rmse_regression is None


def test_the_net_runs_only_where_it_wins_by_the_margin(tiny_weights_on_regression, monkeypatch):
    monkeypatch.setattr(x6_decision, "MIN_PIXELS", 100)
    b10, b20, b60 = _arrays(432)
    read = _reader(b10, b20, b60)
    nets = _nets(tiny_weights_on_regression)
    judged = decide_x6(nets, read, 432, 432).x6_decision
    assert judged.pixels == (72 - 2 * x6_decision.EDGE) ** 2 and judged.windows == 1
    assert judged.rmse_regression > 0 and judged.rmse_fused != judged.rmse_regression  # the random net moves it
    won = judged.rmse_fused < (1 - x6_decision.MARGIN) * judged.rmse_regression
    assert judged.net_weight == (1.0 if won else 0.0)
    monkeypatch.setattr(x6_decision, "MARGIN", -10.0)  # any net wins
    kept = decide_x6(nets, read, 432, 432)
    assert kept.x6_decision.net_weight == 1.0 and "wins" in kept.x6_decision.reason and kept.fusion(6).net_weight == 1.0
    assert (kept.x6_decision.rmse_regression, kept.x6_decision.rmse_fused) == (judged.rmse_regression, judged.rmse_fused)
    monkeypatch.setattr(x6_decision, "MARGIN", 0.99)  # no net wins
    lost = decide_x6(nets, read, 432, 432)
    assert lost.x6_decision.net_weight == 0.0 and "does not win" in lost.x6_decision.reason
    assert X6Decision.from_dict(lost.x6_decision.to_dict()).reason == lost.x6_decision.reason


def test_the_fused_judgement_is_the_mix_of_the_two_projected_outputs(tiny_weights_on_regression):
    """The projection is affine in its estimate: judging at weight w from the outputs at 0 and 1 is exact."""
    b10, b20, b60 = _arrays(216)
    nets = _nets(tiny_weights_on_regression)
    g = _reader(b10, b20, b60)(Window(0, 0, 216, 216))
    sq = {w: x6_decision.judge_window(nets, *g, w)[1] for w in (0.0, 0.5, 1.0)}
    blur = x6_decision.level_down_blur(nets.sensor)
    down = (x6_decision._level_down(g[0], ("B2", "B3", "B4", "B8"), blur, 24),
            x6_decision._level_down(g[1], ("B5", "B6", "B7", "B8A", "B11", "B12"), blur, 12),
            x6_decision._level_down(g[2], ("B1", "B9"), blur, 4))
    half = replace(nets, overrides=((2, inference.Fusion(0.0, 0)), (6, inference.Fusion(0.5, 1))))
    direct = inference.superresolve_groups(half, *down).b60
    target = g[2].values
    keep = np.zeros(target.shape[1:], bool)
    e = x6_decision.EDGE
    keep[e:-e, e:-e] = True
    np.testing.assert_allclose(((direct[:, keep] - target[:, keep]).astype(np.float64) ** 2).sum(), sq[0.5], rtol=1e-4)
    assert sq[0.0] == x6_decision.judge_window(nets, *g, 0.5)[0]


def test_a_caller_that_fixes_the_x6_fusion_is_not_judged(tiny_weights_on_regression):
    b10, b20, b60 = _arrays(216)
    nets = replace(_nets(tiny_weights_on_regression), overrides=((6, inference.Fusion(1.0, 1)),))
    assert decide_x6(nets, _reader(b10, b20, b60), 216, 216) is nets


def test_tiled_output_equals_untiled_with_the_net_chosen(tiny_weights_on_regression, monkeypatch):
    monkeypatch.setattr(x6_decision, "MIN_PIXELS", 100)
    monkeypatch.setattr(x6_decision, "MARGIN", -10.0)  # the judge keeps the net: the x6 net runs in every tile
    b10, b20, b60 = _arrays(432)
    kw = dict(weights_dir=tiny_weights_on_regression, sensor_model="mtf", adapt_steps=0)
    tiled, untiled = superresolve(b10, b20, b60, tile_size=72, **kw), superresolve(b10, b20, b60, tile_size=432, **kw)
    np.testing.assert_allclose(tiled.b60, untiled.b60, atol=0.05)  # the nets' float rounding, as test_inference
    monkeypatch.setattr(x6_decision, "MARGIN", 0.99)
    alone = superresolve(b10, b20, b60, tile_size=432, **kw)
    assert np.abs(alone.b60 - untiled.b60).max() > 5  # the net judged to lose does not run: the output moves
