"""The built-in architecture families. Each is registered through the ``zoo.plugins``
entry-point group exactly as a third-party plugin is, and laid out as one should be: a package
whose ``__init__`` is the torch-free card (specs and hooks, all ``zoo list`` imports) and whose
``model`` module holds the network classes, torch imported at the top."""
