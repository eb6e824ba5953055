"""Tutorial 3: a weather assistant. The model calls your handlers; the loop is automatic."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promptkit
from promptkit import ChunkType

PACK = Path(__file__).with_name("tools.pack.json")

with promptkit.open(PACK, "assistant") as conv:

    @conv.tool
    def get_time(args: dict[str, Any]) -> dict[str, str]:
        now = datetime.now(UTC)
        return {"time": now.strftime("%H:%M:%S"), "timezone": args.get("timezone", "UTC"),
                "date": now.strftime("%Y-%m-%d")}

    def get_weather(args: dict[str, Any]) -> dict[str, Any]:
        # Simulated weather data
        return {"city": args["city"], "country": args.get("country", ""),
                "temperature": 22.5, "conditions": "Partly cloudy", "humidity": 65}

    conv.on_tool("get_weather", get_weather)

    for chunk in conv.stream("What's the weather in London?"):
        if chunk.type is ChunkType.TOOL_CALL and chunk.tool_call:
            print(f"[calling {chunk.tool_call.name}({chunk.tool_call.arguments})]")
        elif chunk.type is ChunkType.TOOL_RESULT and chunk.tool_result:
            print(f"[result: {chunk.tool_result.content}]")
        elif chunk.type is ChunkType.ERROR:
            print(f"[error: {chunk.error}]")
        print(chunk.text, end="", flush=True)
    print()
