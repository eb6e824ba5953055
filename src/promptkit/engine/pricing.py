"""Turn token usage into USD cost from a pricing table that is data, not code.

The bundled table (``_data/pricing.json``) says when it was checked. Models match by exact
name, then by the longest known name followed by ``-`` (``gpt-4o-mini-2024-07-18`` →
``gpt-4o-mini``), after
dropping a ``vendor/`` prefix (``openai/gpt-4o`` → ``gpt-4o``). Unknown models cost ``None``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources

from promptkit.engine.messages import Usage

__all__ = ["Price", "cost_of", "price_for", "set_price"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = ((usage.input_tokens - cached) * self.input + cached * cached_rate
                 + usage.output_tokens * self.output)
        return total / 1_000_000


_lock = threading.Lock()
_table: dict[str, Price] | None = None
_user: dict[str, Price] = {}
_memo: dict[str, Price | None] = {}  # model name → price, so a turn never rescans the table


def _load() -> dict[str, Price]:
    global _table
    if _table is None:
        raw = json.loads(resources.files("promptkit").joinpath("_data/pricing.json").read_text())
        _table = {name: Price(**entry) for name, entry in raw["models"].items()}
    return _table


def set_price(model: str, *, input: float, output: float, cached_input: float | None = None
              ) -> None:
    """Add or override the price of ``model`` (USD per million tokens) for this process.

        >>> promptkit.set_price("my-finetune", input=0.3, output=1.2)  # doctest: +SKIP
    """
    with _lock:
        _user[model.lower()] = Price(input=input, output=output, cached_input=cached_input)
        _memo.clear()


def price_for(model: str) -> Price | None:
    """The price of ``model``, or ``None`` if unknown."""
    with _lock:
        if model not in _memo:
            _memo[model] = _lookup(model)
        return _memo[model]


def _lookup(model: str) -> Price | None:
    """The price of ``model`` from the tables (the caller holds ``_lock``)."""
    name = model.lower().rsplit("/", 1)[-1]
    tables = (_user, _load())
    for table in tables:
        if name in table:
            return table[name]
    # the longest known name followed by "-": a user price wins only if at least as long
    candidates = [(len(k), -rank, table[k]) for rank, table in enumerate(tables)
                  for k in table if name.startswith(k + "-")]
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def cost_of(model: str, usage: Usage) -> float | None:
    """USD cost of ``usage`` on ``model``; ``None`` when the model's price is unknown."""
    price = price_for(model)
    return None if price is None else price.cost(usage)
