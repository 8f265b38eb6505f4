"""Split a UNet package in two chunks whose interfaces match by name (UnetChunk1 / UnetChunk2).

apple/ml-stable-diffusion chunks with `coremltools.models.utils.bisect_model`: cut the op list where
half the weight bytes lie before the cut; chunk 1 outputs every value that crosses the cut (fp16
values cast to fp32), chunk 2 takes those, under the same names, plus the original inputs it still
needs. The same coremltools helpers do the cut here; only the final conversion differs:
`bisect_model` runs each chunk through the whole pass pipeline (tens of seconds for a tiny UNet),
this exports the two programs directly (`bench.models.tiny.convert`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.errors import ModelFormatError


def _load_program(package: Path):
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    from coremltools.models.utils import _try_get_weights_dir_path

    spec = ct.utils.load_spec(str(package))
    prog = milproto_load(spec, spec.specificationVersion, _try_get_weights_dir_path(str(package)))
    prog.functions["main"].operations = list(prog.functions["main"].operations)
    return prog, spec


def chunk_programs(make_program: Callable[[], object], chunk1: Path, chunk2: Path, *, metadata: dict[str, str],
                   description: str = "") -> tuple[Path, Path]:
    """Cut the program `make_program()` returns and write its chunks to `chunk1` / `chunk2`.

    coremltools' helpers cut a program in place, so chunk 2 is made from a second, fresh program.
    """
    import coremltools as ct
    from coremltools.models.utils import (
        _get_op_idx_split_location,
        _make_first_chunk_prog,
        _make_second_chunk_prog,
    )

    from bench.models.tiny.convert import save_program

    prog = make_program()
    if prog.functions["main"].opset_version > ct.target.iOS17:
        raise ModelFormatError(
            "cannot chunk a model with iOS18 ops: coremltools' chunking rebuilds chunk 2 at iOS16"
        )
    prog.functions["main"].operations = list(prog.functions["main"].operations)
    op_idx, _, _ = _get_op_idx_split_location(prog)
    first = _make_first_chunk_prog(prog, op_idx)
    fresh = make_program()
    fresh.functions["main"].operations = list(fresh.functions["main"].operations)
    second = _make_second_chunk_prog(fresh, op_idx)
    for index, (chunk_prog, path) in enumerate(((first, chunk1), (second, chunk2)), start=1):
        meta = dict(metadata, **{"bench.chunk": f"{index}/2"})
        save_program(chunk_prog, Path(path), ct.target.iOS16, metadata=meta,
                     description=f"{description} (chunk {index} of 2)".strip())
    return Path(chunk1), Path(chunk2)


def chunk_package(package: Path, chunk1: Path, chunk2: Path, *, metadata: dict[str, str]) -> tuple[Path, Path]:
    """Write an existing `.mlpackage`'s two chunks to `chunk1` and `chunk2`."""
    import coremltools as ct

    from bench.models.tiny.convert import SPEC_VERSIONS

    package = Path(package)
    spec = ct.utils.load_spec(str(package))
    if spec.specificationVersion > SPEC_VERSIONS[ct.target.iOS17]:
        raise ModelFormatError(
            f"cannot chunk {package}: coremltools' chunking rebuilds chunk 2 at iOS16, and this model "
            f"needs specification version {spec.specificationVersion} (iOS18 ops)"
        )
    return chunk_programs(lambda: _load_program(package)[0], chunk1, chunk2, metadata=metadata,
                          description=spec.description.metadata.shortDescription)
