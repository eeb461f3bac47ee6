"""Numeric modes and the Python side of the arithmetic contract (docs/arithmetic-contract.md)."""

from streamer.quant.modes import MODES as QUANT_MODES

__all__ = ["QUANT_MODES"]
