"""Target descriptions (calibration/targets/*.toml): the MCU's memories, cores and operating points."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TARGET = Path(__file__).resolve().parent.parent / "calibration" / "targets" / "gap9.toml"


class TargetError(ValueError):
    """A target file that is missing, malformed or incomplete: the message names the field."""


@dataclass(frozen=True)
class MemoryLevels:
    """Sizes in bytes; weights go to the first level they fit: L2 (its weight budget), MRAM, L3."""

    l1_bytes: int
    l2_bytes: int
    l2_weight_bytes: int
    mram_bytes: int
    l3_bytes: int

    def placement(self, weight_bytes: int) -> str | None:
        """Memory level holding `weight_bytes` of weights: "L2", "MRAM", "L3", or None if too large."""
        for level, size in (("L2", self.l2_weight_bytes), ("MRAM", self.mram_bytes), ("L3", self.l3_bytes)):
            if weight_bytes <= size:
                return level
        return None


def _require(table: dict, key: str, where: str):
    if key not in table:
        raise TargetError(f"{where}: missing field {key!r}")
    return table[key]


def load_target(path: str | Path | None = None) -> dict:
    """Parse a target TOML file (default: the packaged GAP9 description)."""
    path = Path(path) if path is not None else _packaged_target()
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TargetError(f"target file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None


def memory_levels(target: dict, where: str = "target") -> MemoryLevels:
    memory = _require(target, "memory", where)
    fields = {name: int(_require(memory, name, f"{where} [memory]"))
              for name in MemoryLevels.__dataclass_fields__}
    return MemoryLevels(**fields)


def _packaged_target() -> Path:
    from importlib import resources

    packaged = Path(str(resources.files("streamer.data").joinpath("gap9.toml")))
    return packaged if packaged.is_file() else DEFAULT_TARGET
