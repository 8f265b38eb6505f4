"""Mixed-bit palettization recipes in apple/ml-stable-diffusion's pre-analysis format.

Apple's `mixed_bit_compression_pre_analysis.py` writes a JSON file whose `recipes` object maps a
recipe name such as `recipe_4.50_bit_mixedpalette` to {torch module name: bits}, bits in
1, 2, 4, 6, 8 or 16 (16 = leave the layer uncompressed); `mixed_bit_compression_apply.py`
palettizes each named layer's weight with its bit width. The recipe's mean bit width (weighted by
weight size) is the number in its name and in the variant's label (`mbp-4.50`).

Here a module name maps to its weight const by coremltools' naming (`a.b.0` -> `a_b_0_weight`,
`..._to_fp16` in fp16 programs); a recipe naming a layer the model does not have is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import RecipeError

NBITS = (1, 2, 4, 6, 8, 16)


@dataclass(frozen=True)
class Recipe:
    """One recipe: its name, per-layer bits, and where it came from."""

    name: str
    layers: dict[str, int]
    source: str = ""

    def mean_bits(self, sizes: dict[str, int]) -> float:
        """Size-weighted mean bit width over the recipe's layers (sizes: module name -> elements)."""
        total = sum(sizes[name] for name in self.layers)
        return sum(bits * sizes[name] for name, bits in self.layers.items()) / total

    @property
    def stated_bits(self) -> float | None:
        """Mean bits stated in the recipe name (`recipe_4.50_bit_mixedpalette` -> 4.50), if any."""
        match = re.search(r"(\d+)[._](\d+)_bit", self.name)
        return float(f"{match.group(1)}.{match.group(2)}") if match else None


def recipe_from_json(data: object, *, source: str, key: str | None = None) -> Recipe:
    """Parse a pre-analysis JSON object (or a flat {layer: bits} object) into a `Recipe`."""
    if isinstance(data, dict) and isinstance(data.get("recipes"), dict):
        recipes = data["recipes"]
        if key is None:
            if len(recipes) != 1:
                raise RecipeError(f"recipe file {source} holds {len(recipes)} recipes; choose one of: {', '.join(recipes)}")
            key = next(iter(recipes))
        if key not in recipes:
            raise RecipeError(f"recipe file {source} has no recipe {key!r}; available: {', '.join(recipes)}")
        layers = recipes[key]
    elif isinstance(data, dict) and data and all(isinstance(v, int) for v in data.values()):
        layers, key = data, key or Path(source).stem
    else:
        raise RecipeError(f"recipe file {source} is neither a pre-analysis result with a `recipes` object nor a {{layer: bits}} object")
    if not isinstance(layers, dict) or not layers:
        raise RecipeError(f"recipe {key!r} in {source} is empty or not a {{layer: bits}} object")
    for layer, bits in layers.items():
        if not isinstance(layer, str) or bits not in NBITS or isinstance(bits, bool):
            raise RecipeError(f"recipe {key!r} in {source}: layer {layer!r} has bits {bits!r}; expected one of {NBITS}")
    return Recipe(name=str(key), layers=dict(layers), source=source)


def load_recipe(path: str | Path, key: str | None = None) -> Recipe:
    """Read recipe `key` (or the only one) from the JSON file at `path`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RecipeError(f"cannot read recipe file {path}: {error}") from error
    except ValueError as error:
        raise RecipeError(f"recipe file {path} is not valid JSON: {error}") from error
    return recipe_from_json(data, source=str(path), key=key)


def write_recipe(path: Path, recipe: Recipe, model_version: str) -> Path:
    """Write `recipe` in the pre-analysis file layout."""
    payload = {"model_version": model_version, "baselines": {}, "recipes": {recipe.name: recipe.layers}}
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(path)


def const_names_for(recipe: Recipe, weight_consts: set[str], *, model: str) -> dict[str, int]:
    """Map the recipe's module names to the model's weight const names; error on unknown layers."""
    resolved: dict[str, int] = {}
    unknown: list[str] = []
    for layer, bits in recipe.layers.items():
        base = f"{layer.replace('.', '_')}_weight"
        name = next((n for n in (base, f"{base}_to_fp16") if n in weight_consts), None)
        if name is None:
            unknown.append(layer)
        else:
            resolved[name] = bits
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        example = next(iter(sorted(weight_consts)), "")
        raise RecipeError(
            f"recipe {recipe.name!r} ({recipe.source or 'in memory'}) names {len(unknown)} layer(s) that do not exist "
            f"in {model}: {shown}; layers are torch module names whose weight const exists "
            f"(for example {example!r} is layer {_layer_of(example)!r})"
        )
    return resolved


def _layer_of(const_name: str) -> str:
    return re.sub(r"_weight(_to_fp16)?$", "", const_name)


def tiny_recipe_bits(layer: str) -> int:
    """Bit width the generated recipe gives `layer` (a fixed rule standing in for a pre-analysis:
    embeddings and the in / out convolutions stay at 8 bits, attention query / key projections get
    the fewest bits, the bulk of the convolutions and feed-forward weights 4)."""
    if layer in ("conv_in", "conv_out") or layer.startswith(("time_embedding", "add_embedding")):
        return 8
    if re.search(r"attn1\.to_[qk]$", layer):
        return 2
    if re.search(r"(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|resnets\.\d+\.conv[12])$", layer):
        return 4
    return 6
