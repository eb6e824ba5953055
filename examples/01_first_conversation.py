"""Tutorial 1: open a pack, send a message, read the response, keep talking."""

from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("hello.pack.json")

with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}) as conv:
    response = conv.send("Hello!")
    print("Assistant:", response.text)
    print(f"[{response.usage.input_tokens} in / {response.usage.output_tokens} out tokens,"
          f" cost {response.cost}, {response.duration:.2f} s]")

    # The conversation remembers earlier turns.
    print("Assistant:", conv.send("What is my name?").text)
    print(f"History: {len(conv.messages)} messages")
