"""Tutorial 2: show progress while the answer streams."""

from pathlib import Path

import promptkit
from promptkit import ChunkType

PACK = Path(__file__).with_name("hello.pack.json")

with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}) as conv:
    char_count = 0
    for chunk_count, chunk in enumerate(conv.stream("Tell me about AI")):
        if chunk.error is not None:
            break
        if chunk.type is ChunkType.DONE:
            response = chunk.response
            assert response is not None
            ttft = response.time_to_first_token or 0.0
            print(f"\n\n[Complete - {char_count} characters in {chunk_count} chunks,"
                  f" first token after {ttft:.2f} s]")
            break
        print(chunk.text, end="", flush=True)
        char_count += len(chunk.text)
