import json

import numpy as np

from s2sr.pairs import GAIN_RANGE
from s2sr.refine import Fusion
from s2sr.resample import block_mean, degrade
from s2sr.sample import SampleSpec, _reflectance
from s2sr.training import evaluate, metrics
from s2sr.training.evaluate import pick_net_weight
from s2sr.training.sources import make_scene
from s2sr.training.train import TrainConfig, train
from s2sr.training.wald import BLUR_RANGE, blended_blur, draw_blur, protocol_blur, sample_patches, wald_pair


def _scene(name, size=216, seed=0):
    refl = _reflectance(SampleSpec(size=size, seed=seed)) * 10000
    im10 = refl[[1, 2, 3, 7]]
    im20 = block_mean(refl[[4, 5, 6, 8, 11, 12]], 2)
    im60 = block_mean(refl[[0, 9]], 6)
    return make_scene(name, "synthetic", "L2A", im10, im20, im60)


def test_make_scene_crops_to_whole_60m_pixels():
    s = make_scene("x", "t", "L1C", np.ones((4, 100, 97)), np.ones((6, 50, 49)), np.ones((2, 17, 16)), offset=-1000)
    assert s.im10.shape == (4, 96, 96) and s.im20.shape == (6, 48, 48) and s.im60.shape == (2, 16, 16)
    assert (s.im10 == -999).all()


def test_wald_pairs_and_patches():
    scene = _scene("a")
    p2, p6 = wald_pair(scene, 2), wald_pair(scene, 6)
    assert [a.shape for a in p2.inputs] == [(4, 108, 108), (6, 108, 108)] and p2.target.shape == (6, 108, 108)
    assert [a.shape for a in p6.inputs] == [(4, 36, 36), (6, 36, 36), (2, 36, 36)] and p6.target.shape == (2, 36, 36)
    assert wald_pair(_scene("small", 96), 6) is None
    xs, y = sample_patches([p2], 5, 24, np.random.default_rng(0))
    assert [x.shape for x in xs] == [(5, 24, 24, 4), (5, 24, 24, 6)] and y.shape == (5, 24, 24, 6)


def test_gain_augmentation_scales_each_band_and_its_target_alike():
    pair = wald_pair(_scene("a"), 2)
    drawn = []
    for seed in range(20):  # one patch a call: the gains are drawn after its corner and flips, so it is the same patch
        plain_x, plain_y = sample_patches([pair], 1, 24, np.random.default_rng(seed))
        xs, y = sample_patches([pair], 1, 24, np.random.default_rng(seed), gains=True)
        factor_in, factor_out = xs[-1] / plain_x[-1], y / plain_y
        assert np.allclose(factor_in, factor_in[:, :1, :1], rtol=1e-5)  # one factor per band
        assert np.allclose(factor_in, factor_out, rtol=1e-5)  # the target band's truth scaled as its input
        assert np.allclose(xs[0] / plain_x[0], (xs[0] / plain_x[0])[:, :1, :1], rtol=1e-5)
        drawn.append(factor_in[0, 0, 0])
    drawn = np.array(drawn)
    assert GAIN_RANGE[0] <= drawn.min() and drawn.max() <= GAIN_RANGE[1] and drawn.std() > 0.05
    assert not np.allclose(drawn[:, 0], drawn[:, 1])  # each band its own


def test_metrics_of_a_perfect_and_a_biased_prediction():
    t = np.random.default_rng(0).uniform(100, 3000, (3, 20, 20))
    perfect = metrics.summary(t, t, 2)
    assert perfect["rmse"] == 0 and perfect["sam"] < 1e-5 and abs(perfect["uiq"] - 1) < 1e-9 and perfect["ergas"] == 0
    biased = metrics.summary(t + 100, t, 2)
    assert abs(biased["rmse"] - 100) < 1e-9 and biased["sre"] < 30 and biased["uiq"] < 1


def test_train_checkpoints_and_resumes(tmp_path):
    scenes = [_scene("train", seed=1), _scene("val", seed=2)]
    cfg = TrainConfig(scale=2, run_dir=tmp_path / "run", features=8, blocks=1, patch=24, batch=4,
                      steps_per_epoch=2, epochs=1, validation_scenes=("val",))
    logs = []
    first = train(cfg, scenes, logs.append)
    assert first.training["validation_scenes"] == ["val"] and first.training["training_scenes"] == ["train"]
    assert (tmp_path / "run" / "best" / "dsen2_x2.npz").is_file()
    second = train(TrainConfig(**{**cfg.__dict__, "epochs": 2}), scenes, logs.append)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 2 and any("resumed at epoch 1" in line for line in logs)
    assert second.training["validation_rmse_ratio_pooled"] <= first.training["validation_rmse_ratio_pooled"]


def test_blur_augmentation_degrades_each_band_with_its_own_blur():
    scene = _scene("a")
    rng = np.random.default_rng(0)
    blur = draw_blur(rng, 2)
    lo, hi = BLUR_RANGE[2]
    assert all(lo <= s <= hi for s in blur.values())
    pair = wald_pair(scene, 2, blur)
    want = degrade(scene.im10[1:2, :216, :216], 2, blur["B3"])[0]
    np.testing.assert_array_equal(pair.inputs[0][1], want)
    paper = wald_pair(scene, 2)
    assert np.abs(pair.inputs[0] - paper.inputs[0]).max() > 1  # not the paper's kernel
    np.testing.assert_array_equal(paper.inputs[0], wald_pair(scene, 2, protocol_blur(2, "paper")).inputs[0])


def test_blur_training_fine_tunes_and_validates_under_both_kernels(tmp_path):
    scenes = [_scene("train", seed=1), _scene("val", seed=2)]
    cfg = TrainConfig(scale=2, run_dir=tmp_path / "run", features=8, blocks=1, patch=24, batch=4,
                      steps_per_epoch=2, epochs=1, validation_scenes=("val",))
    base = train(cfg, scenes)
    tuned = train(TrainConfig(**{**cfg.__dict__, "run_dir": tmp_path / "tuned", "blur": True,
                                 "init": tmp_path / "run" / "best"}), scenes)
    assert "blur augmentation" in tuned.training["method"] and "fine-tuned" in tuned.training["method"]
    assert base.training["validation_rmse_ratio_pooled"] > 0


def test_a_products_r60m_bands_are_x6_pairs_one_level_down(shared_data):
    """The real L2A product's full-tile 60 m bands: B8A stands in for B8, its offset removed, clouds and nodata
    left out by its scene classification; the pair's target is its real B1 and B9."""
    from s2sr.training.sources import CLEAR_SCL, r60m_scene

    product = next(shared_data.glob("S2A_MSIL2A_*_T29UNU_*.SAFE"))
    (scene,) = r60m_scene(product)
    assert scene.fine.shape == (4, 1830, 1830) and scene.mid.shape == (6, 1830, 1830) and scene.coarse.shape == (2, 1830, 1830)
    assert 0.15 < scene.usable.mean() < 0.35  # 40 % outside the swath, a third cloud (SCL 8 - 10)
    assert 0 < np.median(scene.fine[0][scene.usable]) < 1500  # B2 over clear land and sea, the -1000 DN offset removed
    pair = wald_pair(scene, 6, protocol_blur(6, "sensor"))
    assert [a.shape for a in pair.inputs] == [(4, 1830, 1830), (6, 1830, 1830), (2, 1830, 1830)]
    np.testing.assert_array_equal(pair.target, scene.coarse) and np.testing.assert_array_equal(pair.inputs[0], scene.fine)
    assert pair.usable is scene.usable or np.array_equal(pair.usable, scene.usable)
    assert wald_pair(scene, 2) is None and 8 not in CLEAR_SCL
    on_regression = wald_pair(scene, 6, protocol_blur(6, "sensor"), "regression")  # fitted on clear pixels only
    clear = scene.usable

    def rmse(a):
        return np.sqrt(((a[:, clear] - pair.target[:, clear]) ** 2).mean())

    assert rmse(on_regression.net_inputs()[-1]) < rmse(pair.inputs[-1])


def test_pick_net_weight_takes_the_best_mean_that_no_kernel_pays_for():
    ratios = {"paper": {0.0: 0.30, 0.1: 0.29, 0.5: 0.31}, "sensor": {0.0: 0.35, 0.1: 0.34, 0.5: 0.30}}
    # 0.5 has the best mean (0.305) but is worse than the regression alone under the paper kernel
    assert pick_net_weight(ratios) == 0.1


def test_pick_net_weight_honours_the_floor_and_falls_back_to_the_least_weight():
    ratios = {"paper": {0.0: 0.30, 0.1: 0.32, 0.25: 0.31}, "sensor": {0.0: 0.35, 0.1: 0.33, 0.25: 0.36}}
    assert pick_net_weight(ratios) == 0.0  # no net weight is safe under both kernels
    assert pick_net_weight(ratios, floor=0.1) == 0.1  # the net must run: at the least weight allowed
    ties = {"paper": {0.0: 0.3, 0.1: 0.3, 0.25: 0.3}, "sensor": {0.0: 0.3, 0.1: 0.3, 0.25: 0.3}}
    assert pick_net_weight(ties, floor=0.1) == 0.1


def test_blended_blurs_run_from_the_papers_kernel_to_the_documented_mtf():
    paper, sensor, half = protocol_blur(6, "paper"), protocol_blur(6, "sensor"), blended_blur(6, 0.5)
    assert blended_blur(6, 0.0) == paper and blended_blur(6, 1.0) == sensor
    assert all(half[b] == (paper[b] + sensor[b]) / 2 for b in paper)


def test_the_x6_weight_is_chosen_per_blur_and_written_into_the_manifest(tiny_weights, tmp_path, monkeypatch):
    """At each blur the weight with the lowest pooled ratio, 0 (no net) allowed; the table and every figure
    behind it go into the manifest, and the run reads the table at its blur."""
    import shutil

    for path in tiny_weights.glob("dsen2_x6.*"):
        shutil.copy(path, tmp_path / path.name)
    best = {0.0: 0.0, 0.25: 0.1, 0.5: 0.5, 0.75: 1.0, 1.0: 1.0}  # the weight each blur share should win with

    def ratios(scenes, scale, weights_dir, candidates, kernel="paper", blur=None, log=None):
        share = min(best, key=lambda t: abs(np.mean([blended_blur(6, t)[b] for b in ("B1", "B9")])
                                            - np.mean([blur[b] for b in ("B1", "B9")])))
        return {m.name: 0.3 + abs(m.overrides[0][1].net_weight - best[share]) for m in candidates}

    monkeypatch.setattr(evaluate, "_pooled_ratios", ratios)
    chosen = evaluate.choose_fusion([_scene("selection")], tmp_path, scales=(6,))[6]
    assert [w for _, w in chosen.by_blur] == [0.0, 0.1, 0.5, 1.0, 1.0]
    sigmas = [s for s, _ in chosen.by_blur]
    assert sigmas[0] == round(1 / 6, 3) and sigmas == sorted(sigmas)
    written = json.loads((tmp_path / "dsen2_x6.json").read_text())["fusion"]
    assert Fusion.from_dict(written) == chosen and len(written["pooled_ratio_by_blur_and_net_weight"]) == 5
    assert chosen.at_blur(0.1).net_weight == 0.0 and chosen.at_blur(3.0).net_weight == 1.0


def test_a_pair_for_a_net_refining_the_regression_carries_its_detail_and_keeps_bicubic_as_the_baseline():
    from s2sr.pairs import bicubic_baseline

    scene = _scene("a", size=432)
    blur = protocol_blur(6, "sensor")
    plain, on_regression = wald_pair(scene, 6, blur), wald_pair(scene, 6, blur, "regression")
    assert plain.detail is None and on_regression.detail.shape == on_regression.target.shape
    for a, b in zip(plain.inputs, on_regression.inputs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bicubic_baseline(on_regression), plain.inputs[-1])  # what ratios are measured against
    np.testing.assert_array_equal(on_regression.net_inputs()[-1], plain.inputs[-1] + on_regression.detail)

    def rmse(a):
        return np.sqrt(((a - on_regression.target) ** 2).mean())

    # the synthetic scene's 60 m bands are linear in its finer bands: the regression recovers most of their detail
    assert rmse(on_regression.net_inputs()[-1]) < 0.8 * rmse(plain.inputs[-1])
    xs, y = sample_patches([on_regression], 3, 18, np.random.default_rng(0))
    assert xs[-1].shape == (3, 18, 18, 2) and y.shape == (3, 18, 18, 2)


def test_only_x6_nets_refine_the_regression():
    import pytest

    with pytest.raises(ValueError, match="x6 nets only"):
        wald_pair(_scene("a"), 2, residual_to="regression")


def test_choosing_a_fusion_logs_each_scene(monkeypatch):
    """A choice takes minutes: each scene scored is a line, so the tool is never silent for long."""
    target = np.full((6, 12, 12), 100.0)

    def predict(scene, scale, method, *args, **kwargs):
        return target + (2 if method.bicubic else 1), target

    monkeypatch.setattr(evaluate, "predict", predict)
    scenes = [make_scene(f"s{i}", "test", "L1C", np.ones((4, 36, 36)), np.ones((6, 18, 18)), np.ones((2, 6, 6)))
              for i in range(2)]
    lines: list[str] = []
    candidates = [evaluate.Method("w0.5", ((2, Fusion(0.5, 1)),))]
    evaluate._pooled_ratios(scenes, 2, None, candidates, kernel="paper", log=lines.append)
    assert lines == ["x2, paper kernel: scene 1/2 (s0), 1 net weights", "x2, paper kernel: scene 2/2 (s1), 1 net weights"]
