"""Tutorial 2: stream a response chunk by chunk."""

from pathlib import Path

import promptkit
from promptkit import ChunkType

PACK = Path(__file__).with_name("hello.pack.json")

with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}) as conv:
    print("Assistant: ", end="")
    for chunk in conv.stream("Tell me a short story"):
        if chunk.error is not None:
            print(f"\nError: {chunk.error}")
            break
        if chunk.type is ChunkType.DONE:
            print("\n[Done]")
            break
        print(chunk.text, end="", flush=True)
