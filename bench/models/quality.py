"""Quality as data: PSNR of a variant's UNet output against its baseline's, on fixed inputs.

The measure is apple/ml-stable-diffusion's `compute_psnr` (peak = max |reference|, noise = RMS of
the difference): `psnr(test, reference)`. `unet_psnr` runs both UNets (whole or chunked) on the
reference engine in float32 on seeded inputs and caches the value in `bench-quality.json` beside
the variant's files, keyed by baseline, seed and the two UNets' file fingerprints, so the harness
reads it instead of recomputing it for every case. It becomes the `psnr` rows of the results.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.errors import PipelineError
from bench.models.variant import ModelSet

CACHE_FILE = "bench-quality.json"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of `a` against the reference `b` (Apple's definition; identical arrays -> ~200 dB)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    peak = np.abs(b).max()
    rms = np.sqrt(np.mean((a - b) ** 2))
    return float(20 * np.log10((peak + 1e-5) / (rms + 1e-10)))


def unet_inputs(shapes: Mapping[str, tuple[int, ...]], resolution: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed UNet inputs: unit-normal latents, conditioning and pooled embedding, a late-schedule
    timestep, and SDXL micro-conditioning for a `resolution` square image (refiner: aesthetic 6)."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name == "timestep":
            inputs[name] = np.full(shape, 799.0, np.float32)
        elif name == "time_ids":
            row = [resolution, resolution, 0, 0] + ([resolution, resolution] if shape[-1] == 6 else [6.0])
            inputs[name] = np.tile(np.asarray(row, np.float32), (shape[0], 1))
        else:
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
    return inputs


def _load(path: Path):
    from bench.engines import reference

    return reference.load(path, precision="fp32")


def _feed(model, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {spec.name: np.asarray(values[spec.name]).astype(spec.dtype) for spec in model.input_specs}


def run_unet(model_set: ModelSet, seed: int = 0) -> np.ndarray:
    """`noise_pred` of the set's UNet (or chunk 1 then chunk 2) on `unet_inputs(seed)`."""
    if model_set.has("unet"):
        model = _load(model_set.files["unet"])
        try:
            inputs = unet_inputs({s.name: tuple(s.shape) for s in model.input_specs}, model_set.resolution, seed)
            return model.predict(_feed(model, inputs))["noise_pred"]
        finally:
            model.close()
    if not (model_set.has("unet_chunk1") and model_set.has("unet_chunk2")):
        raise PipelineError(f"model set {model_set.id} has no UNet (neither `unet` nor both chunks)")
    first, second = _load(model_set.files["unet_chunk1"]), _load(model_set.files["unet_chunk2"])
    try:
        inputs = unet_inputs({s.name: tuple(s.shape) for s in first.input_specs}, model_set.resolution, seed)
        values = dict(inputs)
        values.update(first.predict(_feed(first, inputs)))
        missing = [s.name for s in second.input_specs if s.name not in values]
        if missing:
            raise PipelineError(f"UNet chunk 2 of {model_set.id} needs {missing}, which chunk 1 does not output")
        return second.predict(_feed(second, values))["noise_pred"]
    finally:
        first.close()
        second.close()


def _fingerprint(model_set: ModelSet) -> str:
    digest = hashlib.sha256()
    for part in ("unet", "unet_chunk1", "unet_chunk2"):
        if model_set.has(part):
            root = Path(os.path.realpath(model_set.files[part]))
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                stat = path.stat()
                digest.update(f"{path.relative_to(root)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def unet_psnr(model_set: ModelSet, baseline: ModelSet, *, seed: int = 0) -> float:
    """PSNR (dB) of `model_set`'s UNet output against `baseline`'s on the same fixed inputs.

    Cached in `<model_set.root>/bench-quality.json`; a changed UNet file invalidates the entry.
    """
    if model_set.resolution != baseline.resolution:
        raise PipelineError(
            f"cannot compare {model_set.id} ({model_set.resolution}px) with {baseline.id} ({baseline.resolution}px)"
        )
    cache_path = Path(model_set.root) / CACHE_FILE
    key = f"{baseline.id}|seed={seed}|engine=reference-fp32"
    stamp = f"{_fingerprint(model_set)}:{_fingerprint(baseline)}"
    cache = _read_cache(cache_path)
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("fingerprint") == stamp:
        return float(entry["psnr"])
    value = psnr(run_unet(model_set, seed), _baseline_output(baseline, seed, _fingerprint(baseline)))
    cache[key] = {"psnr": value, "fingerprint": stamp, "baseline": baseline.id, "seed": seed}
    _write_cache(cache_path, cache)
    return value


_BASELINE_OUTPUTS: dict[tuple[str, str, int], np.ndarray] = {}


def _baseline_output(baseline: ModelSet, seed: int, fingerprint: str) -> np.ndarray:
    """A baseline's noise prediction, kept in memory: several variants share one baseline."""
    key = (str(baseline.root), fingerprint, seed)
    if key not in _BASELINE_OUTPUTS:
        if len(_BASELINE_OUTPUTS) >= 4:
            _BASELINE_OUTPUTS.pop(next(iter(_BASELINE_OUTPUTS)))
        _BASELINE_OUTPUTS[key] = run_unet(baseline, seed)
    return _BASELINE_OUTPUTS[key]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:  # a read-only model folder: the value is still returned, just not cached
        tmp.unlink(missing_ok=True)


def variant_psnr(variant_id: str, *, seed: int = 0) -> float | None:
    """PSNR of a zoo variant against its `quality_baseline`, or None when it has no baseline."""
    from bench.models import zoo

    baseline_id = zoo.quality_baseline(variant_id)
    if baseline_id is None:
        return None
    return unet_psnr(zoo.resolve(variant_id), zoo.resolve(baseline_id), seed=seed)
