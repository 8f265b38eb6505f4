"""A UNet at SDXL base's true size with random float16 weights (5 GB), for the reference engine's
memory and speed at real scale: no download, the same generator and op patterns as the tiny sets.

    python -m bench.models.tiny.realsize OUT.mlpackage [--latent 96] [--attention ORIGINAL] [--seed 0]

96x96 latents are a 768x768 image (Apple's iOS 17 SDXL setup); SDXL's own 1024x1024 is 128.
Building takes minutes and about twice the package's size in memory (the MIL program holds the
float16 weights while coremltools writes them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: Apple's iOS 17 SDXL resolution (768x768) in latents.
DEFAULT_LATENT = 96


def write_sdxl_base_unet(out: Path, *, latent: int = DEFAULT_LATENT, attention: str = "ORIGINAL", seed: int = 0) -> Path:
    """Write SDXL base's UNet (random fp16 weights, batch 2, `latent`-sized latents) to `out` (.mlpackage)."""
    import coremltools as ct

    from bench.models.tiny.convert import save_program
    from bench.models.tiny.layers import Ctx
    from bench.models.tiny.spec import SDXL_BASE_UNET
    from bench.models.tiny.unet import unet_program
    from bench.models.tiny.weights import ParamSource

    prog = unet_program(Ctx(ParamSource(seed), fp16=True), SDXL_BASE_UNET, latent, attention, ct.target.iOS16)
    metadata = {"bench.generator": "bench.models.tiny.realsize", "bench.size": "sdxl-base", "bench.seed": str(seed),
                "bench.stage": "unet", "bench.latent": str(latent)}
    return save_program(prog, Path(out), ct.target.iOS16, metadata=metadata,
                        description=f"SDXL base UNet at its real size, random weights (seed {seed}), {attention}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models.tiny.realsize", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the .mlpackage to write")
    parser.add_argument("--latent", type=int, default=DEFAULT_LATENT, help=f"latent side (default {DEFAULT_LATENT})")
    parser.add_argument("--attention", default="ORIGINAL", choices=("ORIGINAL", "SPLIT_EINSUM", "SPLIT_EINSUM_V2"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    write_sdxl_base_unet(args.out, latent=args.latent, attention=args.attention, seed=args.seed)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
