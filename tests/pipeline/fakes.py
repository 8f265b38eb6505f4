"""A fake engine whose models are small deterministic numpy functions with SDXL's I/O names.

Model "files" are JSON files describing the fake (kind and sizes), so a `ModelSet` points at real
paths. Every model checks its inputs strictly (names, shapes, dtypes) and the engine logs every
compile / load / predict / close, so tests can check wiring, batching and load order.
The functions are chosen so that the result depends on every input the pipeline must get right:
each batch row's conditioning (so guidance changes the image), the timestep, time_ids, the
latents; a chunked UNet computes exactly what the whole UNet computes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.engines.base import TensorSpec
from bench.errors import InputError
from bench.models.variant import ModelSet
from tests.pipeline.clip_vocab import write_clip_vocab

LENGTH = 77
VOCAB = 1000


def _spec(name: str, shape: tuple[int, ...], dtype: Any) -> TensorSpec:
    return TensorSpec(name, tuple(shape), np.dtype(dtype))


def specs_for(desc: Mapping[str, Any]) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output specs of a fake model description."""
    kind = desc["kind"]
    if kind == "text_encoder":
        return (
            (_spec("input_ids", (1, LENGTH), np.int32),),
            (_spec("hidden_embeds", (1, LENGTH, desc["width"]), np.float32),
             _spec("pooled_outputs", (1, desc["pooled"]), np.float32)),
        )
    if kind in ("unet", "unet_chunk1", "unet_chunk2"):
        b, c, h, w = desc["batch"], 4, desc["latent"], desc["latent"]
        unet_inputs = (
            _spec("sample", (b, c, h, w), np.float16),
            _spec("timestep", (b,), np.float16),
            _spec("encoder_hidden_states", (b, desc["hidden"], 1, LENGTH), np.float16),
            _spec("time_ids", (b, desc["time_ids"]), np.float16),
            _spec("text_embeds", (b, desc["text_embeds"]), np.float16),
        )
        noise = (_spec("noise_pred", (b, c, h, w), np.float16),)
        intermediate = (_spec("skip", (b, c, h, w), np.float16), _spec("cond_term", (b, c, h, w), np.float16))
        if kind == "unet":
            return unet_inputs, noise
        if kind == "unet_chunk1":
            return unet_inputs, intermediate
        renamed = desc.get("rename", {})  # a mismatched chunk pair for error tests
        intermediate = tuple(_spec(renamed.get(s.name, s.name), s.shape, s.dtype) for s in intermediate)
        return intermediate + (unet_inputs[1],), noise  # chunk2 also takes `timestep` from the UNet inputs
    if kind == "vae_decoder":
        h = desc["latent"]
        return (_spec("z", (1, 4, h, h), np.float32),), (_spec("image", (1, 3, 8 * h, 8 * h), np.float32),)
    if kind == "vae_encoder":
        h = desc["latent"]
        return (_spec("x", (1, 3, 8 * h, 8 * h), np.float32),), (_spec("latent", (1, 8, h, h), np.float32),)
    raise ValueError(kind)


def _unet_terms(inputs: Mapping[str, np.ndarray], desc: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(skip, cond_term) of the fake UNet; noise_pred = skip + cond_term."""
    sample = inputs["sample"].astype(np.float32)
    b = sample.shape[0]
    ehs = inputs["encoder_hidden_states"].astype(np.float32).reshape(b, -1)
    t = inputs["timestep"].astype(np.float32).reshape(b, 1)
    time_ids = inputs["time_ids"].astype(np.float32).reshape(b, -1)
    embeds = inputs["text_embeds"].astype(np.float32).reshape(b, -1)
    weights = np.random.default_rng(desc.get("seed", 0)).standard_normal((ehs.shape[1], 4)).astype(np.float32)
    # Row by row, so batch-one and batch-two calls give bit-identical rows.
    per_row = np.stack([row @ weights for row in ehs]) / np.sqrt(ehs.shape[1]) + 0.3 * np.tanh(embeds.mean(axis=1, keepdims=True))
    per_row = per_row + 0.001 * t + 0.0005 * time_ids.sum(axis=1, keepdims=True)
    grid = np.linspace(-1, 1, sample.shape[-1], dtype=np.float32)
    cond_term = per_row[:, :, None, None] * (1 + 0.5 * grid[None, None, :, None] * grid[None, None, None, :])
    skip = 0.2 * sample
    return skip, cond_term


def _run(desc: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    kind = desc["kind"]
    if kind == "text_encoder":
        ids = inputs["input_ids"].astype(np.int64).reshape(-1)
        rng = np.random.default_rng(desc["seed"])
        table = rng.standard_normal((VOCAB, desc["width"])).astype(np.float32)
        positions = rng.standard_normal((LENGTH, desc["width"])).astype(np.float32) * 0.1
        hidden = table[ids % VOCAB] + positions
        hidden = np.cumsum(hidden, axis=0) / np.arange(1, LENGTH + 1)[:, None]  # causal mixing
        end = int(np.argmax(ids))  # CLIP pools at the end token (the largest id)
        pooled = np.resize(hidden[end], desc["pooled"]) * 0.5
        return {"hidden_embeds": hidden[None], "pooled_outputs": pooled[None].astype(np.float32)}
    if kind == "unet":
        # Rounded as the chunks round their intermediates, so chunked and whole agree bit for bit.
        skip, cond_term = (x.astype(np.float16).astype(np.float32) for x in _unet_terms(inputs, desc))
        return {"noise_pred": (skip + cond_term).astype(np.float16)}
    if kind == "unet_chunk1":
        skip, cond_term = _unet_terms(inputs, desc)
        return {"skip": skip.astype(np.float16), "cond_term": cond_term.astype(np.float16)}
    if kind == "unet_chunk2":
        noise = inputs["skip"].astype(np.float32) + inputs["cond_term"].astype(np.float32)
        noise = noise + 0.0 * inputs["timestep"].astype(np.float32).reshape(-1, 1, 1, 1)
        return {"noise_pred": noise.astype(np.float16)}
    if kind == "vae_decoder":
        z = inputs["z"][0]
        mix = np.array([[1.0, 0.5, -0.3, 0.2], [-0.4, 1.0, 0.3, 0.1], [0.2, -0.6, 1.0, 0.4]], np.float32)
        rgb = np.tanh(0.05 * np.einsum("oc,chw->ohw", mix, z))
        return {"image": np.repeat(np.repeat(rgb, 8, axis=1), 8, axis=2)[None].astype(np.float32)}
    if kind == "vae_encoder":
        x = inputs["x"][0]
        h = x.shape[-1] // 8
        pooled = x.reshape(3, h, 8, h, 8).mean(axis=(2, 4))
        mean = np.concatenate([pooled, pooled[:1] * 0.5], axis=0) * 3.0
        logvar = np.full_like(mean, -6.0)
        return {"latent": np.concatenate([mean, logvar])[None].astype(np.float32)}
    raise ValueError(kind)


@dataclass
class FakeModel:
    path: Path
    desc: dict[str, Any]
    log: list[tuple[str, str]]
    input_specs: tuple[TensorSpec, ...] = ()
    output_specs: tuple[TensorSpec, ...] = ()
    calls: list[dict[str, np.ndarray]] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self.input_specs, self.output_specs = specs_for(self.desc)

    @property
    def part(self) -> str:
        return self.path.stem

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.closed:
            raise InputError(f"{self.part}: predict after close")
        expected = {s.name: s for s in self.input_specs}
        if set(inputs) != set(expected):
            raise InputError(f"{self.part}: inputs {sorted(inputs)} != {sorted(expected)}")
        for name, spec in expected.items():
            value = inputs[name]
            if tuple(value.shape) != spec.shape or value.dtype != spec.dtype:
                raise InputError(f"{self.part}: {name} is {value.dtype}{value.shape}, expected {spec.describe()}")
        self.log.append(("predict", self.part))
        self.calls.append({k: np.array(v) for k, v in inputs.items()})
        return _run(self.desc, inputs)

    def close(self) -> None:
        self.closed = True
        self.log.append(("close", self.part))


class FakeEngine:
    """Engine protocol over fake model files; logs what the pipeline asks of it."""

    name = "fake"
    compute_units = ("FAKE", "FAKE_GPU")

    def __init__(self, separate_compile: bool = False) -> None:
        self.separate_compile = separate_compile
        self.log: list[tuple[str, str]] = []
        self.models: dict[str, FakeModel] = {}
        self.load_compute_units: dict[str, str] = {}

    def is_available(self) -> bool:
        return True

    def describe(self, path: str | Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        return specs_for(json.loads(Path(path).read_text()))

    def compile(self, path: str | Path, compute_unit: str) -> Path:
        self.log.append(("compile", Path(path).stem))
        return Path(path)

    def load(self, path: str | Path, compute_unit: str, **options: object) -> FakeModel:
        path = Path(path)
        assert compute_unit in self.compute_units, compute_unit
        self.log.append(("load", path.stem))
        self.load_compute_units[path.stem] = compute_unit
        model = FakeModel(path, json.loads(path.read_text()), self.log)
        self.models[path.stem] = model
        return model

    def events(self, kind: str | None = None) -> list[tuple[str, str]]:
        return [e for e in self.log if kind is None or e[0] == kind]


_VOCAB_CACHE: dict[str, bytes] = {}


def write_vocab(folder: Path) -> tuple[Path, Path]:
    """One CLIP vocabulary per test session (the BPE trainer breaks ties differently run to run)."""
    if not _VOCAB_CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            vocab, merges = write_clip_vocab(Path(scratch))
            _VOCAB_CACHE.update(vocab=vocab.read_bytes(), merges=merges.read_bytes())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_bytes(_VOCAB_CACHE["vocab"])
    (folder / "merges.txt").write_bytes(_VOCAB_CACHE["merges"])
    return folder / "vocab.json", folder / "merges.txt"


def write_model(folder: Path, part: str, **desc: Any) -> Path:
    path = folder / f"{part}.json"
    path.write_text(json.dumps(desc))
    return path


def make_model_set(
    folder: Path,
    *,
    latent: int = 8,
    batch: int = 2,
    chunked: bool = False,
    refiner: bool = False,
    refiner_chunked: bool = False,
    vae_encoder: bool = False,
    widths: tuple[int, int] = (8, 12),
    pooled: int = 12,
    refiner_hidden: int | None = None,
    refiner_time_ids: int = 5,
    unet_time_ids: int = 6,
    decoder_latent: int | None = None,
    encoder_latent: int | None = None,
    resolution: int | None = None,
    unet_batch_one: bool | None = None,
    omit: tuple[str, ...] = (),
    chunk2_rename: dict[str, str] | None = None,
) -> ModelSet:
    """Write fake model files (and a CLIP vocabulary) and return their `ModelSet`."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["vocab"], files["merges"] = write_vocab(folder / "tokenizer")
    files["text_encoder"] = write_model(folder, "text_encoder", kind="text_encoder", width=widths[0], pooled=widths[0], seed=1)
    files["text_encoder_2"] = write_model(folder, "text_encoder_2", kind="text_encoder", width=widths[1], pooled=pooled, seed=2)
    unet = {"batch": batch, "latent": latent, "hidden": sum(widths), "time_ids": unet_time_ids, "text_embeds": pooled, "seed": 3}
    if chunked:
        files["unet_chunk1"] = write_model(folder, "unet_chunk1", kind="unet_chunk1", **unet)
        files["unet_chunk2"] = write_model(folder, "unet_chunk2", kind="unet_chunk2", rename=chunk2_rename or {}, **unet)
    else:
        files["unet"] = write_model(folder, "unet", kind="unet", **unet)
    if refiner:
        ref = dict(unet, hidden=refiner_hidden or widths[1], time_ids=refiner_time_ids, seed=4)
        if refiner_chunked:
            files["refiner_chunk1"] = write_model(folder, "refiner_chunk1", kind="unet_chunk1", **ref)
            files["refiner_chunk2"] = write_model(folder, "refiner_chunk2", kind="unet_chunk2", **ref)
        else:
            files["refiner"] = write_model(folder, "refiner", kind="unet", **ref)
    files["vae_decoder"] = write_model(folder, "vae_decoder", kind="vae_decoder", latent=decoder_latent or latent)
    if vae_encoder:
        files["vae_encoder"] = write_model(folder, "vae_encoder", kind="vae_encoder", latent=encoder_latent or latent)
    for part in omit:
        files.pop(part)
    return ModelSet(
        id=f"fake-{folder.name}",
        root=folder,
        files=files,
        resolution=resolution or 8 * latent,
        attention="SPLIT_EINSUM",
        quantization="float16",
        unet_batch_one=(batch == 1) if unet_batch_one is None else unet_batch_one,
    )
