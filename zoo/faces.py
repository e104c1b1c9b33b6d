"""The face recognition database and ``zoo faces``: enrol people from one photo each, list, remove,
and calibrate the distance threshold on a folder of the user's own photos.

The database keeps embeddings only, never the photos: one ``.npz`` file (read with
``allow_pickle=False``; names as a unicode array, facts as a JSON string) holding each enrolled
embedding with its person's name, the model and the sha256 of the weights that computed them, and
the calibrated threshold if any. Embeddings of other weights live in another space, so a database
refuses them. Every write goes to a temporary file renamed into place. Torch is never imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from zoo import store
from zoo.errors import ZooError

FORMAT = 1
MAX_BYTES = 256 * 1024 * 1024  # a database larger than this is not one zoo wrote
MAX_NAME = 100
NOT_RECOGNIZED = "not recognized"


def default_path() -> Path:
    return store.zoo_home() / "faces" / "faces.npz"


def resolve_path(path: str | Path | None) -> Path:
    return default_path() if path in (None, "", "default") else Path(path)


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable() or name == NOT_RECOGNIZED:
        raise ZooError(f"person name {name!r} must be 1-{MAX_NAME} printable characters (and not {NOT_RECOGNIZED!r})")
    return name


@dataclass
class FaceDatabase:
    path: Path
    names: list[str] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    model: str | None = None
    weights_sha256: str | None = None
    threshold: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path | None = None, must_exist: bool = False) -> "FaceDatabase":
        path = resolve_path(path)
        if not path.exists():
            if must_exist:
                raise ZooError(f"no face database at {path}: enrol someone with `zoo faces add NAME PHOTO`")
            return cls(path)
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            raise ZooError(f"{path}: not a face database (not a file, or larger than {MAX_BYTES >> 20} MB)")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"][()]))
                names = [str(n) for n in data["names"]]
                embeddings = np.asarray(data["embeddings"], np.float32)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ZooError(f"{path}: not a readable face database ({type(exc).__name__}: {exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ZooError(f"{path}: face database format {meta.get('format') if isinstance(meta, dict) else '?'} "
                           f"is not {FORMAT}")
        if embeddings.ndim != 2 or len(embeddings) != len(names) or not np.all(np.isfinite(embeddings)):
            raise ZooError(f"{path}: face database is inconsistent ({len(names)} names, embeddings "
                           f"{embeddings.shape})")
        threshold = meta.get("threshold")
        return cls(path, names, embeddings, meta.get("model"), meta.get("weights_sha256"),
                   float(threshold) if threshold is not None else None, meta.get("calibration") or {})

    def check_weights(self, sha256: str, model: str) -> None:
        """Refuse to compare or mix embeddings computed by other weights."""
        if self.weights_sha256 and self.weights_sha256 != sha256:
            raise ZooError(f"face database {self.path} holds embeddings of other weights ({self.model}, sha256 "
                           f"{self.weights_sha256[:12]}…) than {model} ({sha256[:12]}…); use another --db or "
                           f"enrol again with these weights")

    def tag(self, sha256: str, model: str) -> None:
        self.check_weights(sha256, model)
        self.weights_sha256, self.model = sha256, model

    def people(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self.names:
            counts[name] = counts.get(name, 0) + 1
        return counts

    def add(self, name: str, embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, np.float32).reshape(len(embeddings), -1)
        if len(self.names) and embeddings.shape[1] != self.embeddings.shape[1]:
            raise ZooError(f"embeddings of size {embeddings.shape[1]} do not fit the database's "
                           f"{self.embeddings.shape[1]}")
        self.embeddings = embeddings if not len(self.names) else np.concatenate([self.embeddings, embeddings])
        self.names += [check_name(name)] * len(embeddings)

    def remove(self, name: str) -> int:
        keep = [i for i, n in enumerate(self.names) if n != name]
        removed = len(self.names) - len(keep)
        if not removed:
            known = ", ".join(sorted(self.people())) or "nobody is enrolled"
            raise ZooError(f"{name!r} is not in the face database {self.path} (enrolled: {known})")
        self.names = [self.names[i] for i in keep]
        self.embeddings = self.embeddings[keep]
        return removed

    def identify(self, embedding: np.ndarray, tau: float) -> tuple[str, float | None]:
        """The nearest enrolled person and d = ||f - f_enrolled||^2; 'not recognized' beyond tau."""
        if not len(self.names):
            return NOT_RECOGNIZED, None
        diff = self.embeddings.astype(np.float64) - np.asarray(embedding, np.float64)[None, :]
        d = (diff * diff).sum(1)
        best = int(d.argmin())
        return (self.names[best] if d[best] <= tau else NOT_RECOGNIZED), round(float(d[best]), 6)

    def save(self) -> None:
        meta = {"format": FORMAT, "model": self.model, "weights_sha256": self.weights_sha256,
                "threshold": self.threshold, "calibration": self.calibration}
        names = np.asarray(self.names, dtype=f"<U{max([1, *map(len, self.names)])}")
        with store.atomic_path(self.path, ".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, names=names, embeddings=self.embeddings.astype(np.float32), meta=np.asarray(json.dumps(meta)))


# -- images -> embeddings -------------------------------------------------------------------------
def artifact_path(model: str) -> Path:
    """An artifact path, or a model name whose export lives in the user store."""
    path = Path(model)
    if path.exists():
        return path
    for candidate in (store.exports_dir() / f"{model}.onnx", store.exports_dir() / model):
        if candidate.exists():
            return candidate
    raise ZooError(f"no exported artifact for {model!r}: run `zoo export {model} --onnx` (after `zoo train` or "
                   f"`zoo weights import`), or pass --model PATH")


def open_embedder(model: str, provider: str, no_detect: bool, min_face: int):
    from zoo.runtime.artifact import open_artifact
    from zoo.runtime.tasks.faces import FaceEmbedder

    artifact = open_artifact(artifact_path(model), provider)
    if artifact.task != "face-embedding":
        raise ZooError(f"{artifact.path} is a {artifact.task} model, not a face-embedding one")
    return FaceEmbedder(artifact, no_detect, min_face)


def one_face(embedder, path: Path, pick: str | None) -> np.ndarray:
    from zoo.runtime.images import load_image, to_array
    from zoo.runtime.tasks.faces import largest

    faces = embedder.faces(to_array(load_image(path, "RGB")))
    if not faces:
        raise ZooError(f"{path}: no face found")
    if len(faces) > 1 and pick != "largest":
        raise ZooError(f"{path}: {len(faces)} faces found; use a photo of one person or pass --pick largest")
    return largest(faces)["embedding"]


_model = click.option("--model", default="facenet", show_default=True, metavar="NAME|ARTIFACT",
                      help="the face-embedding model (an exported artifact)")
_db = click.option("--db", "db_path", default=None, metavar="PATH",
                   help="database file (default: faces/faces.npz under $ZOO_HOME)")
_no_detect = click.option("--no-detect", is_flag=True, help="the photos are face crops already")
_min_face = click.option("--min-face", default=20, show_default=True, help="smallest face side to detect, pixels")
_provider = click.option("--provider", default="auto", show_default=True, help="onnxruntime execution provider")


@click.group()
def faces() -> None:
    """The face recognition database: enrol, list, remove, calibrate (`zoo run facenet IMG --db`)."""


@faces.command("add")
@click.argument("name")
@click.argument("images", nargs=-1, required=True, metavar="IMG...")
@click.option("--pick", type=click.Choice(["largest"]), default=None,
              help="a photo with several faces: enrol the largest")
@_model
@_db
@_no_detect
@_min_face
@_provider
def add(name: str, images: tuple[str, ...], pick: str | None, model: str, db_path: str | None, no_detect: bool,
        min_face: int, provider: str) -> None:
    """Enrol NAME from IMG... (one photo is enough); only the embeddings are kept."""
    from zoo.runtime.images import collect_images

    name = check_name(name)
    database = FaceDatabase.open(db_path)
    embedder = open_embedder(model, provider, no_detect, min_face)
    database.tag(embedder.sha256, embedder.artifact.model)
    embeddings = np.stack([one_face(embedder, path, pick) for path in collect_images(list(images))])
    database.add(name, embeddings)
    database.save()
    click.echo(f"enrolled {name} from {len(embeddings)} photo(s) in {database.path} "
               f"({len(database.people())} people)")


@faces.command("list")
@_db
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_people(db_path: str | None, as_json: bool) -> None:
    """The people enrolled, with how many embeddings each."""
    database = FaceDatabase.open(db_path, must_exist=True)
    people = database.people()
    if as_json:
        click.echo(json.dumps({"db": str(database.path), "model": database.model,
                               "weights_sha256": database.weights_sha256, "threshold": database.threshold,
                               "people": people}, indent=2))
        return
    for person, count in sorted(people.items()):
        click.echo(f"{person}  ({count} embedding{'s' if count != 1 else ''})")
    tau = f", calibrated threshold {database.threshold:.4g}" if database.threshold is not None else ""
    click.echo(f"({len(people)} people in {database.path}; {database.model}, weights "
               f"{str(database.weights_sha256)[:12]}…{tau})", err=True)


@faces.command("remove")
@click.argument("name")
@_db
def remove(name: str, db_path: str | None) -> None:
    """Forget NAME (every embedding of that person)."""
    database = FaceDatabase.open(db_path, must_exist=True)
    count = database.remove(name)
    database.save()
    click.echo(f"removed {name} ({count} embedding(s)) from {database.path}")


@faces.command("calibrate")
@click.argument("folder", type=click.Path())
@_model
@_db
@_no_detect
@_min_face
@_provider
@click.option("--pick", type=click.Choice(["largest"]), default="largest", show_default=True,
              help="a photo with several faces: use the largest")
def calibrate(folder: str, model: str, db_path: str | None, no_detect: bool, min_face: int, provider: str,
              pick: str) -> None:
    """Choose tau on FOLDER (one sub-folder of photos per person) and store it in the database."""
    from zoo.runtime.images import collect_images
    from zoo.runtime.tasks.faces import best_threshold, squared_distances

    root = Path(folder)
    if not root.is_dir():
        raise ZooError(f"{root}: no such folder")
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(people) < 2:
        raise ZooError(f"{root}: needs one sub-folder per person, at least two people")
    embedder = open_embedder(model, provider, no_detect, min_face)
    database = FaceDatabase.open(db_path)
    database.tag(embedder.sha256, embedder.artifact.model)
    embeddings, labels = [], []
    for index, person in enumerate(people):
        for path in collect_images([str(person)]):
            embeddings.append(one_face(embedder, path, pick))
            labels.append(index)
    labels_arr = np.asarray(labels)
    i, j = np.triu_indices(len(labels_arr), 1)
    same = labels_arr[i] == labels_arr[j]
    if not same.any():
        raise ZooError(f"{root}: needs at least one person with two photos (same-person pairs)")
    dist = squared_distances(np.stack(embeddings), np.stack(embeddings))[i, j]
    tau, accuracy = best_threshold(dist, same)
    database.threshold = tau
    database.calibration = {"folder": str(root.resolve()), "pairs": int(len(same)), "same": int(same.sum()),
                            "accuracy": accuracy}
    database.save()
    click.echo(f"threshold {tau:.4f}: pair accuracy {accuracy:.1%} on {len(same)} pairs ({int(same.sum())} same, "
               f"{int((~same).sum())} different) of {len(labels)} photos of {len(people)} people; "
               f"stored in {database.path}")
