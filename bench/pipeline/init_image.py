"""Reading an img2img init image from a file, bounded: a regular file within a size and pixel limit.

A FIFO or device named as an init image would block `open` (or stream forever), and a small file
can declare billions of pixels (a decompression bomb), so the file is opened without blocking,
checked with `fstat`, and its declared size is checked before any pixel is decoded.
"""

from __future__ import annotations

import os
import stat

import numpy as np

from bench.errors import PipelineError
from bench.limits import INIT_IMAGE_MAX_BYTES, INIT_IMAGE_MAX_PIXELS, check_file_size


def check_init_image_file(path: str) -> os.stat_result:
    """`stat` of `path`, refused unless it is a regular file of at most `INIT_IMAGE_MAX_BYTES`
    (`stat` never blocks, so this is safe on a FIFO)."""
    where = f"init_image {path}"
    try:
        info = os.stat(path)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise PipelineError(f"{where}: cannot read the image ({getattr(error, 'strerror', None) or error})") from None
    _check_stat(info, where)
    return info


def _check_stat(info: os.stat_result, where: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise PipelineError(f"{where}: not a regular file (a folder, FIFO or device); give an image file")
    check_file_size(info.st_size, INIT_IMAGE_MAX_BYTES, where, PipelineError)


def read_init_image(path: str, resolution: int) -> np.ndarray:
    """An image file as (1, 3, H, W) in [-1, 1], resized to the model's resolution."""
    from PIL import Image

    where = f"init_image {path}"
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise PipelineError(f"{where}: cannot read the image ({getattr(error, 'strerror', None) or error})") from None
    try:
        _check_stat(os.fstat(descriptor), where)  # the file opened, not a name swapped in since
    except PipelineError:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        try:
            with Image.open(handle) as image:
                width, height = image.size
                if width * height > INIT_IMAGE_MAX_PIXELS:
                    raise PipelineError(
                        f"{where}: {width}x{height} pixels, over the limit of {INIT_IMAGE_MAX_PIXELS} pixels"
                    )
                rgb = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
        except PipelineError:
            raise
        except Exception as error:  # noqa: BLE001  (Pillow's decoders raise many types on corrupt files)
            raise PipelineError(f"{where}: cannot read the image ({type(error).__name__}: {error})") from None
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0
    return array.transpose(2, 0, 1)[None]
