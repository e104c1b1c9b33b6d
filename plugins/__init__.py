"""The built-in architecture families. Each module is registered through the ``zoo.plugins``
entry-point group exactly as a third-party plugin is."""
