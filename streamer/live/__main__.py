"""`python -m streamer.live ...`: the same as `streamer live ...` (same parser, same errors)."""

import sys

from streamer.cli import main

raise SystemExit(main(["live", *sys.argv[1:]]))
