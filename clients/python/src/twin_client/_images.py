"""Turning what a caller has (a path, bytes, a PIL image, a numpy array, a text) into the
`twin.v1.Image` the gateway takes.

PIL and numpy are imported only when such an object is passed: a caller that only sends
files or bytes needs neither (install them with the `images` extra).
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ._proto import common_pb2

__all__ = ["Text", "ImageLike", "to_proto", "encode_png"]


@dataclass(frozen=True)
class Text:
    """A text sample, for a text model: `client.embed(Text("a sentence"))`.

    A plain `str` is always a file path, never a text; wrap texts in `Text`.
    `source` is an optional name stored with an enrolled text."""

    text: str
    source: str = ""


ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Text, Any]
"""A sample: a path (str or PathLike) to an encoded image, encoded image bytes (PNG,
JPEG, TIFF, BMP), a PIL.Image.Image, a numpy uint8 array (H x W grey, H x W x 3 RGB or
H x W x 4 RGBA), or a `Text`."""


def _pil_image_class() -> Any:
    # Only when PIL was already imported can the object be a PIL image.
    module = sys.modules.get("PIL.Image")
    return getattr(module, "Image", None) if module is not None else None


def _is_numpy_array(obj: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


def _need_pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "encoding a numpy array needs Pillow: pip install 'twin-client[images]'"
        ) from e
    return Image


def encode_png(image: Any) -> bytes:
    """PNG bytes of a PIL image or a numpy uint8 array (lossless: the pixels sent are the
    pixels given)."""
    if _is_numpy_array(image):
        array = image
        if array.dtype.name != "uint8":
            raise TypeError(f"numpy image arrays must be uint8, got {array.dtype.name}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
            raise ValueError(
                f"numpy image arrays must be H x W, H x W x 3 or H x W x 4, got shape {tuple(array.shape)}"
            )
        Image = _need_pil()
        import numpy

        # uint8 H x W -> "L", H x W x 3 -> "RGB", H x W x 4 -> "RGBA".
        image = Image.fromarray(numpy.ascontiguousarray(array))
    pil_class = _pil_image_class()
    if pil_class is None or not isinstance(image, pil_class):
        raise TypeError(f"not a PIL image or numpy array: {type(image).__name__}")
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_proto(sample: ImageLike, source: str | None = None) -> Any:
    """The twin.v1.Image for a sample. `source` (a name stored on enrolment) defaults to
    the file name for paths and to Text.source for texts."""
    if isinstance(sample, common_pb2.Image):
        message = common_pb2.Image()
        message.CopyFrom(sample)
        if source is not None:
            message.source = source
        return message
    if isinstance(sample, Text):
        if not isinstance(sample.text, str):
            raise TypeError(f"Text.text must be a str, got {type(sample.text).__name__}")
        return common_pb2.Image(text=sample.text, source=sample.source if source is None else source)
    if isinstance(sample, (bytes, bytearray, memoryview)):
        return common_pb2.Image(data=bytes(sample), source=source or "")
    if isinstance(sample, (str, os.PathLike)):
        path = Path(sample)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ValueError(f"{path} is a directory, not an image file") from None
        return common_pb2.Image(data=data, source=path.name if source is None else source)
    if _is_numpy_array(sample) or (
        _pil_image_class() is not None and isinstance(sample, _pil_image_class())
    ):
        return common_pb2.Image(data=encode_png(sample), source=source or "")
    raise TypeError(
        f"cannot send a {type(sample).__name__} as an image: pass a path, bytes, a PIL image, "
        "a numpy uint8 array, or twin_client.Text(...) for a text"
    )
