"""The public plugin API. A plugin is a module (or object) named by an entry point in the
``zoo.plugins`` group that implements any of these hooks with ``@zoo.hookimpl``.

Each hook returns a list of specs. API_VERSION changes when a hook's contract changes; a plugin
module may set ``ZOO_API_VERSION = N`` to say which version it was written against, and is
refused (with a message) by an older zoo.
"""

from __future__ import annotations

import pluggy

from zoo.specs import DatasetSpec, ExporterSpec, ModelSpec, TaskSpec

API_VERSION = 1
PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_models() -> list[ModelSpec]:
    """Return the architectures this plugin provides."""


@hookspec
def zoo_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides."""


@hookspec
def zoo_tasks() -> list[TaskSpec]:
    """Return the tasks (pre/post-processing, metric, ``zoo run`` behaviour) this plugin provides."""


@hookspec
def zoo_exporters() -> list[ExporterSpec]:
    """Return the export formats this plugin provides."""
