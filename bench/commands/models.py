"""`bench models {list,build-tiny,fetch,quality}`: the model zoo from the command line.

- `list` shows every known variant: id, parts, resolution, attention, quantization, source,
  whether it is on disk and its size there (`--json` for machines, with each part's file).
- `build-tiny [ID ...]` generates the default tiny set (or the given generated ids) under the models
  folder (`--out DIR` elsewhere), keeping what is already built and valid.
- `fetch ID` downloads a published set from the Hugging Face Hub (progress shown, resumable).
- `quality [ID ...]` prints the UNet PSNR of quantized variants against their baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.errors import BenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, build, fetch model variants (the model zoo)",
        description="The model zoo: generated tiny / small SDXL sets and Apple's published SDXL Core ML sets.",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="show every known variant and whether it is present")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=run_list)

    build = sub.add_parser("build-tiny", help="generate tiny SDXL model sets locally (no download)")
    build.add_argument("ids", nargs="*", metavar="ID", help="generated variant ids (default: the default tiny set)")
    build.add_argument("--out", type=Path, metavar="DIR", help="models folder to build into (default: the user cache or $BENCH_MODELS_DIR)")
    build.add_argument("--size", choices=("tiny", "small"), help="build every variant of this size instead")
    build.add_argument("--seed", type=int, default=0, help="weight seed (default 0; other seeds build into <size>-seed<N>)")
    build.add_argument("--jobs", type=int, metavar="N", help="parallel build processes (default: up to 2)")
    build.set_defaults(handler=run_build)

    fetch = sub.add_parser("fetch", help="download a published model set from the Hugging Face Hub")
    fetch.add_argument("id", metavar="ID", help="published variant id (see `bench models list`)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(handler=run_fetch)

    quality = sub.add_parser("quality", help="UNet PSNR of quantized variants against their baselines (reference engine)")
    quality.add_argument("ids", nargs="*", metavar="ID", help="variant ids (default: every quantized tiny variant)")
    quality.add_argument("--seed", type=int, default=0, help="seed of the fixed UNet inputs (default 0)")
    quality.set_defaults(handler=run_quality)

    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _parts_summary(parts: tuple[str, ...]) -> str:
    short = {
        "text_encoder": "te", "text_encoder_2": "te2", "unet": "unet", "unet_chunk1": "unet1", "unet_chunk2": "unet2",
        "refiner": "refiner", "vae_decoder": "vae-dec", "vae_encoder": "vae-enc", "vocab": "vocab", "merges": "merges",
        "recipe": "recipe",
    }
    return ",".join(short.get(s, s) for s in parts)


def _rows() -> list[dict]:
    from bench.models import zoo

    rows = []
    for variant in zoo.list_variants():
        present = zoo.is_present(variant.id)
        folder = zoo.variant_folder(variant.id)
        if variant.generated:
            files = {s: str(folder / "packages") for s in variant.parts}
            if present:
                files = {s: str(p) for s, p in zoo.resolve(variant.id, build_tiny=False).files.items()}
        else:
            files = {s: str(p) for s, p in zoo.hub_files(variant).items()}
        rows.append({
            "id": variant.id,
            "kind": variant.kind,
            "parts": list(variant.parts),
            "files": files,
            "resolution": variant.resolution,
            "attention": variant.attention,
            "quantization": variant.quantization,
            "source": variant.source,
            "present": present,
            "bytes": zoo.folder_size(folder) if present and folder.exists() else 0,
            "description": variant.description,
        })
    return rows


def run_list(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    from bench.models.paths import models_dir

    table = Table(title=f"model variants (models folder: {models_dir()})")
    for column in ("id", "parts", "res", "attention", "quantization", "source", "present", "size"):
        table.add_column(column, no_wrap=column != "source")
    for row in rows:
        source = "generated" if row["kind"] == "generated" else row["source"].replace("huggingface: ", "hf:")
        table.add_row(
            row["id"], _parts_summary(tuple(row["parts"])), str(row["resolution"]), row["attention"],
            row["quantization"], source, "yes" if row["present"] else "no",
            _human(row["bytes"]) if row["present"] else "-",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # full rows in files and pipes
    console.print(table)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.models.tiny import (
        DEFAULT_TINY_IDS,
        build_variants,
        generated_ids,
        parse_id,
    )

    console = Console(stderr=True)
    if args.jobs is not None and args.jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {args.jobs}")
    if args.size and args.ids:
        raise BenchError("give variant ids or --size, not both")
    ids = list(args.ids) or (generated_ids(args.size) if args.size else list(DEFAULT_TINY_IDS))
    for variant_id in ids:
        if parse_id(variant_id) is None:
            from bench.models import zoo

            zoo.get_variant(variant_id)  # names close matches for typos
            raise BenchError(f"{variant_id} is a published variant; use `bench models fetch {variant_id}`")
    os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass progress bars are noise here
    start = time.perf_counter()

    def progress(event: str, name: str, seconds: float) -> None:
        elapsed = time.perf_counter() - start
        if event == "built":
            console.print(f"[{elapsed:5.1f}s] built {name} ({seconds:.1f}s)")
        elif event == "valid":
            console.print(f"[{elapsed:5.1f}s] {name}: already built and valid")

    folders = build_variants(ids, seed=args.seed, out_dir=args.out, jobs=args.jobs, progress=progress)
    elapsed = time.perf_counter() - start
    root = next(iter(folders.values())).parent if folders else None
    console.print(f"{len(folders)} variant(s) ready under {root} in {elapsed:.1f}s")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from bench.models.fetch import fetch

    folder = fetch(args.id, progress=not args.quiet)
    print(f"{args.id}: {folder}")
    return 0


def run_quality(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.models import zoo
    from bench.models.quality import variant_psnr

    ids = list(args.ids) or [v.id for v in zoo.list_variants() if v.generated and v.size == "tiny" and zoo.quality_baseline(v.id)]
    table = Table(title=f"UNet PSNR against the baseline (reference engine, fp32, seed {args.seed})")
    for column in ("id", "quantization", "baseline", "psnr dB"):
        table.add_column(column)
    for variant_id in ids:
        baseline = zoo.quality_baseline(variant_id)
        value = variant_psnr(variant_id, seed=args.seed)
        label = zoo.resolve(variant_id).quantization
        table.add_row(variant_id, label, baseline or "-", "-" if value is None else f"{value:.2f}")
    console = Console()
    console = console if console.is_terminal else Console(width=200)
    console.print(table)
    return 0
