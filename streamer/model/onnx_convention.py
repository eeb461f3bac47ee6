"""The TinyDenoiser ONNX I/O convention, shared by import and export.

Input `input` [1, 257, 1], states `rnn{1,2}_h_state_in` (and `rnn{1,2}_c_state_in` for LSTM)
[1, H]; outputs `output` [1, 257, 1] and the matching `*_state_out`. ONNX's recurrent ops
order their gate blocks differently from PyTorch's (and this project's).
"""

from __future__ import annotations

# Gate blocks reordered ONNX -> PyTorch: LSTM (i,o,f,c) -> (i,f,g,o); GRU (z,r,h) -> (r,z,n).
ONNX_TO_TORCH = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
TORCH_TO_ONNX = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def expected_io(cell: str) -> tuple[list[str], list[str]]:
    """(input names, output names) of a TinyDenoiser graph with `cell`."""
    states = ["h", "c"] if cell == "lstm" else ["h"]
    names = [f"rnn{layer}_{s}_state" for layer in (1, 2) for s in states]
    return ["input"] + [n + "_in" for n in names], ["output"] + [n + "_out" for n in names]
