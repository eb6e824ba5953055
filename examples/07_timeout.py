"""Tutorial 2: a deadline for the whole turn, however slowly the tokens trickle in."""

from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("hello.pack.json")

timeouts = promptkit.Timeouts(connect=5, first_token=30, idle=10)
with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}, timeouts=timeouts) as conv:
    for chunk in conv.stream("Tell me a long story", timeout=30):
        if chunk.error is not None:
            kind = "turn deadline" if isinstance(chunk.error, promptkit.TurnTimeout) else "error"
            print(f"\n[{kind}: {chunk.error}]")
            break
        print(chunk.text, end="", flush=True)
    print()
