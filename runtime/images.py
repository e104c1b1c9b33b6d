"""Reading images safely: every failure becomes a ZooError naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# Pillow's own default (about 89 Mpx); above it an image is treated as a decompression bomb.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Open, fully decode, apply EXIF orientation and convert to ``mode``."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ZooError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ZooError(
                        f"{path}: {img.width}x{img.height} pixels exceeds the limit of {MAX_PIXELS} "
                        "(possible decompression bomb)"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                return img.convert(mode)
    except ZooError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ZooError(f"{path}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ZooError(f"{path}: not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ZooError(f"{path}: unreadable or truncated image ({exc})") from exc


def collect_images(inputs: list[str]) -> list[Path]:
    """Expand directories (sorted, one level) into their image files."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ZooError(f"{path}: directory holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise ZooError(f"{path}: no such file or directory")
    if not found:
        raise ZooError("no input images given")
    return found


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8)
