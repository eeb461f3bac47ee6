"""The recordings `streamer train` was given (`--speech`, `--noise`, `--pairs`, `--dns`, `--rir`,
`--debian-recordings`), read through the corpus cache into a `RealSources`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamer.train.corpus import AudioCorpus, CorpusError, load_corpus, load_pairs
from streamer.train.distributed import World

if TYPE_CHECKING:
    from streamer.train.dataset import RealSources


class Concatenated(Sequence):
    """Several corpora as one sequence (no copying)."""

    def __init__(self, parts: list[Sequence[np.ndarray]]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index):  # type: ignore[override]
        if index < 0 or index >= len(self):
            raise IndexError(index)
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part][index - int(self.offsets[part])]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "recordings", "real material to train on besides (or instead of) the synthetic generators; "
        "every option may be repeated; files are converted once to 16 kHz mono in --corpus-cache")
    group.add_argument("--speech", type=Path, action="append", default=[], metavar="DIR",
                       help="clean speech: a tree of .wav/.flac (any rate, any channels)")
    group.add_argument("--noise", type=Path, action="append", default=[], metavar="DIR",
                       help="noise recordings: a tree of .wav/.flac")
    group.add_argument("--pairs", type=Path, nargs=2, action="append", default=[],
                       metavar=("NOISY_DIR", "CLEAN_DIR"),
                       help="ready-made pairs matched by relative file name (e.g. VoiceBank-DEMAND's "
                            "noisy_trainset_28spk_wav clean_trainset_28spk_wav)")
    group.add_argument("--dns", type=Path, action="append", default=[], metavar="DIR",
                       help="a DNS-Challenge style folder: DIR/clean is speech, DIR/noise noise")
    group.add_argument("--rir", type=Path, action="append", default=[], metavar="DIR",
                       help="room impulse responses convolved with the real-source speech")
    group.add_argument("--debian-recordings", action="store_true",
                       help="the installed Debian sound packages' recordings, less the files held "
                            "out for validation (see docs/training.md)")
    group.add_argument("--synthetic-share", type=float, default=None, metavar="F",
                       help="share of items made only from the synthetic generators (default 1 "
                            "without recordings, 0.5 with)")
    group.add_argument("--rir-share", type=float, default=0.5, metavar="F",
                       help="share of real-source mixtures whose speech goes through a --rir")
    group.add_argument("--real-noise-share", type=float, default=1.0, metavar="F",
                       help="share of real-speech mixtures that take their noise from the noise "
                            "recordings (the rest: the synthetic noise generators)")
    group.add_argument("--corpus-cache", type=Path, default=None, metavar="DIR",
                       help="where converted recordings are cached (default DATA_DIR/recordings)")


def wants_recordings(args: argparse.Namespace) -> bool:
    return bool(args.speech or args.noise or args.pairs or args.dns or args.rir or args.debian_recordings)


def synthetic_share(args: argparse.Namespace) -> float:
    if args.synthetic_share is not None:
        return args.synthetic_share
    return 0.5 if wants_recordings(args) else 1.0


def load_sources(args: argparse.Namespace, cache_dir: Path, world: World,
                 log: Callable[[str], None] = print) -> tuple[RealSources, dict[str, str]]:
    """Prepare (each rank its share of the files) and open every corpus the options name.

    Returns the sources and a description of each for the log and the model's metadata.
    Raises CorpusError for a missing folder or one without any usable file.
    """
    from streamer.train.dataset import RealSources  # torch: imported only to train

    say = log if world.main else (lambda _line: None)

    def tree(root: Path, exclude=None) -> AudioCorpus:
        return load_corpus(root, cache_dir, world.rank, world.size, world.barrier, exclude, say)

    speech_dirs = list(args.speech) + [d / "clean" for d in args.dns]
    noise_dirs = list(args.noise) + [d / "noise" for d in args.dns]
    for d in args.dns:
        if not (d / "clean").is_dir() or not (d / "noise").is_dir():
            raise CorpusError(f"{d}: a DNS-Challenge folder needs clean/ and noise/ inside")
    speech = [tree(d) for d in speech_dirs]
    noise = [tree(d) for d in noise_dirs]
    rir = [tree(d) for d in args.rir]
    pairs = [load_pairs(n, c, cache_dir, world.rank, world.size, world.barrier, say) for n, c in args.pairs]
    described: dict[str, str] = {}
    if args.debian_recordings:
        from streamer.train import debian

        described["debian"] = debian.describe()
        for kind, target in (("speech", speech), ("noise", noise)):
            for root in debian.training_dirs(kind):
                target.append(tree(root, exclude=debian.held_out))
                described[f"debian {kind}:{root}"] = target[-1].describe()
    if len(pairs) > 1:
        raise CorpusError("give --pairs once (several pair trees: put them under one folder)")
    for name, dirs, corpora in (("speech", speech_dirs, speech), ("noise", noise_dirs, noise),
                                ("rir", args.rir, rir)):
        for d, c in zip(dirs, corpora, strict=False):
            described[f"{name}:{d}"] = c.describe()
            for line in c.skipped[:5]:
                say(f"corpus: skipped {line}")
    for (n, c), p in zip(args.pairs, pairs, strict=True):
        described[f"pairs:{n}|{c}"] = p.describe()
        for line in p.skipped[:5]:
            say(f"corpus: skipped {line}")
    for key, text in described.items():
        say(f"corpus: {key}: {text}")
    sources = RealSources(speech=Concatenated(speech) if speech else None,
                          noise=Concatenated(noise) if noise else None,
                          rir=Concatenated(rir) if rir else None,
                          pairs=pairs[0] if pairs else None)
    return sources, described
