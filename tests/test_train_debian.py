"""The Debian recordings' split: training never reads a validation file. Runs on a fake
/usr/share tree made here (G.722 prompts, music, a LibriVox folder), not the installed one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_train_corpus import _recipe_args, _speech_like

from streamer.train import debian, validate


@pytest.fixture
def fake_debian(tmp_path, monkeypatch) -> Path:
    G722 = pytest.importorskip("G722")
    sounds, moh, sphinx = tmp_path / "asterisk" / "sounds", tmp_path / "asterisk" / "moh", tmp_path / "ps"

    def g722(path: Path, audio: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(G722.G722(16000, 64000).encode((audio * 32767).astype(np.int16))))

    for t, talker in enumerate(("en_US_f_Test", "fr_CA_m_Other")):
        for k in range(7):
            g722(sounds / talker / f"prompt-{k}.g722", _speech_like(2.5, 16000, 10 * t + k))
            # The 8 kHz narrow-band twins of the -wav packages are not used.
            (sounds / talker).mkdir(exist_ok=True)
            sf.write(sounds / talker / f"prompt-{k}.wav", _speech_like(2.5, 8000, k), 8000)
        g722(sounds / talker / "digits" / "1.g722", _speech_like(0.6, 16000, 99))   # too short to hold out
        g722(sounds / talker / "beep.g722", 0.3 * np.sin(np.arange(8000) * 0.3))
        g722(sounds / talker / "silence" / "1.g722", np.full(16000, 0.001))
    (sounds / "en").symlink_to(sounds / "en_US_f_Test")              # a language alias
    rng = np.random.default_rng(0)
    for name in ("cold_day", debian.HELD_OUT_NOISE):
        g722(moh / f"{name}.g722", 0.1 * rng.standard_normal(16000 * 6))
    (sphinx / "librivox").mkdir(parents=True)
    (sphinx / "cards").mkdir()
    for k in range(2):
        sf.write(sphinx / "librivox" / f"reader-{k}.wav", _speech_like(2.0, 16000, 50 + k), 16000)
        sf.write(sphinx / "cards" / f"00{k}.wav", _speech_like(1.0, 16000, 60 + k), 16000)
    monkeypatch.setattr(debian, "ASTERISK_SOUNDS", sounds)
    monkeypatch.setattr(debian, "ASTERISK_MOH", moh)
    monkeypatch.setattr(debian, "POCKETSPHINX", sphinx)
    monkeypatch.setattr(debian, "HELD_OUT_TALKER_DIR", sphinx / "librivox")
    debian.held_out_prompts.cache_clear()
    yield tmp_path
    debian.held_out_prompts.cache_clear()


def test_training_and_validation_files_are_disjoint(fake_debian) -> None:
    from streamer.train import sources
    from streamer.train.distributed import World

    speech_files, noise_files = debian.validation_files()
    held = [p for p in speech_files if p.suffix == ".g722"]
    assert len(held) == 2 * debian.HELD_OUT_PER_TALKER
    assert all(p.name.startswith("prompt-") for p in held)           # long speech prompts only
    assert [p.name for p in speech_files if p.suffix == ".wav"] == ["reader-0.wav", "reader-1.wav"]
    assert [p.stem for p in noise_files] == [debian.HELD_OUT_NOISE]

    args = _recipe_args("--debian-recordings")
    real, described = sources.load_sources(args, fake_debian / "cache", World(), log=lambda _: None)
    trained = {src for part in real.speech.parts + real.noise.parts for src in part.sources}
    # 7 prompts + 1 digit per talker, less those held out, and the two "cards" files.
    assert len(real.speech) == 2 * (8 - debian.HELD_OUT_PER_TALKER) + 2
    assert [p.stem for p in real.noise.parts[0].sources] == ["cold_day"]
    assert not trained & (set(speech_files) | set(noise_files))
    assert all(p.suffix == ".g722" or "cards" in str(p) for p in trained)
    assert not any("beep" in str(p) or "silence" in str(p) for p in trained)
    assert "held out" in described["debian"]


def test_real_validation_set_snrs_and_levels(fake_debian) -> None:
    pairs = validate.real_validation_set()
    assert len(pairs) == 2 * debian.HELD_OUT_PER_TALKER + 2
    for i, (noisy, clean) in enumerate(pairs):
        level = 20 * np.log10(np.sqrt(np.mean(clean ** 2)))
        snr = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
        expected = validate.VALIDATION_SNR_DB[i % 8]
        assert level == pytest.approx(validate.VALIDATION_LEVEL_DBFS[i % 4], abs=1e-6)
        assert snr == pytest.approx(max(expected, 5.0) if i % 2 else expected, abs=1e-6)
    again = validate.real_validation_set()
    np.testing.assert_array_equal(pairs[3][0], again[3][0])


def test_no_recordings_no_real_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(debian, "ASTERISK_SOUNDS", tmp_path / "none")
    monkeypatch.setattr(debian, "ASTERISK_MOH", tmp_path / "none")
    monkeypatch.setattr(debian, "HELD_OUT_TALKER_DIR", tmp_path / "none")
    debian.held_out_prompts.cache_clear()
    try:
        assert validate.real_validation_set() == []
    finally:
        debian.held_out_prompts.cache_clear()
