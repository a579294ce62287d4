import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2sr.tiling import ALIGN, Window, align_outward, tile_grid, tiles_covering

sizes = st.integers(1, 60).map(lambda n: n * ALIGN)
tile_sizes = st.integers(1, 20).map(lambda n: n * ALIGN)


@given(h=sizes, w=sizes, tile=tile_sizes)
def test_tile_grid_covers_raster_exactly_once(h, w, tile):
    cover = np.zeros((h, w), int)
    for t in tile_grid(Window(0, 0, h, w), tile):
        assert all(v % ALIGN == 0 for v in (t.row, t.col, t.height, t.width))
        cover[t.slices()] += 1
    assert (cover == 1).all()


@given(h=sizes, w=sizes, tile=tile_sizes, r=st.integers(0, 400), c=st.integers(0, 400), ah=st.integers(1, 200), aw=st.integers(1, 200))
def test_tiles_covering_are_the_grid_tiles_touching_the_area(h, w, tile, r, c, ah, aw):
    raster, area = Window(0, 0, h, w), Window(r, c, ah, aw)
    expected = [t for t in tile_grid(raster, tile) if t.intersection(area) is not None]
    assert list(tiles_covering(raster, area, tile)) == expected


@given(r=st.integers(-50, 500), c=st.integers(-50, 500), h=st.integers(1, 300), w=st.integers(1, 300))
def test_align_outward_contains_and_aligns(r, c, h, w):
    win = Window(r, c, h, w)
    out = align_outward(win)
    assert out.intersection(win) == win
    assert all(v % ALIGN == 0 for v in (out.row, out.col, out.height, out.width))
    assert out.height - h < 2 * ALIGN and out.width - w < 2 * ALIGN


def test_window_arithmetic():
    a = Window(6, 12, 24, 36)
    assert a.grow(6) == Window(0, 6, 36, 48)
    assert a.scaled(6) == Window(1, 2, 4, 6)
    assert a.relative_to(Window(6, 6, 100, 100)) == Window(0, 6, 24, 36)
    assert a.intersection(Window(100, 100, 6, 6)) is None
    assert a.to_rasterio() == ((6, 30), (12, 48))
    with pytest.raises(ValueError, match="coarser"):
        Window(1, 0, 6, 6).scaled(6)
    with pytest.raises(ValueError, match="multiple of 6"):
        list(tile_grid(Window(0, 0, 12, 12), 10))
