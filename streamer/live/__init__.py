"""`streamer live`: microphone -> network -> speaker in real time, on PortAudio (sounddevice).

Four rooms: `processor` (the audio callback, the worker and their rings: no PortAudio, so
tests drive it by hand), `session` (a PortAudio stream through the processor, with counters,
recordings, log, statistics, report), `devices` (finding, checking, describing and listing
audio devices) and `command` (the options, the run, the summary). See docs/live.md.
"""

from streamer.live.command import DESCRIPTION, add_arguments, run, summary
from streamer.live.devices import check_devices, import_sounddevice, list_devices
from streamer.live.processor import (
    DROPPED,
    ENHANCED,
    LATE,
    PRIMING,
    STALL_TIMEOUT_S,
    LiveCounters,
    LiveError,
    LiveProcessor,
    link_round_trip,
)
from streamer.live.session import LiveSession, audio_stalled

__all__ = ["DROPPED", "ENHANCED", "LATE", "PRIMING", "STALL_TIMEOUT_S", "LiveCounters", "LiveError",
           "LiveProcessor", "LiveSession", "add_arguments", "audio_stalled", "check_devices",
           "import_sounddevice", "link_round_trip", "list_devices", "run", "summary", "DESCRIPTION"]
