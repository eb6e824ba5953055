"""Tutorial 2: an interactive streaming chat. Type 'quit' to exit."""

import sys
from pathlib import Path

import promptkit
from promptkit import ChunkType

PACK = Path(__file__).with_name("hello.pack.json")

with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}) as conv:
    print("Streaming chat ready! Type 'quit' to exit.")
    while True:
        print("\nYou: ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        message = line.strip()
        if message == "quit":
            break
        if not message:
            continue
        print("Assistant: ", end="")
        for chunk in conv.stream(message):
            if chunk.error is not None:
                print(f"\nError: {chunk.error}")
                break
            if chunk.type is ChunkType.DONE:
                print()
                break
            print(chunk.text, end="", flush=True)
