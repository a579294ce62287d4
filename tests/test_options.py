"""RunOptions: one frozen value, checked where it is made, defaults in one place."""

import dataclasses

import pytest

from s2sr.adapt import DEFAULT_ADAPT_STEPS
from s2sr.aoi import Aoi
from s2sr.blur import DEFAULT_SENSOR_MODEL
from s2sr.errors import AoiError, DeviceError, InputParametersError
from s2sr.model import DEFAULT_PRECISION
from s2sr.options import DEFAULT_TILE_SIZE, RunOptions


def test_defaults_are_the_modules_constants():
    d = RunOptions.defaults()
    assert d["tile_size"] == DEFAULT_TILE_SIZE and d["precision"] == DEFAULT_PRECISION
    assert d["sensor_model"] == DEFAULT_SENSOR_MODEL and d["adapt_steps"] == DEFAULT_ADAPT_STEPS
    assert d["mosaic"] is False and d["uncertainty"] is True and d["aoi"] is None


def test_frozen_and_parsed_once():
    opts = RunOptions(aoi=[13.3, 52.4, 13.5, 52.6], weights_dir="w")
    assert isinstance(opts.aoi, Aoi) and opts.aoi.geometry.bounds == (13.3, 52.4, 13.5, 52.6)
    assert str(opts.weights_dir) == "w" and not isinstance(opts.weights_dir, str)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.tile_size = 6
    assert RunOptions.parse(opts) is opts
    again = RunOptions.parse(opts, tile_size=36, mosaic=True)
    assert (again.tile_size, again.mosaic, again.aoi) == (36, True, opts.aoi)
    assert RunOptions.parse({"masks": False}).masks is False


@pytest.mark.parametrize("overrides, error, words", [
    ({"tile_size": 50}, InputParametersError, "multiple of 6"),
    ({"threads": 0}, InputParametersError, "threads"),
    ({"device": "tpu"}, DeviceError, "device"),
    ({"precision": "float16"}, DeviceError, "precision"),
    ({"sensor_model": "gauss"}, InputParametersError, "sensor_model"),
    ({"adapt_steps": -1}, InputParametersError, "adapt_steps"),
    ({"mosaic": "yes"}, InputParametersError, "mosaic must be true or false"),
    ({"aoi": [10, 1, 12, 0]}, AoiError, "south"),
    ({"tiles": 3}, InputParametersError, "unknown option(s) tiles"),
])
def test_bad_values_name_the_value_and_fix(overrides, error, words):
    with pytest.raises(error, match=None) as info:
        RunOptions.parse(**overrides)
    assert words in str(info.value)
