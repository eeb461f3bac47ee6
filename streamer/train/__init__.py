"""Training: synthetic speech and noise, the mixture dataset, and the recipe behind `streamer train`."""
