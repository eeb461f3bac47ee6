"""The `streamer` commands, one module each (`add_arguments(parser)`, `run(args)`, and a
DESCRIPTION): the table the console command dispatches by. A command's module is imported
only when it runs, so `streamer --help` lists them all without loading numpy, torch or
PortAudio; adding a command is a row here and its module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: its module, its one-line help, and what to install when the module or
    one of its dependencies is missing."""

    module: str
    help: str
    install: str = "pip install -e . (see the README's install line)"


COMMANDS = {
    "replay": Command("streamer.commands.replay",
                      "enhance a recorded file, report quality and per-frame timing"),
    "eval": Command("streamer.commands.eval", "score a model over folders of noisy/clean pairs"),
    "live": Command("streamer.live.command", "enhance the microphone to the speaker in real time (PortAudio)",
                    "pip install sounddevice (and the PortAudio library: apt install libportaudio2)"),
    "sweep": Command("streamer.commands.sweep",
                     "one model across numeric modes and voltages: latency, deadline, power, PESQ"),
    "quantize": Command("streamer.commands.quantize",
                        "calibrate an FP32 model on audio and write it fp16, int8 or mixed"),
    "info": Command("streamer.commands.info", "describe a model file"),
    "plugin": Command("streamer.commands.plugin",
                      "write a LADSPA plugin running a model in the firmware's arithmetic (C)"),
    "train": Command("streamer.train.recipe", "train a TinyDenoiser (needs the training extras: torch)",
                     "pip install 'streamer[train]'"),
}
