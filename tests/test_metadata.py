import pytest

from s2sr.errors import ProductError
from s2sr.metadata import parse_product_metadata


def test_rejects_dtd_and_entities():
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(ProductError, match="DTD"):
        parse_product_metadata(evil, "evil.xml")


def test_rejects_non_sentinel2_level():
    with pytest.raises(ProductError, match="not Level-1C or Level-2A"):
        parse_product_metadata(b"<Product><PROCESSING_LEVEL>Level-0</PROCESSING_LEVEL></Product>", "x.xml")


def test_missing_quantification_names_the_file():
    with pytest.raises(ProductError, match=r"x\.xml: no BOA_QUANTIFICATION_VALUE"):
        parse_product_metadata(b"<Product><PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL></Product>", "x.xml")


def _real_documents(root):
    docs = sorted(root.glob("safe-metadata/*/MTD_MSIL*.xml")) + sorted(root.glob("safe-metadata/*/MTD_MSIL2a.xml"))
    docs += sorted(root.glob("safe-metadata/*/product_metadata.xml")) + sorted(root.glob("*.SAFE/MTD_MSIL*.xml"))
    return sorted(set(docs))


def test_real_metadata_of_many_baselines(shared_data):
    docs = _real_documents(shared_data)
    assert len(docs) >= 10
    for doc in docs:
        md = parse_product_metadata(doc.read_bytes(), str(doc))
        assert md.level in ("L1C", "L2A")
        assert md.quantification == 10000.0
        if md.baseline >= "04.00":
            assert set(md.offsets) >= {"B1", "B2", "B8A", "B12"}, doc
            assert all(v < 0 for v in md.offsets.values())
        else:
            assert md.offsets == {}, doc


def test_real_l2a_0400_offsets(shared_data):
    doc = next(shared_data.glob("S2A_MSIL2A_*N0400*.SAFE/MTD_MSIL2A.xml"))
    md = parse_product_metadata(doc.read_bytes(), str(doc))
    assert (md.level, md.baseline) == ("L2A", "04.00")
    assert md.offset("B9") == -1000.0 and md.offset("B10") == -1000.0
