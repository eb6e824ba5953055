"""How far ContextPolicy's token estimate is from what providers reported, on the recorded
request/response pairs in tests/data/wire (the same cassette interaction on both sides).

    python benchmarks/context_estimate.py

The estimate walks the request body as the policy walks messages: four characters a token
for each string (ids, roles and signatures left out), four tokens a message, tool
definitions as JSON. Reported: the response's prompt_tokens / input_tokens / promptTokenCount.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from promptkit.engine.context import estimate_text_tokens

WIRE = Path(__file__).resolve().parents[1] / "tests" / "data" / "wire"
PAIRS = [
    ("anthropic/text.request.json", "anthropic/text.sse"),
    ("anthropic/tool-result-followup.request.json", "anthropic/text-after-tool-result.sse"),
    ("openai-chat/tool-call-then-usage.request.json", "openai-chat/tool-call-then-usage.sse"),
    ("openai-chat/tool-result-followup.request.json", "openai-chat/text-after-tool-result.sse"),
    ("openai-responses/function-call-with-reasoning.request.json",
     "openai-responses/function-call-with-reasoning.sse"),
    ("openai-responses/tool-result-followup.request.json",
     "openai-responses/text-after-tool-result-2025-03.sse"),
    ("gemini/tool-results-two-rounds.request.json", "gemini/text-after-tool-result.sse"),
    ("gemini/tool-result-followup.request.json", "gemini/function-call-second-turn.sse"),
]
REPORTED = re.compile(r'"(?:prompt_tokens|input_tokens|promptTokenCount)"\s*:\s*(\d+)')
SKIPPED = frozenset(("model", "role", "type", "id", "call_id", "tool_call_id", "status",
                     "thoughtSignature", "signature", "encrypted_content"))
SYSTEM = ("system", "instructions", "systemInstruction", "system_instruction")


def strings(value: Any, key: str = "") -> list[str]:
    if isinstance(value, str):
        return [] if key in SKIPPED else [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def estimate(body: dict[str, Any]) -> int:
    total = sum(estimate_text_tokens(json.dumps(t)) for t in body.get("tools") or ())
    for key in SYSTEM:
        total += sum(estimate_text_tokens(s) for s in strings(body.get(key)))
    messages = body.get("messages") or body.get("contents") or body.get("input") or []
    for message in [messages] if isinstance(messages, str) else messages:
        total += 4 + sum(estimate_text_tokens(s) for s in strings(message))
    return total


def main() -> None:
    for request, response in PAIRS:
        counts = [int(n) for n in REPORTED.findall((WIRE / response).read_text())]
        guess = estimate(json.loads((WIRE / request).read_text()))
        reported = max(counts)
        print(f"{request:60s} estimate {guess:5d} reported {reported:5d} "
              f"ratio {guess / reported:.2f}")


if __name__ == "__main__":
    main()
