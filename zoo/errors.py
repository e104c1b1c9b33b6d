"""The one exception type the CLI turns into a single line on stderr and a non-zero exit."""


class ZooError(Exception):
    """An error a person can act on; its message is the whole story."""

    exit_code = 2


class PluginError(ZooError):
    """A plugin failed to import, raised in a hook, or returned something invalid."""
