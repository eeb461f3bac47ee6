"""The validation set that chooses training checkpoints (python -m streamer.train.validate)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_params, require_tool

from streamer.model.fileformat import save_model
from streamer.train import validate


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    require_tool("flite")
    return validate.validation_set()


def test_validation_set_levels_and_snrs(pairs) -> None:
    assert len(pairs) == len(validate.VALIDATION_TEXTS) == 16
    for i, (noisy, clean) in enumerate(pairs):
        level = 20 * np.log10(np.sqrt(np.mean(clean ** 2)))
        snr = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
        assert level == pytest.approx(validate.VALIDATION_LEVEL_DBFS[i % 4], abs=1e-6)
        assert snr == pytest.approx(validate.VALIDATION_SNR_DB[i % 8], abs=1e-6)
        assert np.max(np.abs(noisy)) < 1.0


def test_an_open_mask_scores_like_the_noisy_input(pairs, tmp_path) -> None:
    params = random_params(hidden=128, seed=3)
    params.tensors["fc2.bias"][:] = 30.0          # sigmoid saturates: mask 1, output = input
    path = save_model(params, tmp_path / "open.tdn")
    noisy = validate.score(None, pairs[:3])
    passed = validate.score(path, pairs[:3])
    assert passed["pesq_wb"] == pytest.approx(noisy["pesq_wb"], abs=0.02)
    assert passed["stoi"] == pytest.approx(noisy["stoi"], abs=0.005)


def test_a_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys) -> None:
    # Every file is read before the validation set is synthesised, so no TTS engine is needed.
    bad = tmp_path / "bad.tdn"
    bad.write_bytes(b"not a model")
    assert validate.main([str(bad)]) == 2
    assert f"error: {bad}" in capsys.readouterr().err
