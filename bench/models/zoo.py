"""The model zoo: known variants, and resolving an id or a local folder to a `ModelSet`.

    from bench.models import zoo
    zoo.list_variants()                      # every known variant
    model_set = zoo.resolve("tiny-split-einsum-fp16")   # built on first use
    model_set = zoo.resolve("/path/to/coreml-stable-diffusion-xl-base/compiled")
    zoo.quality_baseline("tiny-original-pal4")          # "tiny-original-fp16"
    zoo.quality_baseline("/path/to/folder")             # from its bench-baseline.json, else None

Generated ids: `<size>-<attention>-<quant>[-chunked]` with size `tiny` / `small`, attention
`original`, `split-einsum`, `split-einsum-v2`, quant `fp32`, `fp16`, `int8`, `pal6`, `pal4`, `mbp`.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from bench.errors import ModelFormatError, ModelNotFoundError
from bench.models import layout
from bench.models.catalog import HUB_QUALITY_BASELINES, HUB_VARIANTS, Variant
from bench.models.paths import models_dir
from bench.models.quantize import QUANTIZATIONS
from bench.models.tiny.build import (
    ATTENTIONS,
    DEFAULT_TINY_IDS,
    QUANT_KEYS,
    SetBuilder,
    build_variants,
    parse_id,
    read_variant_marker,
    variant_is_valid,
)
from bench.models.tiny.spec import SIZES
from bench.models.variant import ModelSet

#: Small-size variants listed by default (any small id resolves; these are the ones suites use).
LISTED_SMALL_IDS: tuple[str, ...] = (
    "small-original-fp32",
    "small-original-fp16",
    "small-split-einsum-fp16",
    "small-split-einsum-v2-fp16",
    "small-split-einsum-mbp-chunked",
)
_HUB = {variant.id: variant for variant in HUB_VARIANTS}


def _generated_variant(variant_id: str) -> Variant:
    gid = parse_id(variant_id)
    assert gid is not None
    spec = SIZES[gid.size]
    if gid.quant == "mbp":  # the mean bits come from the size's recipe, known once it is built
        quantization = _known_mbp_label(gid.size) or "mbp"
    else:
        quantization = QUANTIZATIONS[gid.quant]
    unet_parts = ("unet_chunk1", "unet_chunk2") if gid.chunked else ("unet",)
    parts = ("text_encoder", "text_encoder_2") + unet_parts + ("refiner", "vae_decoder", "vae_encoder", "vocab", "merges")
    return Variant(
        id=gid.id,
        kind="generated",
        description=(
            f"generated {gid.size} SDXL ({spec.resolution}x{spec.resolution}), {gid.attention}, "
            f"{'chunked ' if gid.chunked else ''}UNet {gid.quant}"
        ),
        attention=gid.attention,
        quantization=quantization,
        resolution=spec.resolution,
        parts=parts,
        source="generated locally (bench.models.tiny, seed 0)",
        chunked=gid.chunked,
        size=gid.size,
    )


def _known_mbp_label(size: str) -> str | None:
    """The mbp label if the size's recipe is built (listing never builds anything)."""
    from bench.models.recipe import load_recipe
    from bench.models.tiny.build import unit_is_valid

    folder = SetBuilder(size).unit_dir("recipe")
    if not unit_is_valid(folder):
        return None
    recipe = load_recipe(next(folder.glob("*_palettization_recipe.json")))
    return f"mbp-{recipe.stated_bits:.2f}"


def all_ids() -> list[str]:
    """Every id `get_variant` accepts (all generated combinations and the published sets)."""
    ids = []
    for size in SIZES:
        ids += [f"{size}-{a}-{q}{c}" for a in ATTENTIONS for q in QUANT_KEYS for c in ("", "-chunked")]
    return ids + list(_HUB)


def list_variants() -> list[Variant]:
    """The variants `bench models list` shows: the default tiny set, the listed small ones, the
    published sets."""
    return [_generated_variant(i) for i in DEFAULT_TINY_IDS + LISTED_SMALL_IDS] + list(HUB_VARIANTS)


def get_variant(variant_id: str) -> Variant:
    """The variant `variant_id`; `ModelNotFoundError` naming it and the closest known ids."""
    if parse_id(variant_id) is not None:
        return _generated_variant(variant_id)
    if variant_id in _HUB:
        return _HUB[variant_id]
    close = difflib.get_close_matches(variant_id, all_ids(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ModelNotFoundError(
        f"unknown model variant {variant_id!r}{hint} (`bench models list` shows them all; "
        "a path to a folder in Apple's layout works too)"
    )


# -- presence and local folders --------------------------------------------------------------------

def hub_dir(repo_id: str) -> Path:
    """Where a Hub repo's files are downloaded (the repo's own folder structure is kept)."""
    return models_dir() / "hub" / repo_id.replace("/", "--")


def hub_files(variant: Variant) -> dict[str, Path]:
    """Stage -> local path of a published variant's files (present or not)."""
    files: dict[str, Path] = {}
    for source in variant.hub:
        for part in source.parts:
            files.setdefault(part, hub_dir(source.repo_id) / source.path_in_repo(part))
    return files


def _hub_missing(variant: Variant) -> list[str]:
    optional = {part for source in variant.hub for part in source.optional}
    return [part for part, path in hub_files(variant).items() if part not in optional and not path.exists()]


def is_present(variant_id: str) -> bool:
    """True if the variant's files are on disk and complete (generated: built and valid)."""
    variant = get_variant(variant_id)
    if variant.generated:
        return variant_is_valid(SetBuilder(variant.size).variant_dir(variant.id))
    return not _hub_missing(variant)


def variant_folder(variant_id: str) -> Path:
    """The folder holding a variant (whether or not it is present)."""
    variant = get_variant(variant_id)
    if variant.generated:
        return SetBuilder(variant.size).variant_dir(variant.id)
    source = variant.hub[0]
    return hub_dir(source.repo_id) / source.folder


#: File in a local model folder naming its quality baseline: {"quality_baseline": "<id or folder>"}.
BASELINE_FILE = "bench-baseline.json"


def is_folder_reference(id_or_path: str | os.PathLike) -> bool:
    """True if `id_or_path` names a local folder rather than a zoo id (an existing path, or text
    with a path separator or a leading '.')."""
    text = os.fspath(id_or_path)
    return Path(text).expanduser().exists() or os.sep in text or text.startswith(".")


def quality_baseline(variant_id: str) -> str | None:
    """The variant a quantized variant's UNet PSNR is measured against, or None.

    Compressed generated variants compare with the fp16 variant of the same attention (the model
    they were compressed from, as Apple's recipes are measured), fp16 with fp32; fp32 has none.
    A local folder has none unless it holds `bench-baseline.json` naming one (`folder_baseline`).
    """
    if is_folder_reference(variant_id):
        return folder_baseline(Path(variant_id).expanduser())
    gid = parse_id(variant_id)
    if gid is not None:
        if gid.quant == "fp32":
            return None
        base = "fp32" if gid.quant == "fp16" else "fp16"
        return f"{gid.size}-{gid.attention_key}-{base}"
    get_variant(variant_id)
    return HUB_QUALITY_BASELINES.get(variant_id)


def folder_baseline(folder: Path) -> str | None:
    """The quality baseline a local folder declares in its `bench-baseline.json`, or None.

    Nothing in Apple's layout says which model a folder was compressed from, so a folder states it:
    `{"quality_baseline": "sdxl-base-macos"}` (a zoo id), or a folder: an absolute path, or a
    relative one that stays inside `folder` (a path read from a model folder never leads out of it).
    """
    from bench.limits import MODEL_JSON_MAX_BYTES, check_file_size
    from bench.safe_paths import path_inside

    path = folder / BASELINE_FILE
    if not path.is_file():
        return None
    check_file_size(path.stat().st_size, MODEL_JSON_MAX_BYTES, str(path), ModelFormatError)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["quality_baseline"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise ModelFormatError(
            f"{path}: expected JSON {{\"quality_baseline\": \"<model id or folder>\"}} ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(value, str) or not value.strip():
        raise ModelFormatError(f"{path}: quality_baseline must be a model id or a folder, got {value!r}")
    if not is_folder_reference(value) or Path(value).is_absolute():
        return value
    return str(path_inside(folder, value, f"{path}: quality_baseline"))


def resolve(id_or_path: str | os.PathLike, *, build_tiny: bool = True) -> ModelSet:
    """Resolve a variant id or a local folder to a `ModelSet`.

    Generated variants are built on first use (unless `build_tiny` is False); a published variant
    that is not downloaded raises `ModelNotFoundError` naming `bench models fetch ID`; a folder in
    Apple's layout (packages or compiled, chunked or not) resolves with its labels read from the
    model metadata or inferred from the models.
    """
    text = os.fspath(id_or_path)
    if is_folder_reference(text):
        return resolve_folder(Path(text).expanduser())
    variant = get_variant(text)
    if variant.kind == "recipe":
        raise ModelNotFoundError(
            f"{variant.id} is Apple's recipe file, not a model set; `bench models fetch {variant.id}` downloads it"
        )
    if variant.generated:
        return _resolve_generated(variant, build_tiny)
    missing = _hub_missing(variant)
    if missing:
        raise ModelNotFoundError(
            f"model variant {variant.id} is not downloaded (missing {', '.join(missing)} under "
            f"{hub_dir(variant.hub[0].repo_id)}); run `bench models fetch {variant.id}`"
        )
    files = {part: p for part, p in hub_files(variant).items() if p.exists()}
    for part, p in files.items():
        _check(part, p)
    return ModelSet(
        id=variant.id,
        root=variant_folder(variant.id),
        files=files,
        resolution=variant.resolution,
        attention=variant.attention,
        quantization=variant.quantization,
        labels={"kind": "hub", "source": variant.source},
    )


def _resolve_generated(variant: Variant, build_tiny: bool) -> ModelSet:
    builder = SetBuilder(variant.size)
    folder = builder.variant_dir(variant.id)
    if not variant_is_valid(folder):
        if not build_tiny:
            raise ModelNotFoundError(
                f"generated variant {variant.id} is not built (or incomplete) under {folder}; "
                f"run `bench models build-tiny {variant.id}`"
            )
        build_variants([variant.id], deep=False, jobs=1)  # in-process: callers may hold threads
    marker = read_variant_marker(folder)
    return ModelSet(
        id=variant.id,
        root=folder,
        files={part: folder / rel for part, rel in marker["parts"].items()},
        resolution=int(marker["resolution"]),
        attention=marker["attention"],
        quantization=marker["quantization"],
        labels={"kind": "generated", "size": marker["size"], "seed": str(marker["seed"]),
                "model_version": marker["model_version"]},
    )


def _check(part: str, path: Path) -> None:
    if part in layout.TOKENIZER_FILES:
        layout.check_tokenizer_file(path, part)
    elif part != "recipe":
        layout.check_model_file(path)


def resolve_folder(folder: Path) -> ModelSet:
    """A `ModelSet` for a local folder in Apple's layout; errors name the folder and what is wrong.

    Its files are absolute paths (a worker, or a resume from another directory, finds them), its id
    is the folder as written."""
    from bench.models.metadata import (
        infer_attention,
        infer_quantization,
        infer_resolution,
        read_model_info,
    )

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {folder} does not exist (and {folder.name!r} is not a known variant id)")
    files = layout.scan_folder(folder.absolute())
    missing = layout.missing_parts(files)
    if missing:
        wanted = "; ".join(f"{part}: {layout.expected_names(part)}" for part in missing)
        raise ModelFormatError(f"model folder {folder} is incomplete, missing {wanted}")
    for part, path in files.items():
        _check(part, path)
    unet = read_model_info(files.get("unet") or files["unet_chunk1"])
    hint = str(folder.resolve())
    resolution = infer_resolution(unet)
    if "unet_chunk1" in files and "unet" not in files:
        second = read_model_info(files["unet_chunk2"])
        if "noise_pred" not in second.outputs:
            raise ModelFormatError(f"UNet chunk 2 {files['unet_chunk2']} has no `noise_pred` output (outputs: {sorted(second.outputs)})")
    return ModelSet(
        id=str(folder),
        root=folder.absolute(),
        files=files,
        resolution=resolution,
        attention=infer_attention(unet, hint),
        quantization=infer_quantization(unet, hint),
        unet_batch_one=unet.inputs["sample"][0] == 1,
        labels={"kind": "local", "source": str(folder)},
    )


def folder_size(path: Path) -> int:
    """Bytes of a variant's files (following its symlinks into shared units)."""
    total = 0
    for root, _dirs, names in os.walk(path, followlinks=True):
        for name in names:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass
    return total
