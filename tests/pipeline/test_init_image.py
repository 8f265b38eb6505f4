"""Init images are read only from regular files within the size and pixel limits."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.errors import PipelineError
from bench.executor import read_init_image
from bench.limits import INIT_IMAGE_MAX_BYTES, INIT_IMAGE_MAX_PIXELS


def test_reads_a_png_as_model_input(tmp_path: Path) -> None:
    pixels = np.zeros((40, 30, 3), np.uint8)
    pixels[..., 0] = 255
    Image.fromarray(pixels).save(tmp_path / "red.png")
    image = read_init_image(str(tmp_path / "red.png"), 16)
    assert image.shape == (1, 3, 16, 16) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], 1.0)
    np.testing.assert_allclose(image[0, 1:], -1.0)


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # no writer ever opens it: a blocking open would wait forever
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_init_image(str(fifo), 16)
        except BaseException as error:  # noqa: BLE001  (handed to the test thread)
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "reading a FIFO blocked"
    (error,) = outcome
    assert isinstance(error, PipelineError) and "pipe.png: not a regular file" in str(error)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"init_image .*: not a regular file"):
        read_init_image(str(tmp_path), 16)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:  # sparse
        handle.truncate(INIT_IMAGE_MAX_BYTES + 1)
    with pytest.raises(PipelineError, match=r"big\.png is 64\.0 MiB, over the limit of 64\.0 MiB"):
        read_init_image(str(big), 16)


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    side = int(INIT_IMAGE_MAX_PIXELS**0.5) + 1  # just over the limit, below Pillow's own bomb check
    Image.new("1", (side, side)).save(tmp_path / "bomb.png")  # a few kB on disk
    assert (tmp_path / "bomb.png").stat().st_size < 1 << 20
    with pytest.raises(PipelineError, match=rf"bomb\.png: {side}x{side} pixels, over the limit of {INIT_IMAGE_MAX_PIXELS} pixels"):
        read_init_image(str(tmp_path / "bomb.png"), 16)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_corrupt_files_give_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(PipelineError, match=r"init_image .*bad\.png: cannot read the image") as caught:
        read_init_image(str(tmp_path / "bad.png"), 16)
    assert "\n" not in str(caught.value)
