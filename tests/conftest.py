"""Test-wide set-up.

This file's presence puts tests/ on sys.path (pytest's default "prepend" import mode), so test
modules in any sub-folder import the shared helpers here: `torch_oracles` (torch modules converted
with coremltools, the reference engine's independent oracle) and `fake_executor`.
"""
