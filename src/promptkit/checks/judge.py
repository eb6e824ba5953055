"""``llm_judge``: the question put to the judge model, and a tolerant reading of its verdict.

The conversation layer makes the call (``promptkit.conversation.evaluating``); this module is
pure. The judge is asked for ``{"score": <0..1>, "reason": "..."}``; the reply is read
tolerantly (a code fence, prose around the object, ``"passed"`` instead of a score, a score on
a 0–10 or 0–100 scale); anything else is a failed eval whose message says what was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from promptkit.checks.types import CheckInput, InvalidParams, Outcome, UnusableParams

__all__ = ["JUDGE_SYSTEM", "judge_question", "parse_verdict", "prepare_judge"]

DEFAULT_PASSING_SCORE = 0.5
JUDGE_SYSTEM = (
    "You are an impartial evaluator of an AI assistant's answers. Judge only against the "
    "criteria you are given. Reply with a single JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one short sentence>"}.'
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{\s*(response|output|input|criteria|conversation)\s*\}\}")


def prepare_judge(params: Mapping[str, Any]) -> Mapping[str, Any]:
    criteria = params.get("criteria")
    prompt = params.get("judge_prompt") or params.get("prompt")
    if not criteria and not prompt:
        raise UnusableParams("needs `criteria` or `judge_prompt`")
    passing = params.get("passing_score", params.get("min_score", DEFAULT_PASSING_SCORE))
    if isinstance(passing, bool) or not isinstance(passing, int | float):
        raise InvalidParams(f"passing_score must be a number, not {passing!r}")
    return {"criteria": "" if criteria is None else str(criteria),
            "judge_prompt": "" if prompt is None else str(prompt),
            "passing_score": _normalised(float(passing))}


def _transcript(data: CheckInput) -> str:
    lines = [f"{m.role}: {m.text}" for m in data.messages if m.role in ("user", "assistant")
             and m.text]
    return "\n".join(lines)


def _last_user(data: CheckInput) -> str:
    return next((m.text for m in reversed(data.messages) if m.role == "user"), "")


def judge_question(config: Mapping[str, Any], data: CheckInput) -> str:
    """The user message sent to the judge for one answer (or one session)."""
    values = {"response": data.text, "output": data.text, "input": _last_user(data),
              "criteria": config["criteria"], "conversation": _transcript(data)}
    if config["judge_prompt"]:
        question = _PLACEHOLDER.sub(lambda m: values[m.group(1)], config["judge_prompt"])
        if question == config["judge_prompt"]:  # no placeholders: append what to judge
            question += f"\n\nAnswer to judge:\n{data.text}"
        return question
    return (f"Criteria:\n{config['criteria']}\n\nUser message:\n{values['input']}\n\n"
            f"Answer to judge:\n{data.text}")


def _normalised(score: float) -> float:
    if score > 10:
        return score / 100
    if score > 1:
        return score / 10
    return score


def parse_verdict(reply: str, config: Mapping[str, Any]) -> Outcome:
    """The judge's verdict as an Outcome; a reply with no usable verdict fails, saying why."""
    verdict: Any = None
    candidates = [reply.strip()]
    found = _OBJECT.search(reply)
    if found is not None:
        candidates.append(found.group(0))
    for candidate in candidates:
        try:
            verdict = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(verdict, Mapping):
        return Outcome(False, None, f"malformed judge verdict (no JSON object): {reply[:200]!r}")
    reason = str(verdict.get("reason") or verdict.get("explanation") or "")
    score = verdict.get("score", verdict.get("rating"))
    passing = float(config["passing_score"])
    if isinstance(score, str):
        try:
            score = float(score)
        except ValueError:
            score = None
    if isinstance(score, int | float) and not isinstance(score, bool):
        value = _normalised(float(score))
        if not 0.0 <= value <= 1.0:
            return Outcome(False, None, f"malformed judge verdict (score {score!r} out of range)")
        return Outcome(value >= passing, value, reason)
    passed = verdict.get("passed", verdict.get("pass"))
    if isinstance(passed, bool):
        return Outcome(passed, 1.0 if passed else 0.0, reason)
    return Outcome(False, None, f"malformed judge verdict (no numeric score): {reply[:200]!r}")
