import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tutela.errors import DataError
from tutela.fl.records import (
    ParameterSpec,
    check_compatible,
    parameters_from_bytes,
    parameters_to_bytes,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
arrays = hnp.arrays(
    np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite
)
param_dicts = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True), arrays, min_size=1, max_size=4
)


@settings(max_examples=50, deadline=None)
@given(param_dicts)
def test_safetensors_round_trip(params):
    back = parameters_from_bytes(parameters_to_bytes(params))
    assert set(back) == set(params)
    for k, v in params.items():
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(back[k], v)


@settings(max_examples=30, deadline=None)
@given(param_dicts)
def test_flatten_round_trip(params):
    spec = ParameterSpec.of(params)
    vec = spec.flatten(params)
    assert vec.shape == (spec.size,)
    back = spec.unflatten(vec)
    for k, v in params.items():
        np.testing.assert_array_equal(back[k], v)


def test_payload_is_not_pickle():
    blob = parameters_to_bytes({"w": np.ones(3, np.float32)})
    assert b"\x80\x04" not in blob[:2]  # no pickle protocol header
    header_len = int.from_bytes(blob[:8], "little")
    assert blob[8 : 8 + header_len].startswith(b"{")


@pytest.mark.parametrize(
    "payload", [b"", b"not safetensors", b"\xff" * 64, (10**9).to_bytes(8, "little") + b"{}"]
)
def test_malformed_payload_is_a_clear_error(payload):
    with pytest.raises(DataError, match="malformed"):
        parameters_from_bytes(payload)


def test_nan_and_oversize_and_dtype_refused():
    with pytest.raises(DataError, match="NaN"):
        parameters_from_bytes(parameters_to_bytes({"w": np.array([1.0, np.nan], np.float32)}))
    with pytest.raises(DataError, match="exceeds"):
        parameters_from_bytes(parameters_to_bytes({"w": np.zeros(100, np.float32)}), max_bytes=100)
    with pytest.raises(DataError, match="dtype"):
        parameters_from_bytes(parameters_to_bytes({"w": np.zeros(3, np.int32)}))


def test_check_compatible_names_the_problem():
    ref = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.float32)}
    check_compatible({"w": np.ones((2, 3), np.float32), "b": np.ones(2, np.float32)}, ref)
    with pytest.raises(DataError, match="'w' has shape"):
        check_compatible({"w": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}, ref)
    with pytest.raises(DataError, match="missing"):
        check_compatible({"w": np.ones((2, 3), np.float32)}, ref)
    with pytest.raises(DataError, match="infinite"):
        check_compatible(
            {"w": np.full((2, 3), np.inf, np.float32), "b": np.ones(2, np.float32)}, ref
        )
