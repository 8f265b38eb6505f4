"""Apple's folder layout for SDXL Core ML model sets: file names, finding parts, checking files.

Two naming schemes exist (apple/ml-stable-diffusion's `torch2coreml.py` and its Swift resources):
- packages: `Stable_Diffusion_version_<model version with / as _>_<part>.mlpackage`, part one of
  text_encoder, text_encoder_2, unet (or unet_chunk1 / unet_chunk2), refiner, vae_decoder, vae_encoder;
- compiled: `TextEncoder.mlmodelc`, `TextEncoder2.mlmodelc`, `Unet.mlmodelc` (or `UnetChunk1` /
  `UnetChunk2`), `UnetRefiner.mlmodelc`, `VAEDecoder.mlmodelc`, `VAEEncoder.mlmodelc`, next to
  `vocab.json` and `merges.txt`.
A folder may hold either directly, or `packages/` and / or `compiled/` subfolders (Apple's Hub repos);
Apple's mixed-bit repo also ships a lone UNet as `Unet.mlpackage`.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import ModelFormatError
from bench.limits import MODEL_JSON_MAX_BYTES, check_file_size
from bench.safe_paths import path_inside

#: part -> the suffix of its package file name.
PACKAGE_PARTS: dict[str, str] = {
    "text_encoder": "text_encoder",
    "text_encoder_2": "text_encoder_2",
    "unet": "unet",
    "unet_chunk1": "unet_chunk1",
    "unet_chunk2": "unet_chunk2",
    "refiner": "refiner",
    "refiner_chunk1": "refiner_chunk1",
    "refiner_chunk2": "refiner_chunk2",
    "vae_decoder": "vae_decoder",
    "vae_encoder": "vae_encoder",
}
#: part -> compiled model name (Swift pipeline resources).
COMPILED_NAMES: dict[str, str] = {
    "text_encoder": "TextEncoder",
    "text_encoder_2": "TextEncoder2",
    "unet": "Unet",
    "unet_chunk1": "UnetChunk1",
    "unet_chunk2": "UnetChunk2",
    "refiner": "UnetRefiner",
    "refiner_chunk1": "UnetRefinerChunk1",
    "refiner_chunk2": "UnetRefinerChunk2",
    "vae_decoder": "VAEDecoder",
    "vae_encoder": "VAEEncoder",
}
TOKENIZER_FILES: dict[str, str] = {"vocab": "vocab.json", "merges": "merges.txt"}
#: Parts a set needs to generate an image (the UNet may be chunked).
REQUIRED_PARTS: tuple[str, ...] = ("text_encoder", "text_encoder_2", "vae_decoder", "vocab", "merges")


def package_name(model_version: str, part: str) -> str:
    """File name of `part` as apple/ml-stable-diffusion names a package."""
    return f"Stable_Diffusion_version_{model_version.replace('/', '_')}_{PACKAGE_PARTS[part]}.mlpackage"


def compiled_name(part: str) -> str:
    return f"{COMPILED_NAMES[part]}.mlmodelc"


def model_folders(root: Path) -> list[Path]:
    """Folders under `root` that may hold models, most specific first."""
    root = Path(root)
    candidates = [root]
    for name in ("compiled", "packages"):
        if (root / name).is_dir():
            candidates.append(root / name)
    candidates += sorted(p for p in root.glob("*_compiled") if p.is_dir())
    candidates += sorted(p for p in root.glob("*_packages") if p.is_dir())
    return candidates


def _find_part(folder: Path, part: str) -> Path | None:
    compiled = folder / compiled_name(part)
    if compiled.is_dir():
        return compiled
    lone = folder / f"{COMPILED_NAMES[part]}.mlpackage"
    if lone.is_dir():
        return lone
    matches = sorted(folder.glob(f"*_{PACKAGE_PARTS[part]}.mlpackage"))
    return matches[0] if matches else None


def scan_folder(root: Path) -> dict[str, Path]:
    """Stage -> path of every model and tokenizer file found for the set rooted at `root`.

    The first folder of `model_folders(root)` that has any model wins (so `compiled/` is used when a
    repo has both); tokenizer files are looked for there, in `root`, its `compiled/` and its parent.
    """
    root = Path(root)
    files: dict[str, Path] = {}
    chosen: Path | None = None
    for folder in model_folders(root):
        found = {part: path for part in PACKAGE_PARTS if (path := _find_part(folder, part)) is not None}
        if found:
            files, chosen = found, folder
            break
    search = [p for p in (chosen, root, root / "compiled", root.parent) if p is not None]
    for part, name in TOKENIZER_FILES.items():
        for folder in search:
            if (folder / name).is_file():
                files[part] = folder / name
                break
    return files


def missing_parts(files: dict[str, Path]) -> list[str]:
    """Required parts absent from `files` (a UNet, whole or as both chunks, is required)."""
    missing = [part for part in REQUIRED_PARTS if part not in files]
    if "unet" not in files:
        chunks = [c for c in ("unet_chunk1", "unet_chunk2") if c not in files]
        if len(chunks) == 2:
            missing.insert(2, "unet")
        else:
            missing.extend(chunks)
    for prefix in ("refiner",):
        present = [c for c in (f"{prefix}_chunk1", f"{prefix}_chunk2") if c in files]
        if len(present) == 1:
            missing.append(f"{prefix}_chunk2" if present[0].endswith("1") else f"{prefix}_chunk1")
    return missing


def expected_names(part: str) -> str:
    """Human-readable file names that would satisfy `part`."""
    if part in TOKENIZER_FILES:
        return TOKENIZER_FILES[part]
    return f"{compiled_name(part)} or *_{PACKAGE_PARTS[part]}.mlpackage"


def check_model_file(path: Path) -> None:
    """Raise `ModelFormatError` if the model at `path` is not a complete package / compiled model."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"model {path} does not exist")
    if path.suffix == ".mlpackage":
        manifest = path / "Manifest.json"
        if not manifest.is_file():
            raise ModelFormatError(f"model package {path} has no Manifest.json (incomplete or not a .mlpackage)")
        check_file_size(manifest.stat().st_size, MODEL_JSON_MAX_BYTES, f"model package {path}: Manifest.json", ModelFormatError)
        try:
            entries = json.loads(manifest.read_text())["itemInfoEntries"]
            items = [entry["path"] for entry in entries.values()]
            if not all(isinstance(item, str) for item in items):
                raise TypeError("an entry's path is not a string")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            raise ModelFormatError(f"model package {path}: Manifest.json is corrupt ({error})") from None
        for relative in items:
            item = path_inside(path / "Data", relative, f"model package {path}: Manifest.json entry")
            try:
                present = item.exists()
            except (OSError, ValueError):  # a name the OS refuses (too long, bad bytes)
                present = False
            if not present:
                raise ModelFormatError(f"model package {path} lacks {item.relative_to(path)} listed in its Manifest.json")
        spec = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
        if not spec.is_file() or spec.stat().st_size == 0:
            raise ModelFormatError(f"model package {path} has no (or an empty) Data/com.apple.CoreML/model.mlmodel")
    elif path.suffix == ".mlmodelc":
        for name in ("model.mil", "coremldata.bin"):
            if not (path / name).is_file():
                raise ModelFormatError(f"compiled model {path} lacks {name}")
    elif not path.is_file():
        raise ModelFormatError(f"{path} is neither a .mlpackage, a .mlmodelc nor a file")


def check_tokenizer_file(path: Path, part: str) -> None:
    path = Path(path)
    if part == "vocab":
        try:
            check_file_size(path.stat().st_size, MODEL_JSON_MAX_BYTES, f"tokenizer vocabulary {path}", ModelFormatError)
            vocab = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            raise ModelFormatError(f"tokenizer vocabulary {path} is not valid JSON ({error})") from error
        if not isinstance(vocab, dict) or not vocab:
            raise ModelFormatError(f"tokenizer vocabulary {path} is not a token -> id object")
    elif not path.is_file() or path.stat().st_size == 0:
        raise ModelFormatError(f"tokenizer merges file {path} is missing or empty")
