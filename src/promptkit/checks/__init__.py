"""Checks: the pack's ``validators`` (guardrails) and ``evals``, from one registry of check types.

``registry`` names every check type (Go names first, then aliases) with its parameter checks
and its function; ``builtin`` holds the content checks and ``scans`` the incremental forms of
``content_excludes`` and ``max_length`` that the turn engine's output guard runs while text
streams. ``guardrails`` compiles a prompt's validators into the engine's ``Guardrail`` objects;
``evals`` compiles evals, decides which run (triggers, deterministic sampling) and scores them;
``judge`` builds the ``llm_judge`` question and reads its verdict (the provider call itself is
made by the conversation layer). ``lint`` reports the same problems for ``promptkit validate``.

May import ``promptkit.engine`` and ``promptkit.pack`` (and the leaf utilities), never the
drivers, providers, transports or stores.
"""
