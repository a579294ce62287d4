import numpy as np
import pytest

from s2sr.errors import NoInputError, ProductError
from s2sr.inference import BandGroup
from s2sr.metadata import parse_product_metadata
from s2sr.product import ProductReader, open_product
from s2sr.tiling import Window


@pytest.mark.parametrize(
    "spec",
    [
        dict(level="L2A", baseline="04.00"),
        dict(level="L2A", baseline="02.12"),
        dict(level="L1C", baseline="04.00"),
        dict(level="L1C", baseline="03.01", naming="old"),
        dict(level="L2A", baseline="05.09", naming="old"),
    ],
)
@pytest.mark.parametrize("zipped", [False, True])
def test_layouts_read_to_the_same_reflectance(build_product, spec, zipped):
    path = build_product(size=48, zipped=zipped, **spec)
    product = open_product(path)
    assert product.level == spec["level"] and product.metadata.baseline == spec["baseline"]
    with ProductReader(product) as reader:
        assert (reader.height, reader.width) == (48, 48)
        g10, g20, g60 = reader.read(Window(0, 0, 48, 48))
    assert g10.values.shape == (4, 48, 48) and g20.values.shape == (6, 24, 24) and g60.values.shape == (2, 8, 8)
    # The same synthetic scene with and without the +1000 offset must harmonise to the same values.
    reference = build_product(size=48, level=spec["level"], baseline="02.12")
    with ProductReader(open_product(reference)) as reader:
        r10 = reader.read(Window(0, 0, 48, 48))[0]
    np.testing.assert_array_equal(g10.values[:, g10.valid], r10.values[:, r10.valid])
    assert (g10.valid == r10.valid).all() and not g10.valid.all()


def test_metadata_path_is_a_product(build_product):
    safe = build_product(size=12)
    assert open_product(safe / "MTD_MSIL2A.xml").band_paths == open_product(safe).band_paths


def test_missing_product_and_non_products(tmp_path):
    with pytest.raises(NoInputError, match="does not exist"):
        open_product(tmp_path / "nope.SAFE")
    (tmp_path / "empty.SAFE").mkdir()
    with pytest.raises(ProductError, match="no MTD_MSIL1C.xml or MTD_MSIL2A.xml"):
        open_product(tmp_path / "empty.SAFE")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ProductError, match="not a SAFE"):
        open_product(tmp_path / "a.txt")


def test_missing_band_file_is_named(build_product):
    safe = build_product(size=12)
    next(safe.rglob("*_B11_20m.jp2")).unlink()
    with pytest.raises(ProductError, match="band files missing for B11"):
        open_product(safe)


def test_mismatched_grids_are_refused(build_product):
    safe = build_product(size=24)
    other = build_product(size=36)
    target = next(safe.rglob("*_B05_20m.jp2"))
    target.write_bytes(next(other.rglob("*_B05_20m.jp2")).read_bytes())
    with pytest.raises(ProductError, match="does not cover the 10 m grid"):
        ProductReader(open_product(safe)).__enter__()


def test_real_product_without_10m_bands_is_a_clear_error(shared_data):
    safe = next(shared_data.glob("S2A_MSIL2A_*N0400*.SAFE"))
    with pytest.raises(ProductError, match="band files missing for B2, B3, B4, B8"):
        open_product(safe)


def test_real_r60m_jp2_harmonise_with_the_product_offsets(shared_data):
    import rasterio

    safe = next(shared_data.glob("S2A_MSIL2A_*N0400*.SAFE"))
    md = parse_product_metadata((safe / "MTD_MSIL2A.xml").read_bytes(), "MTD_MSIL2A.xml")
    path = next(safe.rglob("R60m/*_B01_60m.jp2"))
    with rasterio.open(path) as ds:
        assert ds.shape == (1830, 1830) and ds.res == (60.0, 60.0)
        dn = ds.read(1, window=((600, 700), (600, 700)))[None]
    group = BandGroup.from_dn(dn, [md.offset("B1")], md.quantification)
    assert group.valid.any()
    np.testing.assert_array_equal(group.values[0][group.valid], dn[0][group.valid].astype(np.float32) - 1000)
