"""Tutorial 2: handle errors. Each failure is a typed exception, delivered in an ERROR chunk."""

from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("hello.pack.json")

# Problems found before any network call raise at once, naming what to fix.
try:
    promptkit.open(PACK, "chat", variables={"user_name": "Ada"}).stream("hi", timeout=-1)
except ValueError as exc:
    print(f"[Bad argument: {exc}]")

conv = promptkit.open(PACK, "chat")  # user_name is required but not set
try:
    conv.stream("Hello")
except promptkit.MissingVariableError as exc:
    print(f"[Missing variable: {', '.join(exc.names)}]")
conv.set_var("user_name", "Ada")

# Failures during the turn arrive as one ERROR chunk; nothing follows it.
for chunk in conv.stream("Generate content"):
    if chunk.error is not None:
        if isinstance(chunk.error, TimeoutError):
            print("\n[Timeout - response truncated]")
        elif isinstance(chunk.error, promptkit.RateLimitError):
            print(f"\n[Rate limited, retryable={chunk.error.retryable}]")
        elif isinstance(chunk.error, promptkit.StreamInterruptedError):
            print(f"\n[Interrupted after: {chunk.error.partial_text!r}]")
        else:
            print(f"\n[Error: {chunk.error}]")
        break
    print(chunk.text, end="", flush=True)
print()
