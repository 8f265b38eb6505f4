"""The SDXL pipeline in numpy, driving models through the engine protocol."""
