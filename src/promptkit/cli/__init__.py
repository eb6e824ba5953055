"""The ``promptkit`` command-line interface: chat, send, validate, inspect, sessions.

``main`` parses the command line and imports only the command it runs; ``_session`` opens a
conversation from the options. Built on the public API (``import promptkit``) plus the stores;
nothing below imports ``cli``.
"""
