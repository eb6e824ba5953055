"""The asyncio API: the same chunks and semantics, awaited."""

import asyncio
from pathlib import Path

import promptkit

PACK = Path(__file__).with_name("hello.pack.json")


async def main() -> None:
    async with promptkit.open_async(PACK, "chat", variables={"user_name": "Ada"}) as conv:
        async with conv.stream("Tell me a short story") as stream:
            async for chunk in stream:
                print(chunk.text, end="", flush=True)
        print()
        response = await conv.send("Thanks!")
        print(response.text, f"({response.usage.output_tokens} tokens)")


asyncio.run(main())
