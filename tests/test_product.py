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
        dict(level="L1C", baseline="02.01", naming="old"),
        dict(level="L1C", baseline="05.09"),
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


def test_old_format_product_has_its_real_layout(build_product):
    """Dec 2015 - Dec 2016: S2A_OPER_MTD_SAFL1C_PDMC_*.xml beside long OPER granule and band names."""
    safe = build_product(size=24, level="L1C", baseline="02.01", naming="old")
    assert safe.name.startswith("S2A_OPER_PRD_MSIL1C_PDMC_")
    assert [p.name[:25] for p in safe.glob("*.xml")] == ["S2A_OPER_MTD_SAFL1C_PDMC_"]
    assert next(safe.rglob("*_B8A.jp2")).name.startswith("S2A_OPER_MSI_L1C_TL_SGS__")
    product = open_product(safe)
    assert product.level == "L1C" and product.name == safe.stem
    assert open_product(next(safe.glob("*.xml"))).band_paths == product.band_paths


def test_zip_without_safe_folder_reads(build_product):
    flat = open_product(build_product(size=24, zipped=True, flat_zip=True))
    nested = open_product(build_product(size=24, zipped=True))
    assert flat.name == nested.name and sorted(flat.band_paths) == sorted(nested.band_paths)
    with ProductReader(flat) as a, ProductReader(nested) as b:
        np.testing.assert_array_equal(a.read(Window(0, 0, 24, 24))[1].values, b.read(Window(0, 0, 24, 24))[1].values)


def test_delivery_folder_holding_one_product(build_product, tmp_path):
    """UP42's data blocks put each product into a folder of its own and point data_path at the folder."""
    safe = build_product(size=24)
    folder = safe.parent
    assert open_product(folder).band_paths == open_product(safe).band_paths
    zipped = build_product(size=24, zipped=True)
    assert open_product(zipped.parent).source == zipped
    # a second product beside the first is ambiguous
    (folder / "other.SAFE").mkdir()
    with pytest.raises(ProductError, match="holds 2 products"):
        open_product(folder)


def test_truncated_jp2_is_a_product_error_naming_the_file(build_product):
    safe = build_product(size=48)
    jp2 = next(safe.rglob("*_B05_20m.jp2"))
    jp2.write_bytes(jp2.read_bytes()[: jp2.stat().st_size // 2])
    with pytest.raises(ProductError, match=r"B05_20m\.jp2"):
        with ProductReader(open_product(safe)) as reader:
            reader.read(Window(0, 0, 48, 48))


def test_baseline_0400_without_offsets_is_refused(build_product):
    safe = build_product(size=12, baseline="04.00")
    mtd = safe / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    start, end = text.index("<BOA_ADD_OFFSET_VALUES_LIST>"), text.index("</BOA_ADD_OFFSET_VALUES_LIST>")
    mtd.write_text(text[:start] + text[end + len("</BOA_ADD_OFFSET_VALUES_LIST>"):])
    with pytest.raises(ProductError, match=r"MTD_MSIL2A\.xml: processing baseline 04\.00 .* BOA_ADD_OFFSET is missing for B1"):
        open_product(safe)


def _imports_between_modules() -> dict[str, set[str]]:
    """Which s2sr modules each module imports (at the top or inside functions), read from the source."""
    import ast
    from pathlib import Path

    import s2sr

    root = Path(s2sr.__file__).parent
    modules = {".".join(("s2sr", *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): f
               for f in root.rglob("*.py")}
    graph = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(parts + ([node.module] if node.module else []))
                found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m not in (name, "s2sr")}
    return graph


def test_no_import_cycle_between_modules():
    """product reads STAC Items through stac, and stac builds the Product of metadata: no way back."""
    graph = _imports_between_modules()
    assert "s2sr.stac" in graph["s2sr.product"] and "s2sr.product" not in graph["s2sr.stac"]

    def in_a_cycle(start: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module == start:
                return True
            if module not in seen:
                seen.add(module)
                todo += graph[module]
        return False

    assert [m for m in graph if in_a_cycle(m)] == []
