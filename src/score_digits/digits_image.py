"""Any image of a digit -> the 64 features the digits models take (8x8, ink 0..16).

Shared by prep (training images), score (online requests) and batch_digits (batch files):
the same function on every side is what makes the served accuracy equal the evaluated one.
The prep component takes this file through `additional_includes`; a deployment's scoring
code has no includes in Azure ML, so src/score_digits/ and src/batch_digits/ hold identical
copies of src/shared/digits_image.py (tests/e2e/project/test_digits_scenario.py fails when they differ).

Steps, each for a reason:
- EXIF orientation, alpha composited on white, grayscale: phone photos and PNG canvases.
- Polarity from the border: the background is whatever the edge pixels mostly are, so
  dark-on-light and light-on-dark both end up as bright ink on black (sklearn's convention).
- Autocontrast, crop to the ink's bounding box, pad to a centred square: the digit fills the
  frame at any size or position while keeping its aspect ratio (a "1" stays thin).
- 32x32 then 4x4 block means scaled to 0..16: the UCI recipe that produced sklearn's digits.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

SIDE = 8
N_FEATURES = SIDE * SIDE
FEATURES = [f"p{i}" for i in range(N_FEATURES)]
# Pixels darker than this (after autocontrast, 0..255 with ink bright) count as background
# when finding the digit's bounding box.
INK_THRESHOLD = 48


class ImageError(ValueError):
    """The bytes are not an image we can turn into a digit (the message says why)."""


def decode(data: bytes, max_pixels: int = 4096 * 4096) -> Image.Image:
    """Decode PNG/JPEG/BMP/... bytes, refusing images too large to process safely."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise ImageError(
                f"image is {image.width}x{image.height}; at most {max_pixels} pixels are accepted"
            )
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageError("cannot decode image: not a PNG, JPEG, BMP, GIF, TIFF or WebP") from None
    except Exception as exc:  # PIL raises many types for truncated or corrupt data
        raise ImageError(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    return image


def to_gray(image: Image.Image) -> np.ndarray:
    """Grayscale float array; transparency is composited on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def features(image: Image.Image) -> np.ndarray:
    """64 floats in 0..16, row-major, ink bright: the layout of sklearn's digits.data."""
    gray = to_gray(image)
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # light background: make the ink the bright part
        gray = 255.0 - gray
    low, high = float(gray.min()), float(gray.max())
    if high - low < 1e-6:
        return np.zeros(N_FEATURES)  # a blank image: no ink anywhere
    gray = (gray - low) * (255.0 / (high - low))
    rows = np.where((gray > INK_THRESHOLD).any(axis=1))[0]
    cols = np.where((gray > INK_THRESHOLD).any(axis=0))[0]
    gray = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = gray.shape
    side = max(h, w)
    square = np.zeros((side, side))
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = gray
    big = Image.fromarray(square.astype(np.float32), mode="F").resize((32, 32), Image.BILINEAR)
    blocks = np.asarray(big, dtype=np.float64).reshape(SIDE, 4, SIDE, 4).mean(axis=(1, 3))
    return np.clip(blocks * (16.0 / 255.0), 0.0, 16.0).ravel()


def features_from_bytes(data: bytes) -> np.ndarray:
    return features(decode(data))
