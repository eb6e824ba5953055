"""Helpers for testing code that uses promptkit, without network access.

- :class:`MockResponses` scripts the ``mock`` provider (``promptkit.open(..., provider="mock",
  mock_responses=MockResponses(...))``), in PromptKit's mock-responses shape.
- :class:`FakeServer` is a real HTTP server on 127.0.0.1 that replays scripted :class:`Reply`
  objects (recorded SSE bytes, errors, drops, stalls): point ``base_url=`` at ``server.url``.
- :class:`MockTransport` / :class:`MockReply` answer requests in-process from a function.

Public API (``from promptkit.testing import FakeServer``). ``fake_server`` lives here; the mock
provider and transport live with the other providers and transports and are re-exported.
"""

from promptkit.providers.mock import MockResponses, MockTurn
from promptkit.testing.fake_server import FakeServer, RecordedRequest, Reply
from promptkit.transport.mock import MockReply, MockTransport

__all__ = [
    "FakeServer",
    "MockReply",
    "MockResponses",
    "MockTransport",
    "MockTurn",
    "RecordedRequest",
    "Reply",
]
