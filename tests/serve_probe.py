"""A ``--setup`` function for the process tests: records which worker process opened which
conversation (a file ``<conversation id>.<pid>`` in ``$PROMPTKIT_PROBE_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def record(conversation: Any) -> None:
    Path(os.environ["PROMPTKIT_PROBE_DIR"], f"{conversation.id}.{os.getpid()}").touch()
