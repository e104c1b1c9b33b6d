"""Weights on disk: the read-only ``weights/`` shipped with zoo and the user's store under
``$ZOO_HOME``. An entry is a folder holding ``model.safetensors`` and ``manifest.json`` (model,
config, dataset, metrics, sha256, created, zoo version, command). Every write goes to a temporary
file in the same folder and is renamed into place, so a crash never leaves half a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import ZooError

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"


def _shipped_dir() -> Path:
    # Installed: zoo/weights is a package; from a source tree: ../weights.
    import zoo.weights

    return Path(zoo.weights.__file__).resolve().parent


def zoo_home() -> Path:
    env = os.environ.get("ZOO_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("zoo"))


def user_weights_dir() -> Path:
    return zoo_home() / "weights"


def exports_dir() -> Path:
    return zoo_home() / "exports"


def runs_dir() -> Path:
    return zoo_home() / "runs"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 is not what a user expects
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsEntry:
    model: str
    folder: Path
    manifest: dict[str, Any]
    shipped: bool

    @property
    def file(self) -> Path:
        return self.folder / self.manifest.get("file", WEIGHTS_FILE)

    @property
    def where(self) -> str:
        return "shipped" if self.shipped else "user"

    def verify(self) -> None:
        """Raise ZooError unless the weights file exists and matches the manifest's sha256."""
        if not self.file.is_file():
            raise ZooError(f"weights file {self.file} for {self.model} is missing")
        actual = sha256_file(self.file)
        if actual != self.manifest.get("sha256"):
            raise ZooError(
                f"weights file {self.file} does not match its manifest "
                f"(sha256 {actual[:12]}…, manifest says {str(self.manifest.get('sha256'))[:12]}…); "
                f"re-train or re-import {self.model}"
            )


def _read_entry(folder: Path, shipped: bool) -> WeightsEntry | None:
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZooError(f"weights manifest {manifest_path} is unreadable: {exc}") from exc
    return WeightsEntry(manifest.get("model", folder.name), folder, manifest, shipped)


def entries() -> list[WeightsEntry]:
    """Every entry, user store first (it overrides a shipped entry of the same model)."""
    found: list[WeightsEntry] = []
    for root, shipped in ((user_weights_dir(), False), (_shipped_dir(), True)):
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                entry = _read_entry(folder, shipped)
                if entry is not None:
                    found.append(entry)
    return found


def find(model: str) -> WeightsEntry | None:
    for root, shipped in ((user_weights_dir(), False), (_shipped_dir(), True)):
        entry = _read_entry(root / model, shipped)
        if entry is not None:
            return entry
    return None


def require(model: str) -> WeightsEntry:
    entry = find(model)
    if entry is None:
        raise ZooError(
            f"no weights for {model}: train them with `zoo train {model}` "
            f"or import a file with `zoo weights import {model} FILE`"
        )
    return entry


def install(model: str, weights_file: Path, manifest: dict[str, Any], dest_root: Path | None = None) -> WeightsEntry:
    """Copy a finished weights file and its manifest into the store, atomically."""
    folder = (dest_root or user_weights_dir()) / model
    folder.mkdir(parents=True, exist_ok=True)
    manifest = dict(manifest, model=model, file=WEIGHTS_FILE, sha256=sha256_file(weights_file))
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        shutil.copyfile(weights_file, tmp)
    write_json(folder / MANIFEST_FILE, manifest)
    return WeightsEntry(model, folder, manifest, False)
