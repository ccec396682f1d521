"""The ``scratchnn`` command line: thin wrappers that parse, call a recipe and print."""
