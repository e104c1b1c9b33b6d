"""Discovers plugins through the ``zoo.plugins`` entry-point group and collects their specs.

Built-in families load through the same entry points as third-party packages. A plugin that
fails to import, raises in a hook or returns something invalid is recorded (``zoo plugins``
shows it) and every other plugin keeps working; ``ZOO_STRICT_PLUGINS=1`` turns those records
into errors for plugin authors. ``ZOO_LOAD_PLUGINS`` (comma list; empty = built-ins only)
limits which third-party plugins load.

Names are claims: a model name, an alias, a family and a family's default member belong to the
plugin that registered them first (built-ins load first), and a later claim on any of them is
refused with a message naming both plugins. A task's ``zoo run`` options are checked against the
command's own flags, against the types zoo knows and against the same option of other tasks.
"""

from __future__ import annotations

import difflib
import os
import traceback
from pathlib import Path
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from zoo import __version__ as zoo_version, hookspecs
from zoo.errors import PluginError, ZooError
from zoo.specs import DatasetSpec, ExporterSpec, ModelSpec, TaskSpec

GROUP = "zoo.plugins"
BUILTIN_DIST = "zoo"
#: the flags ``zoo run`` itself owns; a task option may not take one of them
RUN_FLAGS = frozenset({"provider", "json", "jsonl", "precision", "recursive", "threads", "help", "debug",
                       "version"})
OPTION_TYPES = frozenset({"int", "float", "str", "path", "flag"})
_CORE_DIR = Path(__file__).resolve().parent
_HINT = "start with ZOO_LOAD_PLUGINS= (built-ins only) to work without it"

_KINDS = {
    "zoo_models": ("model", ModelSpec),
    "zoo_datasets": ("dataset", DatasetSpec),
    "zoo_tasks": ("task", TaskSpec),
    "zoo_exporters": ("exporter", ExporterSpec),
}


@dataclass
class PluginInfo:
    name: str
    dist: str
    version: str
    builtin: bool
    provides: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Registry:
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    exporters: dict[str, ExporterSpec] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- lookups -----------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        """A model by name, alias or family (a family resolves to its default member)."""
        key = name.strip().lower()
        if key in self.models:
            return self.models[key]
        for spec in self.models.values():
            if key in spec.aliases:
                return spec
        members = [s for s in self.models.values() if s.family == key]
        defaults = [s for s in members if s.family_default]
        if len(defaults) == 1:
            return defaults[0]
        if len(members) == 1:
            return members[0]
        choices = sorted(
            set(self.models)
            | {s.family for s in self.models.values()}
            | {a for s in self.models.values() for a in s.aliases}
        )
        close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        if members:
            hint = f"; family {key!r} has several members: {', '.join(s.name for s in members)}"
        broken = [p.name for p in self.plugins.values() if p.errors]
        if broken:
            hint += f" (plugins with errors: {', '.join(broken)}; see `zoo plugins`)"
        raise ZooError(f"unknown model {name!r}{hint}")

    def task(self, name: str) -> TaskSpec:
        if name not in self.tasks:
            raise ZooError(f"no plugin provides task {name!r}; installed tasks: {', '.join(sorted(self.tasks))}")
        return self.tasks[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            close = difflib.get_close_matches(name, list(self.datasets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ZooError(f"unknown dataset {name!r}{hint}")
        return self.datasets[name]

    def exporter(self, name: str) -> ExporterSpec:
        if name not in self.exporters:
            raise ZooError(f"unknown export format {name!r}; available: {', '.join(sorted(self.exporters))}")
        return self.exporters[name]

    def errors(self) -> list[str]:
        return [f"{p.name}: {e}" for p in self.plugins.values() for e in p.errors]

    # -- collecting ----------------------------------------------------------------------------
    def _add(self, info: PluginInfo, hook: str, item: object) -> None:
        kind, cls = _KINDS[hook]
        if not isinstance(item, cls):
            raise PluginError(f"{hook} returned {type(item).__name__}, expected {cls.__name__}")
        item.validate()
        table = getattr(self, kind + "s")
        if item.name in table:
            raise PluginError(self._clash(kind, item.name, self.owner[(kind, item.name)], info.name))
        if isinstance(item, ModelSpec):
            self._check_model_claims(info, item)
        if isinstance(item, TaskSpec):
            self._check_task_options(item)
        table[item.name] = item
        self.owner[(kind, item.name)] = info.name
        info.provides.setdefault(kind, []).append(item.name)

    @staticmethod
    def _clash(what: str, name: str, first: str, second: str) -> str:
        return f"{what} {name!r} is claimed by both plugin {first!r} and plugin {second!r}; keeping {first!r}'s"

    def _check_model_claims(self, info: PluginInfo, spec: ModelSpec) -> None:
        """Model names, aliases and families are one namespace, since ``zoo run NAME`` resolves
        all three; a family's default member is a claim of its own."""
        families = {s.family: self.owner[("model", s.name)] for s in self.models.values()}
        aliases = {a: self.owner[("model", s.name)] for s in self.models.values() for a in s.aliases}
        if spec.name in aliases:
            raise PluginError(self._clash("name", spec.name, aliases[spec.name], info.name) + " (it is an alias)")
        if spec.name != spec.family and families.get(spec.name, info.name) != info.name:
            raise PluginError(self._clash("name", spec.name, families[spec.name], info.name) + " (it is a family)")
        for alias in spec.aliases:
            for table, what in ((self.models, "a model"), (aliases, "an alias"), (families, "a family")):
                if alias in table:
                    first = self.owner[("model", alias)] if table is self.models else table[alias]
                    raise PluginError(self._clash("alias", alias, first, info.name) + f" (it is {what})")
        if spec.family_default:
            default = next((s for s in self.models.values() if s.family == spec.family and s.family_default), None)
            if default is not None:
                raise PluginError(f"family {spec.family!r} already has a default member {default.name!r} "
                                  f"(plugin {self.owner[('model', default.name)]!r}); {spec.name!r} of plugin "
                                  f"{info.name!r} cannot be a second")

    def _check_task_options(self, task: TaskSpec) -> None:
        for option in task.options:
            if not isinstance(option.name, str) or not option.name:
                raise PluginError(f"task {task.name!r}: option name {option.name!r} is not valid")
            if option.name in RUN_FLAGS:
                raise PluginError(f"task {task.name!r}: option --{option.name} is a flag of `zoo run` itself; "
                                  f"choose another name")
            if option.type not in OPTION_TYPES:
                raise PluginError(f"task {task.name!r}: option --{option.name} has unknown type {option.type!r}; "
                                  f"known: {', '.join(sorted(OPTION_TYPES))}")
            for other in self.tasks.values():
                for theirs in other.options:
                    if theirs.name == option.name and theirs.type != option.type:
                        raise PluginError(f"task {task.name!r}: option --{option.name} is {option.type!r} but task "
                                          f"{other.name!r} (plugin {self.owner[('task', other.name)]!r}) declares it "
                                          f"{theirs.type!r}")

    def _check_tasks_exist(self) -> None:
        """A model whose task no plugin provides could never run: refuse it now."""
        for name, spec in list(self.models.items()):
            if spec.task not in self.tasks:
                owner = self.owner.pop(("model", name))
                del self.models[name]
                info = self.plugins[owner]
                info.provides["model"].remove(name)
                info.errors.append(f"model {name!r} needs task {spec.task!r}, which no plugin provides; "
                                   f"installed tasks: {', '.join(sorted(self.tasks))}")


def _strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "").strip().lower() not in ("", "0", "false", "no", "off")


def _selected(name: str, builtin: bool) -> bool:
    wanted = os.environ.get("ZOO_LOAD_PLUGINS")
    if builtin or wanted is None:
        return True
    return name in {w.strip() for w in wanted.split(",") if w.strip()}


def _own_frame(filename: str) -> bool:
    """A frame of the plugin's code, not of zoo's core, pluggy or the import machinery."""
    if filename.startswith("<") or f"{os.sep}pluggy{os.sep}" in filename or f"{os.sep}importlib{os.sep}" in filename:
        return False
    return Path(filename).resolve().parent != _CORE_DIR


def _describe(exc: BaseException) -> str:
    """The error and the place in the plugin's own file that raised it."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    own = [f for f in frames if _own_frame(f.filename)]
    last = (own or frames)[-1:]
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _defined_at(function) -> str:
    code = getattr(function, "__code__", None)
    return f" (returned by {code.co_filename}:{code.co_firstlineno})" if code else ""


def _misspelt_hooks(plugin) -> list[str]:
    """Functions marked ``@zoo.hookimpl`` whose name is no hook: pluggy would ignore them."""
    marker = f"{hookspecs.PROJECT}_impl"
    return sorted(name for name in dir(plugin)
                  if hasattr(getattr(plugin, name, None), marker) and not hasattr(hookspecs, name))


def load_registry(strict: bool | None = None) -> Registry:
    """Load every selected plugin once, isolating failures plugin by plugin. ``strict`` (default:
    ``ZOO_STRICT_PLUGINS``) turns the first plugin error into a PluginError."""
    reg = Registry()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    strict = _strict() if strict is None else strict
    seen: set[tuple[str, str]] = set()

    def record(info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.errors.append(message)
        if strict:
            raise PluginError(f"plugin {info.name!r}: {message}") from exc

    # Built-ins first so that a third party cannot shadow them by load order.
    eps = sorted(
        entry_points(group=GROUP),
        key=lambda ep: (getattr(ep.dist, "name", "") != BUILTIN_DIST, ep.name),
    )
    for ep in eps:
        dist = getattr(ep.dist, "name", "?") or "?"
        # A venv whose lib64 links to lib lists every distribution twice.
        if (dist, ep.name) in seen:
            continue
        seen.add((dist, ep.name))
        builtin = dist == BUILTIN_DIST
        if not _selected(ep.name, builtin):
            continue
        name = ep.name if builtin or ep.name not in reg.plugins else f"{dist}:{ep.name}"
        info = PluginInfo(name, dist, getattr(ep.dist, "version", "?") or "?", builtin)
        reg.plugins[name] = info
        try:
            plugin = ep.load()
            wanted = getattr(plugin, "ZOO_API_VERSION", hookspecs.API_VERSION)
            if not isinstance(wanted, int) or wanted > hookspecs.API_VERSION:
                raise PluginError(f"needs zoo plugin API version {wanted}, this zoo {zoo_version} has "
                                  f"{hookspecs.API_VERSION}; upgrade zoo")
            pm.register(plugin, name=name)
        except BaseException as exc:  # sys.exit() or KeyboardInterrupt at import must not stop zoo either
            hint = "" if builtin else f"; {_HINT}"
            record(info, f"failed to load: {_describe(exc)}{hint}", exc)
            continue
        for hook in _misspelt_hooks(plugin):
            record(info, f"{hook} is marked @zoo.hookimpl but is not a zoo hook (known: {', '.join(_KINDS)})")

    for hook in _KINDS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            info = reg.plugins[impl.plugin_name]
            try:
                items = impl.function()
                if not isinstance(items, (list, tuple)):
                    raise PluginError(f"{hook} must return a list, got {type(items).__name__}")
            except BaseException as exc:
                hint = "" if info.builtin else f"; {_HINT}"
                record(info, f"{hook} raised {_describe(exc)}{hint}", exc)
                continue
            for item in items:
                try:
                    reg._add(info, hook, item)
                except Exception as exc:  # a spec that cannot even be validated is refused like an invalid one
                    message = str(exc) if isinstance(exc, (PluginError, ValueError)) else _describe(exc)
                    record(info, f"{hook}: {message}{_defined_at(impl.function)}", exc)
    reg._check_tasks_exist()
    if strict and reg.errors():
        raise PluginError(reg.errors()[0])
    return reg


@lru_cache(maxsize=2)
def registry(strict: bool | None = None) -> Registry:
    return load_registry(strict)
