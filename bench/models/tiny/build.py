"""Build generated model sets into Apple's folder layout, once, atomically, verifiably.

On disk (under `models_dir()`, or any `out_dir`):

    <size>/units/<unit>/...            one build product: a package (or two chunks), or the
                                       tokenizer files, or the mixed-bit recipe, plus
                                       bench-unit.json (sha256 of every file, written last)
    <size>/<variant-id>/packages/      Apple's layout: Stable_Diffusion_version_bench_<size>-sdxl_
                                       <part>.mlpackage, vocab.json, merges.txt, as relative
                                       symlinks into units/ (variants share the non-UNet parts)
    <size>/<variant-id>/bench-model.json   the variant's labels and part files, written last

Every unit and variant folder is built in a temporary folder and renamed into place, and its marker
is the last file written, so an interrupted build leaves no folder that passes `is_valid`.
A seed other than 0 builds into `<size>-seed<N>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import ModelNotFoundError
from bench.models import layout
from bench.models.paths import models_dir
from bench.models.tiny.spec import SIZES, SizeSpec

#: Bumped whenever the generator's output changes; units built by another version are rebuilt.
GENERATOR_VERSION = "4"  # 4: markers and metadata name model files by part ("parts", "bench.part")
UNIT_MARKER = "bench-unit.json"
VARIANT_MARKER = "bench-model.json"

ATTENTIONS: dict[str, str] = {"original": "ORIGINAL", "split-einsum": "SPLIT_EINSUM", "split-einsum-v2": "SPLIT_EINSUM_V2"}
QUANT_KEYS: tuple[str, ...] = ("fp32", "fp16", "int8", "pal6", "pal4", "mbp")
_ID = re.compile(r"^(tiny|small)-(original|split-einsum-v2|split-einsum)-(fp32|fp16|int8|pal6|pal4|mbp)(-chunked)?$")
#: Weights smaller than this (elements) stay uncompressed, per size (coremltools' default is 2048).
WEIGHT_THRESHOLD = {"tiny": 256, "small": 2048}


@dataclass(frozen=True)
class GeneratedId:
    """A parsed generated-variant id: `<size>-<attention>-<quant>[-chunked]`."""

    size: str
    attention_key: str
    quant: str
    chunked: bool

    @property
    def id(self) -> str:
        return f"{self.size}-{self.attention_key}-{self.quant}" + ("-chunked" if self.chunked else "")

    @property
    def attention(self) -> str:
        return ATTENTIONS[self.attention_key]

    @property
    def precision(self) -> str:
        """Precision of the non-UNet parts: fp32 sets are fp32 throughout, the rest fp16."""
        return "fp32" if self.quant == "fp32" else "fp16"


def parse_id(variant_id: str) -> GeneratedId | None:
    match = _ID.match(variant_id)
    if not match:
        return None
    size, attention, quant, chunked = match.groups()
    return GeneratedId(size, attention, quant, bool(chunked))


def generated_ids(size: str, *, chunked: bool = True) -> list[str]:
    """Every attention x quantization id of `size`, plus the chunked split-einsum fp16 / mbp ones."""
    ids = [f"{size}-{a}-{q}" for a in ATTENTIONS for q in QUANT_KEYS]
    if chunked:
        ids += [f"{size}-split-einsum-fp16-chunked", f"{size}-split-einsum-mbp-chunked"]
    return ids


#: What `bench models build-tiny` builds by default.
DEFAULT_TINY_IDS: tuple[str, ...] = tuple(generated_ids("tiny"))


def model_version(size: str) -> str:
    """The `--model-version` the generated packages are named after."""
    return f"bench/{size}-sdxl"


def size_root(size: str, seed: int = 0, out_dir: Path | None = None) -> Path:
    base = Path(out_dir) if out_dir is not None else models_dir()
    return base / (size if seed == 0 else f"{size}-seed{seed}")


# -- integrity -------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_table(folder: Path) -> dict[str, dict[str, object]]:
    table = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != UNIT_MARKER:
            table[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    return table


def unit_is_valid(folder: Path, *, deep: bool = False) -> bool:
    """True if the unit folder is complete: its marker exists, matches this generator, and every
    listed file is there with its size (and, when `deep`, its hash)."""
    marker = Path(folder) / UNIT_MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("generator") != GENERATOR_VERSION:
        return False
    for rel, meta in info.get("files", {}).items():
        path = Path(folder) / rel
        if not path.is_file() or path.stat().st_size != meta["bytes"]:
            return False
        if deep and _sha256(path) != meta["sha256"]:
            return False
    return bool(info.get("files"))


def variant_is_valid(folder: Path, *, deep: bool = False) -> bool:
    """True if the variant folder's marker exists and every part and unit it names is intact."""
    try:
        info = json.loads((Path(folder) / VARIANT_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if info.get("generator") != GENERATOR_VERSION:
        return False
    if not all((Path(folder) / rel).exists() for rel in info.get("parts", {}).values()):
        return False
    units = Path(folder).parent / "units"
    return all(unit_is_valid(units / name, deep=deep) for name in info.get("units", []))


def read_variant_marker(folder: Path) -> dict:
    return json.loads((Path(folder) / VARIANT_MARKER).read_text())


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temporary folder into place (replacing an invalid leftover)."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    if final.exists() or final.is_symlink():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same folder first
        if not final.exists():
            raise


# -- units -----------------------------------------------------------------------------------------

class SetBuilder:
    """Builds the units and variant folders of one generated size and seed."""

    def __init__(self, size: str = "tiny", seed: int = 0, out_dir: Path | None = None) -> None:
        if size not in SIZES:
            raise ModelNotFoundError(f"unknown generated size {size!r}; expected one of {', '.join(SIZES)}")
        self.size = size
        self.seed = int(seed)
        self.spec: SizeSpec = SIZES[size]
        self.root = size_root(size, self.seed, out_dir)
        self.version = model_version(size)

    # unit names and files
    def part_units(self, gid: GeneratedId) -> dict[str, tuple[str, str]]:
        """part -> (unit name, file name inside the unit) of a variant."""
        p = gid.precision
        pkg = lambda part: layout.package_name(self.version, part)
        unet_unit = f"unet-{gid.attention_key}-{gid.quant}" + ("-chunked" if gid.chunked else "")
        parts = {
            "text_encoder": (f"text_encoder-{p}", pkg("text_encoder")),
            "text_encoder_2": (f"text_encoder_2-{p}", pkg("text_encoder_2")),
            "refiner": (f"refiner-{gid.attention_key}-{p}", pkg("refiner")),
            "vae_decoder": (f"vae_decoder-{p}", pkg("vae_decoder")),
            "vae_encoder": ("vae_encoder-fp32", pkg("vae_encoder")),
            "vocab": ("tokenizer", "vocab.json"),
            "merges": ("tokenizer", "merges.txt"),
        }
        if gid.chunked:
            parts["unet_chunk1"] = (unet_unit, pkg("unet_chunk1"))
            parts["unet_chunk2"] = (unet_unit, pkg("unet_chunk2"))
        else:
            parts["unet"] = (unet_unit, pkg("unet"))
        return parts

    def unit_dir(self, name: str) -> Path:
        return self.root / "units" / name

    def ensure_unit(self, name: str, *, deep: bool = False) -> tuple[Path, bool]:
        """Build unit `name` unless a valid one exists; returns (folder, built_now)."""
        final = self.unit_dir(name)
        if unit_is_valid(final, deep=deep):
            return final, False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=final.parent))
        try:
            self._make_unit(name, tmp)
            marker = {"unit": name, "generator": GENERATOR_VERSION, "size": self.size, "seed": self.seed,
                      "files": _file_table(tmp)}
            (tmp / UNIT_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
            _replace_dir(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final, True

    def _make_unit(self, name: str, folder: Path) -> None:
        from bench.models.tiny import parts

        if name == "tokenizer":
            parts.write_tokenizer(self, folder)
        elif name == "recipe":
            parts.write_recipe(self, folder)
        elif name.startswith(("text_encoder_2-", "text_encoder-")):
            part, precision = name.rsplit("-", 1)
            parts.write_text_encoder(self, folder, part, precision)
        elif name.startswith(("vae_decoder-", "vae_encoder-")):
            part, precision = name.rsplit("-", 1)
            parts.write_vae(self, folder, part, precision)
        elif name.startswith("refiner-"):
            attention_key, precision = name[len("refiner-"):].rsplit("-", 1)
            parts.write_unet(self, folder, "refiner", ATTENTIONS[attention_key], precision)
        elif name.startswith("unet-"):
            rest = name[len("unet-"):]
            chunked = rest.endswith("-chunked")
            rest = rest[: -len("-chunked")] if chunked else rest
            attention_key, quant = rest.rsplit("-", 1)
            parts.write_unet(self, folder, "unet", ATTENTIONS[attention_key], quant, chunked=chunked)
        else:
            raise ValueError(f"unknown unit {name!r}")

    # labels
    def mbp_label(self) -> str:
        from bench.models.recipe import load_recipe

        folder, _ = self.ensure_unit("recipe")
        recipe = load_recipe(next(folder.glob("*_palettization_recipe.json")))
        return f"mbp-{recipe.stated_bits:.2f}"

    def quantization_label(self, quant: str) -> str:
        from bench.models.quantize import QUANTIZATIONS

        return self.mbp_label() if quant == "mbp" else QUANTIZATIONS[quant]

    # variants
    def variant_dir(self, variant_id: str) -> Path:
        return self.root / variant_id

    def units_of(self, gid: GeneratedId) -> list[str]:
        names = sorted({unit for unit, _ in self.part_units(gid).values()})
        return (["recipe"] if gid.quant == "mbp" else []) + names

    def ensure_variant(self, gid: GeneratedId, *, deep: bool = False) -> Path:
        """Assemble the variant folder (its units must be built) unless a valid one exists."""
        final = self.variant_dir(gid.id)
        if variant_is_valid(final, deep=deep):
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{gid.id}-", dir=self.root))
        try:
            packages = tmp / "packages"
            packages.mkdir()
            parts = {}
            for part, (unit, filename) in self.part_units(gid).items():
                target = self.unit_dir(unit) / filename
                if not target.exists():
                    raise ModelNotFoundError(f"unit {unit} of {gid.id} is missing {filename}")
                link = packages / filename
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(os.path.relpath(target, packages))
                parts[part] = f"packages/{filename}"
            marker = {
                "id": gid.id,
                "generator": GENERATOR_VERSION,
                "size": self.size,
                "seed": self.seed,
                "attention": gid.attention,
                "quantization": self.quantization_label(gid.quant),
                "resolution": self.spec.resolution,
                "model_version": self.version,
                "parts": parts,
                "units": self.units_of(gid),
            }
            (tmp / VARIANT_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
            _replace_dir(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final


ProgressFn = Callable[[str, str, float], None]


def _build_unit_job(size: str, seed: int, out_dir: str | None, name: str, deep: bool) -> tuple[str, bool, float]:
    start = time.perf_counter()
    _, built = SetBuilder(size, seed, Path(out_dir) if out_dir else None).ensure_unit(name, deep=deep)
    return name, built, time.perf_counter() - start


def build_variants(variant_ids: Iterable[str], *, seed: int = 0, out_dir: Path | None = None, jobs: int | None = None,
                   deep: bool = True, progress: ProgressFn | None = None) -> dict[str, Path]:
    """Build (or verify) the generated variants `variant_ids`; return id -> variant folder.

    Units shared by several variants are built once; `jobs` worker processes build units in
    parallel (default: one per CPU, at most 2 per build since units are small).
    """
    gids = []
    for variant_id in variant_ids:
        gid = parse_id(variant_id)
        if gid is None:
            raise ModelNotFoundError(f"{variant_id!r} is not a generated variant id (<size>-<attention>-<quant>[-chunked])")
        gids.append(gid)
    by_size: dict[str, list[GeneratedId]] = {}
    for gid in gids:
        by_size.setdefault(gid.size, []).append(gid)
    report = progress or (lambda event, name, seconds: None)
    result: dict[str, Path] = {}
    for size, size_gids in by_size.items():
        builder = SetBuilder(size, seed, out_dir)
        units: list[str] = []
        for gid in size_gids:
            units += [u for u in builder.units_of(gid) if u not in units]
        # the recipe decides the mbp label and the mbp units' bit widths: build it first
        ordered = [u for u in units if u == "recipe"] + [u for u in units if u != "recipe"]
        _run_units(builder, ordered, out_dir, jobs, deep, report)
        for gid in size_gids:
            start = time.perf_counter()
            result[gid.id] = builder.ensure_variant(gid, deep=False)
            report("variant", gid.id, time.perf_counter() - start)
    return result


def _run_units(builder: SetBuilder, units: list[str], out_dir: Path | None, jobs: int | None, deep: bool,
               report: ProgressFn) -> None:
    jobs = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    pending = []
    for name in units:
        if unit_is_valid(builder.unit_dir(name), deep=deep):
            report("valid", name, 0.0)
        else:
            pending.append(name)
    # the tokenizer (text encoders size their embedding by it) and the recipe (mbp bit widths)
    # come first, so parallel workers never build them twice
    first = [n for n in pending if n in ("tokenizer", "recipe")]
    rest = [n for n in pending if n not in first]
    for name in first:
        _, built, seconds = _build_unit_job(builder.size, builder.seed, str(out_dir) if out_dir else None, name, deep)
        report("built" if built else "valid", name, seconds)
    if jobs <= 1 or len(rest) <= 1:
        for name in rest:
            _, built, seconds = _build_unit_job(builder.size, builder.seed, str(out_dir) if out_dir else None, name, deep)
            report("built" if built else "valid", name, seconds)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork shares the parent's imported coremltools (seconds of import per worker otherwise)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and os.uname().sysname == "Linux" else "spawn"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method)) as pool:
        futures = [
            pool.submit(_build_unit_job, builder.size, builder.seed, str(out_dir) if out_dir else None, name, deep)
            for name in _largest_first(rest)
        ]
        for future in as_completed(futures):
            name, built, seconds = future.result()
            report("built" if built else "valid", name, seconds)


def _largest_first(units: list[str]) -> list[str]:
    """Schedule UNet units (the long ones) first so the two workers finish together."""
    weight = lambda u: 0 if u.startswith("unet-") else 1 if u.startswith("refiner-") else 2
    return sorted(units, key=weight)
