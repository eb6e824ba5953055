"""``promptkit send``: one message, the answer streamed to standard output (or as JSON lines).

The text is made terminal-safe (``_terminal``: no escape sequences or control characters)
unless ``--raw`` asks for the model's bytes as they are; ``--json`` escapes what a terminal
could act on, keeping the data unchanged. Errors never show a key.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from promptkit._errors import APIStatusError, PromptKitError
from promptkit._redact import redact
from promptkit.cli._session import Opened, error_line, open_from_args, report_error
from promptkit.cli._terminal import TerminalSanitizer, safe_json, safe_text
from promptkit.conversation.sync_driver import Stream
from promptkit.engine.chunks import ChunkType, StreamChunk

__all__ = ["chunk_to_json", "run_send"]


def error_to_json(error: PromptKitError) -> dict[str, Any]:
    message = error_line(error).partition(": ")[2]
    data: dict[str, Any] = {"type": type(error).__name__, "message": redact(message),
                            "retryable": bool(getattr(error, "retryable", False))}
    if isinstance(error, APIStatusError):
        data["status_code"] = error.status_code
    return data


def chunk_to_json(chunk: StreamChunk) -> dict[str, Any]:
    """One chunk as a JSON-able object: ``{"type": "text", "text": ...}`` and so on."""
    data: dict[str, Any] = {"type": chunk.type.value}
    if chunk.type is ChunkType.TEXT:
        data["text"] = chunk.text
    elif chunk.tool_call is not None:
        data["tool_call"] = chunk.tool_call.to_dict()
    elif chunk.tool_result is not None:
        data["tool_result"] = chunk.tool_result.to_dict()
    elif chunk.response is not None:
        data["response"] = chunk.response.to_dict()
    elif chunk.error is not None:
        data["error"] = error_to_json(chunk.error)
    elif chunk.validation is not None:
        data["validation"] = chunk.validation.to_dict()
    return data


def run_send(args: argparse.Namespace) -> int:
    message = sys.stdin.read() if args.message == "-" else args.message
    opened: Opened | None = None
    try:
        opened = open_from_args(args, notice=lambda text: print(text, end="",
                                                                file=sys.stderr))
        stream = opened.conversation.stream(message, timeout=args.timeout)
    except PromptKitError as exc:
        if args.json:
            print(safe_json({"type": "error", "error": error_to_json(exc)}), flush=True)
        return report_error(exc)
    try:
        status = _print_stream(stream, as_json=args.json, raw=args.raw)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    if stream.response is not None:
        opened.after_turn()
    return status


def _print_stream(stream: Stream, *, as_json: bool, raw: bool = False) -> int:
    status = 0
    safe = TerminalSanitizer()
    with stream:
        for chunk in stream:
            if as_json:
                print(safe_json(chunk_to_json(chunk)), flush=True)
            elif chunk.type is ChunkType.TEXT:
                sys.stdout.write(chunk.text if raw else safe.feed(chunk.text))
                sys.stdout.flush()
            elif chunk.type is ChunkType.VALIDATION and chunk.validation is not None:
                sys.stdout.write(f"\n[blocked by guardrail {chunk.validation.type}]\n")
            elif chunk.type is ChunkType.DONE:
                tail = safe.flush()
                if chunk.response is not None and chunk.response.finish_reason == "safety":
                    tail += chunk.response.text if raw else safe_text(chunk.response.text)
                sys.stdout.write(tail + "\n")
            if chunk.type is ChunkType.ERROR and chunk.error is not None:
                if not as_json:
                    sys.stdout.write(safe.flush() + "\n")
                status = report_error(chunk.error)
    return status
