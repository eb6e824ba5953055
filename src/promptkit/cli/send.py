"""``promptkit send``: one message, the answer streamed to standard output (or as JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from promptkit._errors import APIStatusError, PromptKitError
from promptkit.cli._session import open_from_args, report_error
from promptkit.conversation.sync_driver import Stream
from promptkit.engine.chunks import ChunkType, Response, StreamChunk

__all__ = ["chunk_to_json", "run_send"]


def response_to_json(response: Response) -> dict[str, Any]:
    return {
        "text": response.text,
        "finish_reason": response.finish_reason,
        "usage": response.usage.to_dict(),
        "cost": response.cost,
        "model": response.model,
        "provider": response.provider,
        "duration": round(response.duration, 6),
        "time_to_first_token": response.time_to_first_token,
        "tool_calls": [call.to_dict() for call in response.tool_calls],
        **({"validations": [v.to_dict() for v in response.validations]}
           if response.validations else {}),
    }


def error_to_json(error: PromptKitError) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error),
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
        data["response"] = response_to_json(chunk.response)
    elif chunk.error is not None:
        data["error"] = error_to_json(chunk.error)
    elif chunk.validation is not None:
        data["validation"] = chunk.validation.to_dict()
    return data


def run_send(args: argparse.Namespace) -> int:
    message = sys.stdin.read() if args.message == "-" else args.message
    try:
        conversation = open_from_args(args, notice=lambda text: print(text, end="",
                                                                      file=sys.stderr))
        stream = conversation.stream(message, timeout=args.timeout)
    except PromptKitError as exc:
        return report_error(exc)
    try:
        return _print_stream(stream, as_json=args.json)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _print_stream(stream: Stream, *, as_json: bool) -> int:
    status = 0
    with stream:
        for chunk in stream:
            if as_json:
                print(json.dumps(chunk_to_json(chunk), ensure_ascii=False), flush=True)
            elif chunk.type is ChunkType.TEXT:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            elif chunk.type is ChunkType.VALIDATION and chunk.validation is not None:
                sys.stdout.write(f"\n[blocked by guardrail {chunk.validation.type}]\n")
            elif chunk.type is ChunkType.DONE:
                if chunk.response is not None and chunk.response.finish_reason == "safety":
                    sys.stdout.write(chunk.response.text)
                sys.stdout.write("\n")
            if chunk.type is ChunkType.ERROR and chunk.error is not None:
                if not as_json:
                    sys.stdout.write("\n")
                status = report_error(chunk.error)
    return status
