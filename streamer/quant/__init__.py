"""Numeric modes and the Python side of the arithmetic contract (docs/arithmetic-contract.md)."""

QUANT_MODES = ("fp32", "fp16", "int8", "mixed")

__all__ = ["QUANT_MODES"]
