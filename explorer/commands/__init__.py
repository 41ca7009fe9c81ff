"""Sub-commands of ``explorer``; each module is discovered by :mod:`explorer.cli`."""
