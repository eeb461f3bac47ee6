"""`streamer live`'s audio devices: PortAudio (through sounddevice) found or explained,
devices checked for the rate and channels asked, described and listed."""

from __future__ import annotations

from typing import Any

from streamer.engine import SAMPLE_RATE
from streamer.live.processor import MAX_CHANNELS, LiveError


def parse_device(value: str | None) -> int | str | None:
    """`--input 3` is device index 3; anything else is a name (sounddevice matches substrings)."""
    if value is None or value == "":
        return None
    return int(value) if value.strip().isdigit() else value


INSTALL_HINT = ("pip install sounddevice (a dependency of streamer: reinstall with the README's "
                "install line) and the PortAudio library (Debian/Ubuntu: apt install libportaudio2)")


def import_sounddevice() -> Any:
    """sounddevice, or a one-line LiveError saying what to install (the package or PortAudio)."""
    try:
        import sounddevice
    except ModuleNotFoundError as exc:
        raise LiveError(f"'streamer live' needs the Python package sounddevice, which is not "
                        f"installed: {INSTALL_HINT}") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
        raise LiveError(f"'streamer live' cannot load the PortAudio library ({exc}): "
                        f"{INSTALL_HINT}") from exc
    return sounddevice


def default_rate(input_device: int | str | None) -> int:
    """The input device's own default sample rate (what `streamer live` opens by default)."""
    sd = import_sounddevice()
    info = _query(sd, input_device, "input")
    return int(round(info["default_samplerate"]))


def _query(sd: Any, device: int | str | None, kind: str) -> dict[str, Any]:
    try:
        return sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError) as exc:
        apis = ", ".join(api["name"] for api in sd.query_hostapis()) or "none"
        what = f"no default {kind} device" if device is None else f"no {kind} device {device!r}"
        raise LiveError(f"{what} ({exc}); PortAudio host APIs here: {apis}; see "
                        f"--list-devices (is the JACK or PulseAudio server running?)") from exc


def check_devices(input_device: int | str | None, output_device: int | str | None,
                  rate: int = SAMPLE_RATE, input_channel: int | None = None) -> tuple[int, int]:
    """The (input, output) channel counts to open; LiveError, naming the device, when one is
    missing, has too few channels or refuses `rate` Hz float32.

    Input: every channel of the device (at most MAX_CHANNELS) for the mono downmix, or the
    first `input_channel` to pick that one; output: every channel (at most MAX_CHANNELS).
    """
    sd = import_sounddevice()
    in_info, out_info = _query(sd, input_device, "input"), _query(sd, output_device, "output")
    have_in = int(in_info["max_input_channels"])
    if input_channel is not None and input_channel > have_in:
        raise LiveError(f"--input-channel {input_channel}: input device {in_info['name']!r} has "
                        f"{have_in} channel(s)")
    channels = (input_channel or min(have_in, MAX_CHANNELS),
                min(int(out_info["max_output_channels"]), MAX_CHANNELS))
    for kind, device, info, n, check in (
            ("input", input_device, in_info, channels[0], sd.check_input_settings),
            ("output", output_device, out_info, channels[1], sd.check_output_settings)):
        try:
            check(device=device, samplerate=rate, channels=n, dtype="float32")
        except sd.PortAudioError as exc:
            raise LiveError(
                f"{kind} device {info['name']!r} refuses {rate:g} Hz, {n} channel(s), float32 ({exc}); "
                f"its default rate is {info['default_samplerate']:g} Hz: pass --rate with a rate it "
                f"accepts, or leave --rate out to use that one") from exc
    return channels


def describe_stream(stream: Any, input_device: int | str | None, output_device: int | str | None
                    ) -> dict[str, Any]:
    sd = import_sounddevice()

    info: dict[str, Any] = {"latency_s": list(stream.latency), "samplerate": stream.samplerate,
                            "blocksize": stream.blocksize, "channels": list(stream.channels)}
    names = []
    for kind, device in (("input", input_device), ("output", output_device)):
        dev = sd.query_devices(device, kind)
        api = sd.query_hostapis(dev["hostapi"])["name"]
        info[f"{kind}_device"] = dev["name"]
        info["host_api"] = api
        names.append(dev["name"])
    resampled = "" if stream.samplerate == SAMPLE_RATE else f" <-> {SAMPLE_RATE / 1000:g} kHz"
    info["summary"] = f"{' -> '.join(names)} ({info['host_api']}, {stream.samplerate / 1000:g} kHz" \
                      f"{resampled}, block {stream.blocksize})"
    return info


def list_devices() -> str:
    """The devices PortAudio sees, marked with the defaults."""
    sd = import_sounddevice()

    devices = sd.query_devices()
    lines = [str(devices)] if len(devices) else ["no audio devices (a JACK or PulseAudio server "
                                                 "that is not running shows none)"]
    for api in sd.query_hostapis():
        lines.append(f"host API {api['name']}: {len(api['devices'])} device(s)")
    for device in devices:
        lines.append(f"  {device['name']}: default rate {device['default_samplerate']:g} Hz, "
                     f"{device['max_input_channels']} in, {device['max_output_channels']} out")
    lines.append("'streamer live' opens the input device's default rate (--rate to choose; audio "
                 f"is resampled to and from {SAMPLE_RATE} Hz); pass --input/--output as an index or "
                 "a name")
    return "\n".join(lines)
