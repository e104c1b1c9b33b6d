"""Reading images safely: every failure becomes a ZooError naming the file."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
# Pillow's own default (about 89 Mpx); above it an image is treated as a decompression bomb.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ImageInput:
    """An image handed over in memory (the Python API takes PIL images and uint8 arrays) where a
    task expects a path: it has the path attributes results use (``name``, ``stem``)."""

    image: Image.Image
    name: str

    @property
    def stem(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


def in_memory(item: Any, number: int) -> ImageInput:
    """A PIL image or a uint8 array (H x W, or H x W x 1/3/4) as an ``ImageInput``."""
    name = f"<image {number}>"
    if isinstance(item, Image.Image):
        image = item
    else:
        array = np.asarray(item)
        if array.dtype != np.uint8:
            raise ZooError(f"{name}: an image array must be uint8 (0-255), got {array.dtype}; "
                           "convert it with (x * 255).clip(0, 255).astype('uint8') if it holds 0-1 floats")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
            raise ZooError(f"{name}: an image array must be H x W or H x W x 3/4, got shape {array.shape}")
        image = Image.fromarray(np.ascontiguousarray(array))
    if image.width * image.height > MAX_PIXELS:
        raise ZooError(f"{name}: {image.width}x{image.height} pixels exceeds the limit of {MAX_PIXELS}")
    return ImageInput(image, name)


def load_image(path: str | Path | ImageInput, mode: str = "RGB") -> Image.Image:
    """Open, fully decode, apply EXIF orientation and convert to ``mode``."""
    if isinstance(path, ImageInput):
        return path.image.convert(mode)
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
                # in place: a copy of a camera photo costs as much as decoding it again
                ImageOps.exif_transpose(img, in_place=True)
                return img if img.mode == mode else img.convert(mode)
    except ZooError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ZooError(f"{path}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ZooError(f"{path}: not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ZooError(f"{path}: unreadable or truncated image ({exc})") from exc


GLOB_CHARACTERS = set("*?[")


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """A folder's image files, sorted; with ``recursive`` those of its sub-folders too (class
    sub-folders: ``cats/1.jpg``, ``dogs/2.jpg``), hidden files and folders left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _folder(path: Path, recursive: bool) -> list[Path]:
    images = image_files(path, recursive)
    if images:
        return images
    hint = ""
    if not recursive and image_files(path, True):
        hint = "; its sub-folders hold some: add --recursive"
    raise ZooError(f"{path}: directory holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}){hint}")


def expand_pattern(pattern: str, recursive: bool = False) -> list[Path]:
    """A glob (``photos/*.jpg``, ``**`` for any depth) as the image files it names, sorted; a
    folder it matches is read like a folder given by name. A pattern that names no image file
    is an error: it was meant to, and saying nothing would lose the inputs silently."""
    import glob

    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
    found: list[Path] = []
    for match in matches:
        if match.is_dir():
            found.extend(image_files(match, recursive))
        elif match.suffix.lower() in IMAGE_SUFFIXES:
            found.append(match)
    if not found:
        what = "no file" if not matches else "no image file"
        raise ZooError(f"{pattern}: {what} matches this pattern")
    return found


def is_pattern(item: Any) -> bool:
    """A string with glob characters that is not itself an existing path."""
    return isinstance(item, str) and bool(GLOB_CHARACTERS & set(item)) and not Path(item).exists()


def collect_images(inputs: Sequence[Any], recursive: bool = False) -> list[Path | ImageInput]:
    """Expand folders (sorted, one level, or every level with ``recursive``) and glob patterns
    into their image files; PIL images and arrays given in memory pass through as
    ``ImageInput``."""
    return list(iter_images(inputs, recursive))


def iter_images(inputs: Iterable[Any], recursive: bool = False) -> Iterator[Path | ImageInput]:
    """``collect_images`` read lazily, for a stream: each input is checked and expanded when it
    is reached, and in-memory images are named by their position among the inputs."""
    given = False
    for number, item in enumerate(inputs):
        if isinstance(item, (Image.Image, np.ndarray)):
            given = True
            yield in_memory(item, number)
            continue
        if isinstance(item, ImageInput):
            given = True
            yield item
            continue
        if is_pattern(str(item)):
            found = expand_pattern(str(item), recursive)
        else:
            path = Path(item)
            if path.is_dir():
                found = _folder(path, recursive)
            elif path.exists():
                found = [path]
            else:
                raise ZooError(f"{path}: no such file or directory")
        given = True
        yield from found
    if not given:
        raise ZooError("no input images given")


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8)


class SaveTargets:
    """Where ``zoo run --save FILE`` / ``--save-dir DIR`` write drawn images, decided before any
    work: never over an input, a unique name when two inputs share a name (``a/x.png`` and
    ``b/x.png``) or the file exists, and a missing folder is made only inside an existing one or
    the current directory (``--save /nonexistent/dir/x.png`` is refused, not created at the root)."""

    def __init__(self, inputs: "list[Path | ImageInput]", save: str | None, save_dir: str | None,
                 suffix: str = ".jpg"):
        if save and save_dir:
            raise ZooError("--save and --save-dir exclude each other; give one")
        if save and len(inputs) > 1:
            raise ZooError(f"--save names one output image but {len(inputs)} inputs were given; use --save-dir DIR")
        self.suffix = suffix
        self._inputs = {self._key(p) for p in inputs if not isinstance(p, ImageInput)}
        self._taken: set[str] = set()
        self.save = Path(save) if save else None
        self.folder = Path(save_dir) if save_dir else None
        if self.save is not None:
            if self.save.is_dir():
                raise ZooError(f"--save {self.save}: is a folder; use --save-dir {self.save}")
            if self.save.suffix.lower() not in IMAGE_SUFFIXES:
                raise ZooError(f"--save {self.save}: name an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self._check_folder(self.save.parent, "--save")
            if self._key(self.save) in self._inputs:
                raise ZooError(f"--save {self.save} is one of the inputs; zoo never writes over an input")
        if self.folder is not None:
            if self.folder.exists() and not self.folder.is_dir():
                raise ZooError(f"--save-dir {self.folder}: exists and is not a folder")
            self._check_folder(self.folder, "--save-dir")

    @staticmethod
    def _key(path: Path) -> str:
        return os.path.realpath(path)

    @staticmethod
    def _check_folder(folder: Path, flag: str) -> None:
        """A missing folder is made only when its parent exists or it lies inside the current
        directory: a mistyped path never grows a tree of folders elsewhere."""
        if folder.is_dir() or folder.parent.is_dir():
            return
        inside = Path(os.path.realpath(folder))
        here = Path(os.path.realpath(os.getcwd()))
        if here != inside and here not in inside.parents:
            raise ZooError(f"{flag}: folder {folder.parent} does not exist; create it first (zoo makes a missing "
                           "folder only inside an existing one or the current directory)")

    def target(self, source: "Path | ImageInput") -> Path | None:
        """The file to write for ``source``, or None when nothing is saved."""
        if self.save is not None:
            self._make(self.save.parent)
            return self.save
        if self.folder is None:
            return None
        self._make(self.folder)
        stem, n = source.stem if isinstance(source, ImageInput) else Path(source).stem, 0
        while True:
            candidate = self.folder / f"{stem}{'-' + str(n) if n else ''}{self.suffix}"
            key = self._key(candidate)
            if key not in self._inputs and key not in self._taken and not candidate.exists():
                self._taken.add(key)
                return candidate
            n += 1

    @staticmethod
    def _make(folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ZooError(f"cannot create {folder}: {exc.strerror or exc}") from exc


def save_image(image: Image.Image, target: Path) -> None:
    """Write ``image`` to ``target`` atomically, in the format its suffix names."""
    from zoo.store import atomic_path

    fmt = Image.registered_extensions().get(Path(target).suffix.lower())
    if fmt is None:
        raise ZooError(f"{target}: name an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        with atomic_path(Path(target), Path(target).suffix) as tmp:
            (image.convert("RGB") if fmt == "JPEG" else image).save(tmp, format=fmt)
    except (OSError, ValueError) as exc:
        raise ZooError(f"{target}: cannot write the annotated image ({exc})") from exc
