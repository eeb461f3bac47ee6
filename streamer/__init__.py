"""streamer: a real-time STFT speech-enhancement runtime for TinyDenoiser networks on MCUs."""

__version__ = "0.1.0"
