"""The native model file: round trip, and every kind of damage detected with a clear error."""

import numpy as np
import pytest
from helpers import random_params

from streamer.model import load_model
from streamer.model.fileformat import decode_model, encode_model, save_model
from streamer.model.params import ModelError, TinyDenoiserParams, tensor_shapes


@pytest.mark.parametrize("cell,hidden", [("lstm", 128), ("lstm", 256), ("gru", 128), ("gru", 256)])
def test_round_trip_is_exact(tmp_path, cell, hidden):
    params = random_params(cell, hidden)
    path = save_model(params, tmp_path / "m.tdn")
    loaded = load_model(path)
    assert (loaded.cell, loaded.hidden, loaded.metadata) == (cell, hidden, params.metadata)
    for name, tensor in params.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], tensor)


def test_extra_tensors_and_header_fields_survive():
    params = random_params()
    extra = {"rnn1.scale": np.arange(4, dtype=np.int16)}
    _, header, extras = decode_model(encode_model(params, {"note": "extra"}, extra))
    assert header["note"] == "extra"
    np.testing.assert_array_equal(extras["rnn1.scale"], extra["rnn1.scale"])


def test_flipped_byte_is_a_checksum_error():
    blob = bytearray(encode_model(random_params()))
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(ModelError, match="checksum"):
        decode_model(bytes(blob))


@pytest.mark.parametrize("keep", [0, 10, 40, 1000, -1])
def test_truncated_file_is_rejected(keep):
    blob = encode_model(random_params())
    with pytest.raises(ModelError):
        decode_model(blob[:keep] if keep >= 0 else blob[:-1])


def test_foreign_file_is_rejected(tmp_path):
    path = tmp_path / "notes.tdn"
    path.write_text("hello, this is not a model " * 10)
    with pytest.raises(ModelError, match="not a streamer model"):
        load_model(path)


def test_future_version_is_rejected():
    blob = bytearray(encode_model(random_params()))
    blob[8] = 99
    with pytest.raises(ModelError, match="version 99"):
        decode_model(bytes(blob))


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "absent.tdn")


def test_params_validate_shapes_and_values():
    tensors = {n: np.zeros(s, np.float32) for n, s in tensor_shapes("lstm", 128).items()}
    tensors["fc0.weight"] = np.zeros((128, 256), np.float32)
    with pytest.raises(ModelError, match="fc0.weight"):
        TinyDenoiserParams("lstm", 128, dict(tensors))
    tensors["fc0.weight"] = np.full((128, 257), np.nan, np.float32)
    with pytest.raises(ModelError, match="NaN"):
        TinyDenoiserParams("lstm", 128, dict(tensors))
    with pytest.raises(ModelError, match="cell"):
        TinyDenoiserParams("rnn", 128, dict(tensors))
