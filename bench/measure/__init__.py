"""Measurement: clock spans, memory sampling, environment capture, statistics."""
