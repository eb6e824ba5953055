"""The ``promptkit`` command-line interface."""
