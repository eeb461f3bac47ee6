"""Real recordings from Debian packages, split into training and held-out validation files.

Nothing can be downloaded on the project's machines, but the distribution's archive carries
recorded speech and music under free licences (docs/training.md lists each with its licence):

* `asterisk-core-sounds-{en,es,fr,it,ru}-g722`: telephone prompts read by professional
  talkers (Allison Smith en/es, June Wallack fr, Carlo it, IvrvoiceRU ru), G.722 wide-band
  (16 kHz); CC BY-SA 3.0 (ru: CC BY 3.0). The 8 kHz `-wav` twins are not used (narrow-band).
* `asterisk-moh-opsound-g722` (or `-wav`, 8 kHz): five recorded pieces of music-on-hold,
  CC BY-SA 3.0: a realistic noise class.
* `pocketsphinx-testdata`: read speech at 16 kHz (a LibriVox reader; CMU's "cards" prompts),
  BSD-2 per the package's copyright file.

Held out for validation and never trained on: `HELD_OUT_PER_TALKER` prompts of every Asterisk
talker (the first by a hash of the file name, so the choice does not depend on which packages
are installed), the LibriVox reader (a talker absent from training) and one music file.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_MOH = Path("/usr/share/asterisk/moh")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
HELD_OUT_PER_TALKER = 4
HELD_OUT_NOISE = "manolo_camp-morning_coffee"
HELD_OUT_TALKER_DIR = POCKETSPHINX / "librivox"
# Prompts that are not speech (tones, beeps) or not one talker's voice.
_NOT_SPEECH = ("beep", "tone", "silence", "dial", "ring", "busy-signal", "hold-music")


def _is_speech_prompt(path: Path) -> bool:
    text = str(path).lower()
    return path.suffix.lower() == ".g722" and not any(word in text for word in _NOT_SPEECH)


def talker_dirs() -> list[Path]:
    """The installed Asterisk talkers' folders (real folders, not the language aliases)."""
    if not ASTERISK_SOUNDS.is_dir():
        return []
    return sorted(p for p in ASTERISK_SOUNDS.iterdir()
                  if p.is_dir() and not p.is_symlink() and p.name.count("_") >= 3)


def _rank(path: Path, root: Path) -> str:
    return hashlib.sha1(str(path.relative_to(root)).encode()).hexdigest()


@cache
def held_out_prompts() -> frozenset[Path]:
    chosen: set[Path] = set()
    for root in talker_dirs():
        prompts = [p for p in root.rglob("*.g722") if _is_speech_prompt(p)]
        # Long enough for PESQ to mean something (G.722 is 8000 bytes a second).
        prompts = [p for p in prompts if p.stat().st_size >= 2 * 8000]
        chosen.update(sorted(prompts, key=lambda p, r=root: _rank(p, r))[:HELD_OUT_PER_TALKER])
    return frozenset(chosen)


def held_out(path: Path) -> bool:
    """True for files that training must not read: validation files and unused duplicates."""
    if path in held_out_prompts() or HELD_OUT_TALKER_DIR in path.parents:
        return True
    if path.is_relative_to(ASTERISK_SOUNDS):
        return not _is_speech_prompt(path)
    if path.is_relative_to(ASTERISK_MOH):
        return HELD_OUT_NOISE in path.name or (
            path.suffix.lower() == ".wav" and path.with_suffix(".g722").exists())
    return False


def training_dirs(kind: str) -> list[Path]:
    """Installed folders with training material of `kind` ("speech" or "noise")."""
    if kind == "speech":
        dirs = talker_dirs() + [POCKETSPHINX / "cards"]
    else:
        dirs = [ASTERISK_MOH]
    return [d for d in dirs if d.is_dir()]


def validation_files() -> tuple[list[Path], list[Path]]:
    """(held-out speech files, held-out noise files), sorted."""
    speech = sorted(held_out_prompts())
    if HELD_OUT_TALKER_DIR.is_dir():
        speech += sorted(HELD_OUT_TALKER_DIR.glob("*.wav"))
    noise = sorted(p for p in ASTERISK_MOH.glob(f"{HELD_OUT_NOISE}.*")
                   if p.suffix.lower() in (".wav", ".g722")) if ASTERISK_MOH.is_dir() else []
    # One copy of the held-out music: the wide-band one when both are installed.
    if len(noise) > 1:
        noise = [p for p in noise if p.suffix.lower() == ".g722"] or noise[:1]
    return speech, noise


def describe() -> str:
    talkers = ", ".join(d.name for d in talker_dirs()) or "none"
    return (f"Debian recordings: Asterisk talkers {talkers} (G.722, CC BY-SA 3.0 / ru CC BY 3.0), "
            f"pocketsphinx-testdata cards (BSD-2), asterisk-moh-opsound music (CC BY-SA 3.0); "
            f"held out: {HELD_OUT_PER_TALKER} prompts per talker, the LibriVox reader, {HELD_OUT_NOISE}")
