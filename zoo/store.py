"""Weights on disk: the read-only ``weights/`` shipped with zoo and the user's store under
``$ZOO_HOME``. A model has several entries keyed by tag (as timm keys pretrained weights):
``shipped``, ``imported`` and one per training run (its run id, or the ``--tag`` it was given),
and one of them is *active*: the one used wherever ``NAME`` is given without ``@TAG``.

User store layout, per model::

    weights/NAME/active             the active tag (a one-line text file)
    weights/NAME/TAG/model.safetensors + manifest.json
    weights/NAME/.lock              the pid of the one process writing NAME's store

An entry is installed as one transaction: a staging folder beside the entries is filled (weights
and manifest) and renamed onto ``TAG`` in one step, so a crash leaves either the whole entry or
nothing, and never touches another entry. Writers of one model take the lock; readers never
block. Nothing installed is replaced: a tag that exists is refused. A manifest that cannot be
read makes its entry *broken* (shown as such) without hiding the others.

Shipped entries come from zoo's own ``weights/NAME/`` or, for a model whose spec declares
``weights="package:folder"``, from that folder of the plugin's installed package (found with
``importlib.resources``): the same layout, read-only, ``NAME@shipped``, verified by sha256. A
declared folder that is missing or unreadable is a broken entry whose message names the plugin
and its distribution, since reinstalling that package is the fix."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import ZooError

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
ACTIVE_FILE = "active"
LOCK_FILE = ".lock"
SHIPPED = "shipped"
#: the pseudo-tag of artifacts exported with --random-weights (never a store entry)
RANDOM = "random"
#: a user tag folder that holds the pre-tag layout (manifest directly in weights/NAME)
LEGACY = "legacy"
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STAGING = (".new-", ".removed-")
#: how long a writer waits for another writer of the same model before giving up
LOCK_WAIT_S = float(os.environ.get("ZOO_LOCK_WAIT", "30"))
#: manifests larger than this are refused unread (a manifest is a few kB)
MAX_MANIFEST_BYTES = 16 << 20


def _shipped_dir() -> Path:
    # Installed: zoo/weights is a package; from a source tree: ../weights.
    import zoo.weights

    return Path(zoo.weights.__file__).resolve().parent


def zoo_home() -> Path:
    env = os.environ.get("ZOO_HOME")
    if env:
        home = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        home = Path(user_data_dir("zoo"))
    if home.exists() and not home.is_dir():
        raise ZooError(f"ZOO_HOME {home} is not a folder; point ZOO_HOME at a folder zoo may write")
    return home


def user_weights_dir() -> Path:
    return zoo_home() / "weights"


def exports_dir() -> Path:
    return zoo_home() / "exports"


def runs_dir() -> Path:
    return zoo_home() / "runs"


def data_dir() -> Path:
    """Where datasets that no package installs are looked for when no ``--data`` is given
    (``$ZOO_DATA``, else ``$ZOO_HOME/data``), one sub-folder per dataset: ``mnist/``."""
    env = os.environ.get("ZOO_DATA")
    return Path(env).expanduser() if env else zoo_home() / "data"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"cannot create {path}: {exc.strerror or exc}") from exc


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    _mkdir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        raise ZooError(f"cannot write in {path.parent}: {exc.strerror or exc}") from exc
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


def crash_point(name: str) -> None:
    """Tests of crash safety set ``ZOO_CRASH_AT=NAME`` to end the process abruptly here."""
    if os.environ.get("ZOO_CRASH_AT") == name:
        os._exit(99)


# -- names -------------------------------------------------------------------------------------
def split_ref(ref: str) -> tuple[str, str | None]:
    """``"lenet5@shipped"`` -> ``("lenet5", "shipped")``; without ``@`` the tag is None."""
    name, sep, tag = ref.partition("@")
    if not sep:
        return ref, None
    if not TAG_RE.match(tag):
        raise ZooError(f"{ref!r}: a tag is 1-64 letters, digits and . _ - (e.g. {name}@shipped)")
    return name, tag


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag) or tag in (SHIPPED, RANDOM, LEGACY):
        raise ZooError(f"tag {tag!r}: use 1-64 letters, digits and . _ - (not {SHIPPED}, {RANDOM} or {LEGACY})")
    return tag


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    # the processes of one torchrun launch share their launcher, and so one run id
    pid = os.getppid() if int(os.environ.get("WORLD_SIZE", "1")) > 1 else os.getpid()
    return f"run-{stamp}-{pid % 100000:05d}"


# -- entries -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsEntry:
    model: str
    folder: Path
    manifest: dict[str, Any]
    shipped: bool
    tag: str = ""
    active: bool = False
    #: why the entry cannot be used (an unreadable manifest), or None
    broken: str | None = None
    #: for weights a plugin ships (``ModelSpec.weights``): the plugin and its distribution
    plugin: str = ""
    distribution: str = ""

    @property
    def file(self) -> Path:
        name = self.manifest.get("file", WEIGHTS_FILE)
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            name = WEIGHTS_FILE  # a manifest names a file in its own folder, nothing else
        return self.folder / name

    @property
    def where(self) -> str:
        return "shipped" if self.shipped else "user"

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.tag}"

    @property
    def owner(self) -> str:
        """Who shipped the entry, for messages: zoo itself, or the plugin and its distribution."""
        return f"plugin {self.plugin!r} (distribution {self.distribution})" if self.plugin else "zoo"

    @property
    def sha256(self) -> str:
        return str(self.manifest.get("sha256", ""))

    def verify(self) -> None:
        """Raise ZooError unless the weights file exists and matches the manifest's sha256."""
        if self.broken:
            raise ZooError(f"{self.ref} is broken: {self.broken}")
        owner = f" shipped by {self.owner}" if self.plugin else ""
        fix = f"reinstall {self.distribution}" if self.plugin else f"re-train or re-import {self.model}"
        if not self.file.is_file():
            raise ZooError(f"weights file {self.file} for {self.ref}{owner} is missing" + (f"; {fix}" if owner else ""))
        actual = sha256_file(self.file)
        if actual != self.manifest.get("sha256"):
            raise ZooError(
                f"weights file {self.file} for {self.ref}{owner} does not match its manifest "
                f"(sha256 {actual[:12]}…, manifest says {str(self.manifest.get('sha256'))[:12]}…); {fix}"
            )


def _read_entry(folder: Path, shipped: bool, model: str, tag: str) -> WeightsEntry | None:
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists() and not manifest_path.is_symlink():
        return None
    try:
        if not manifest_path.is_file():
            raise ValueError("not a plain file")
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES >> 20} MB")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        from zoo.runtime.meta import check_manifest

        check_manifest(manifest)
    except (OSError, ValueError, ZooError) as exc:
        reason = f"manifest {manifest_path} is unreadable ({exc})"
        return WeightsEntry(model, folder, {}, shipped, tag, broken=reason)
    return WeightsEntry(model, folder, manifest, shipped, tag)


def _model_dir(model: str, root: Path | None = None) -> Path:
    if not model or "/" in model or model.startswith(".") or "@" in model:
        raise ZooError(f"{model!r} is not a model name")
    return (root or user_weights_dir()) / model


def _user_entries(model: str) -> list[WeightsEntry]:
    folder = _model_dir(model)
    found: list[WeightsEntry] = []
    if not folder.is_dir():
        return found
    legacy = _read_entry(folder, False, model, LEGACY)
    if legacy is not None:
        found.append(legacy)
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith(".") or not sub.is_dir() or sub.is_symlink():
            continue
        entry = _read_entry(sub, False, model, sub.name)
        if entry is not None:
            found.append(entry)
    return found


def _declared_weights(model: str) -> tuple[str, str, str] | None:
    """``("package:folder", plugin, distribution)`` when the plugin that registered ``model``
    declares shipped weights (``ModelSpec.weights``); None otherwise."""
    from zoo.registry import registry

    reg = registry()
    spec = reg.models.get(model)
    if spec is None or not spec.weights:
        return None
    plugin = reg.owner.get(("model", model), "?")
    info = reg.plugins.get(plugin)
    return spec.weights, plugin, info.dist if info else "?"


def _resource_folder(ref: str) -> Path:
    """The folder ``"package:sub/folder"`` names, as a path on disk; ValueError with the reason."""
    package, _, sub = ref.partition(":")
    try:
        root = importlib.resources.files(package)
    except Exception as exc:  # the package itself cannot be imported
        raise ValueError(f"package {package!r} cannot be imported ({type(exc).__name__}: {exc})") from exc
    if not isinstance(root, Path):
        raise ValueError(f"package {package!r} is not installed as plain files (a zip?), so its weights cannot be read")
    return root.joinpath(*sub.split("/"))


def _plugin_entry(model: str, ref: str, plugin: str, distribution: str) -> WeightsEntry:
    """The shipped entry a plugin declares, or a broken one that says what is wrong and whose."""
    blank = WeightsEntry(model, Path(ref.partition(":")[2]), {}, True, SHIPPED, plugin=plugin,
                         distribution=distribution)
    owner, declares = blank.owner, f"declares weights {ref!r} for {model}"
    try:
        folder = _resource_folder(ref)
    except ValueError as exc:
        return replace(blank, broken=f"{owner} {declares}, but {exc}")
    entry = _read_entry(folder, True, model, SHIPPED) if folder.is_dir() and not folder.is_symlink() else None
    if entry is None:
        return replace(blank, folder=folder, broken=f"{owner} {declares}, but {folder} holds no {MANIFEST_FILE}; "
                                                    f"reinstall {distribution} with its package data")
    entry = replace(entry, plugin=plugin, distribution=distribution)
    if entry.broken:
        return replace(entry, broken=f"{owner} ships weights whose {entry.broken}")
    if entry.manifest.get("model", model) != model:
        return replace(entry, manifest={}, broken=f"{owner} {declares}, but their manifest is for "
                                                  f"{entry.manifest.get('model')!r}")
    return entry


def _shipped_entry(model: str) -> WeightsEntry | None:
    declared = _declared_weights(model)
    if declared is not None:
        return _plugin_entry(model, *declared)
    return _read_entry(_shipped_dir() / model, True, model, SHIPPED)


def _active_tag(model: str) -> str | None:
    path = _model_dir(model) / ACTIVE_FILE
    try:
        tag = path.read_text(encoding="utf-8").strip()[:80] if path.is_file() else None
    except OSError:
        return None
    return tag if tag and TAG_RE.match(tag) else None


def model_entries(model: str) -> list[WeightsEntry]:
    """Every entry of ``model`` (user entries by tag, then the shipped one), the active one marked."""
    candidates = _user_entries(model)
    shipped = _shipped_entry(model)
    if shipped is not None:
        candidates.append(shipped)
    if not candidates:
        return []
    tags = {e.tag: e for e in candidates}
    active = _active_tag(model)
    if active not in tags:
        # no (or a stale) pointer: weights of the pre-tag layout (they overrode the shipped ones
        # then, and still do), else the shipped entry, else the newest user entry
        usable = [e for e in candidates if not e.broken]
        legacy = tags.get(LEGACY)
        pick = legacy if legacy is not None and not legacy.broken else \
            shipped if shipped is not None and not shipped.broken else \
            max(usable, key=lambda e: str(e.manifest.get("created", ""))) if usable else None
        active = pick.tag if pick else None
    return [replace(e, active=e.tag == active) for e in candidates]


def _models() -> list[str]:
    from zoo.registry import registry

    names: set[str] = {spec.name for spec in registry().models.values() if spec.weights}
    for root in (user_weights_dir(), _shipped_dir()):
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    return sorted(names)


def entries() -> list[WeightsEntry]:
    """Every entry of every model."""
    return [e for model in _models() for e in model_entries(model)]


def find(ref: str) -> WeightsEntry | None:
    """``NAME`` (the active entry) or ``NAME@TAG``; None when there is no such entry."""
    model, tag = split_ref(ref)
    all_entries = model_entries(model)
    for entry in all_entries:
        if (entry.tag == tag) if tag else entry.active:
            return entry
    return None


def require(ref: str) -> WeightsEntry:
    model, tag = split_ref(ref)
    entry = find(ref)
    if entry is None:
        if tag:
            known = ", ".join(e.tag for e in model_entries(model)) or "none"
            raise ZooError(f"no weights {model}@{tag} (tags of {model}: {known}; see `zoo weights list`)")
        broken = next((e for e in model_entries(model) if e.shipped and e.broken), None)
        raise ZooError(
            f"no weights for {model}: train them with `zoo train {model}` "
            f"or import a file with `zoo weights import {model} FILE`"
            + (f" ({broken.ref} is broken: {broken.broken})" if broken else "")
        )
    if entry.broken:
        raise ZooError(f"{entry.ref} is broken: {entry.broken}; `zoo weights use {model}@OTHER` or "
                       f"`zoo weights remove {entry.ref}`")
    return entry


# -- writing -------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def lock(model: str, root: Path | None = None, wait_s: float | None = None) -> Iterator[Path]:
    """Serialise the writers of one model's store with a lock file holding the writer's pid; a
    lock whose process is gone is taken over. Leftover staging folders of crashed writers are
    removed once the lock is held (no other writer can own them then)."""
    folder = _model_dir(model, root)
    _mkdir(folder)
    path = folder / LOCK_FILE
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and not _alive(holder) or not holder and time.time() - _mtime(path) > 10:
                _unlink(path)  # the writer died holding it
                continue
            if time.monotonic() > deadline:
                raise ZooError(f"{model}'s weights store is being written by another zoo process (pid {holder}); "
                               f"try again when it ends, or remove {path} if no such process runs")
            time.sleep(0.1)
            continue
        except OSError as exc:
            raise ZooError(f"cannot write in {folder}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    try:
        for stale in folder.iterdir():
            if stale.name.startswith(_STAGING) and stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        yield folder
    finally:
        _unlink(path)


def claim_run(folder: Path) -> Path:
    """Mark a run folder as trained by this process (``.running`` holds the pid); a second
    process training into the same folder is refused. A claim whose process is gone is taken."""
    path = folder / ".running"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and _alive(holder):
                raise ZooError(f"{folder} is being trained by another zoo process (pid {holder}); "
                               "give this run another --tag")
            _unlink(path)
            continue
        except OSError as exc:
            raise ZooError(f"cannot write in {folder}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return path
    raise ZooError(f"cannot claim {folder} for this run")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def free_tag(model: str, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ... whichever is not taken yet."""
    taken = {e.tag for e in model_entries(model)}
    tag, n = base, 1
    while tag in taken:
        n += 1
        tag = f"{base}-{n}"
    return tag


def install(model: str, weights_file: Path, manifest: dict[str, Any], dest_root: Path | None = None, *,
            tag: str | None = None, activate: bool = True) -> WeightsEntry:
    """Install a finished weights file and its manifest as the new entry ``model@tag``, in one
    transaction under the model's lock. ``tag`` defaults to ``imported`` for imported weights and
    to a fresh run id otherwise; a tag that exists is refused (nothing installed is replaced).
    With ``activate`` the entry becomes the active one."""
    with lock(model, dest_root) as folder:
        if tag is None:
            tag = free_tag(model, "imported" if manifest.get("imported_from") else new_run_id())
        check_tag(tag)
        final = folder / tag
        if final.exists() or any(e.tag == tag for e in model_entries(model)):
            raise ZooError(f"{model}@{tag} exists; choose another tag or `zoo weights remove {model}@{tag}` first")
        staging = Path(tempfile.mkdtemp(prefix=f".new-{tag}-", dir=folder))
        try:
            target = staging / WEIGHTS_FILE
            shutil.copyfile(weights_file, target)
            crash_point("install-copied")
            manifest = dict(manifest, model=model, file=WEIGHTS_FILE, sha256=sha256_file(target), tag=tag)
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            for path in (target, staging / MANIFEST_FILE):
                _fsync_file(path)
            os.chmod(staging, 0o777 & ~_umask())
            crash_point("install-staged")
            os.rename(staging, final)  # the one step that makes the entry appear
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        crash_point("install-renamed")
        if activate:
            atomic_write_text(folder / ACTIVE_FILE, tag + "\n")
    return WeightsEntry(model, final, manifest, False, tag, activate)


def use(ref: str) -> WeightsEntry:
    """Make ``NAME@TAG`` the active entry of NAME."""
    model, tag = split_ref(ref)
    if tag is None:
        raise ZooError(f"{ref!r}: name the entry to use as NAME@TAG (see `zoo weights list {model}`)")
    entry = require(ref)
    with lock(model) as folder:
        atomic_write_text(folder / ACTIVE_FILE, tag + "\n")
    return replace(entry, active=True)


def remove(ref: str) -> WeightsEntry:
    """Delete the user entry ``NAME@TAG``; the active entry and shipped weights are refused."""
    model, tag = split_ref(ref)
    if tag is None:
        raise ZooError(f"{ref!r}: name the entry to remove as NAME@TAG (see `zoo weights list {model}`)")
    entry = find(ref)
    if entry is None:
        require(ref)  # raises the message that names the known tags
    assert entry is not None
    if entry.shipped:
        raise ZooError(f"{ref} is shipped with {entry.owner} and read-only")
    if entry.active:
        others = [e.ref for e in model_entries(model) if not e.active and not e.broken]
        hint = f"`zoo weights use {others[0]}` first" if others else "it is the only entry"
        raise ZooError(f"{ref} is the active entry; {hint}")
    with lock(model) as folder:
        if entry.tag == LEGACY:
            for name in (MANIFEST_FILE, entry.file.name):
                _unlink(folder / name)
        else:
            doomed = folder / f".removed-{tag}-{os.getpid()}"
            os.rename(entry.folder, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    return entry


def clean_stale_temporaries(folder: Path, prefix: str = ".zoo-export-", older_than_s: float = 3600) -> int:
    """Remove ``prefix*`` folders in ``folder`` that a killed process left behind (only those
    older than ``older_than_s``, so that a concurrent export keeps its own)."""
    removed = 0
    try:
        children = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return 0
    now = time.time()
    for child in children:
        if child.name.startswith(prefix) and child.is_dir() and not child.is_symlink() \
                and now - _mtime(child) > older_than_s:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed


@dataclass
class Decision:
    """Whether a finished training run became the active entry, and why, in one sentence."""

    activated: bool
    reason: str
    previous: WeightsEntry | None = field(default=None)


def should_activate(model: str, metrics: dict[str, Any], metric: str, higher_is_better: bool,
                    dataset: str | None) -> Decision:
    """A new run becomes active only if it beats the active entry on the same dev metric."""
    current = find(model)
    if current is None or current.broken:
        return Decision(True, "no other usable weights were active", current)
    key = f"dev_{metric}"
    new, old = metrics.get(key), current.manifest.get("metrics", {}).get(key)
    if not isinstance(old, (int, float)) or current.manifest.get("dataset") != dataset:
        return Decision(False, f"the active {current.ref} has no {key} on {dataset} to compare with", current)
    if not isinstance(new, (int, float)):
        return Decision(False, f"this run has no {key}", current)
    better = new > old if higher_is_better else new < old
    if better:
        return Decision(True, f"{key} {new:.4f} beats the active {current.ref}'s {old:.4f}", current)
    return Decision(False, f"{key} {new:.4f} does not beat the active {current.ref}'s {old:.4f}", current)
