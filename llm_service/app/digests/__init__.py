"""Digests: a day's or a week's records summarised, written by a scheduler or on request."""
