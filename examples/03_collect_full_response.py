"""Tutorial 2: show text as it arrives and keep the whole answer."""

from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("hello.pack.json")

with promptkit.open(PACK, "chat", variables={"user_name": "Ada"}) as conv:
    full_text = ""
    with conv.stream("Write a poem") as stream:
        for chunk in stream:
            if chunk.error is not None:
                print(f"Error: {chunk.error}")
                break
            print(chunk.text, end="", flush=True)  # real-time display
            full_text += chunk.text  # collect for later
    print(f"\n\nTotal length: {len(full_text)} characters")
    if stream.response is not None:  # the full Response is there after DONE
        assert stream.response.text == full_text
        print(f"Tokens: {stream.response.usage.total_tokens}")
