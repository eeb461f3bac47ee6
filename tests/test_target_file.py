"""The packaged default target is the one in calibration/: a real file, the same bytes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_packaged_target_is_a_real_copy_of_the_calibrated_one() -> None:
    packaged = REPO / "streamer" / "data" / "gap9.toml"
    source = REPO / "calibration" / "targets" / "gap9.toml"
    assert not packaged.is_symlink(), "a symlink breaks in checkouts and sdists without them"
    assert packaged.read_bytes() == source.read_bytes(), (
        "streamer/data/gap9.toml differs from calibration/targets/gap9.toml: copy the edited one over")
