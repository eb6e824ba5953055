"""MCP servers as tool providers: a real stdio server (tests/mcp_server_demo.py) end to end."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import promptkit
from promptkit.tools.mcp import (
    MCPServer,
    MCPServerError,
    MCPTimeoutError,
    MCPToolError,
    content_value,
    server_name,
)

from support import PACKS, Driver

DEMO = [sys.executable, str(Path(__file__).resolve().with_name("mcp_server_demo.py"))]
ASSISTANT = str(PACKS / "assistant.pack.json")
ADD_TURNS = {"turns": {1: {"tool_calls": [{"name": "mcp__demo__add",
                                           "arguments": {"a": 2, "b": 3}}]}, 2: "5"}}


def gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def closes_promptly(server: MCPServer) -> None:
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 5
    assert gone(server.pid)
    assert not any(t.name.startswith(f"promptkit-mcp-{server.name}")
                   for t in threading.enumerate() if not t.name.endswith("-stderr"))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MCPServer]]:
    """Three demo servers, started at once (each takes a second or two to import mcp)."""
    made = {"demo": MCPServer(DEMO, name="demo", timeout=1.0),
            "crashy": MCPServer(DEMO, name="crashy", timeout=20.0),
            "filtered": MCPServer(DEMO, allowed_tools=["add", "env", "slow"],
                                  env={"DEMO_VALUE": "from env"})}
    os.environ["PROMPTKIT_MCP_SECRET"] = "leak"  # not passed on: only the safe defaults + env
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(MCPServer.start, made.values()))
    finally:
        del os.environ["PROMPTKIT_MCP_SECRET"]
    yield made
    for server in made.values():
        server.close()


@pytest.fixture
def demo(servers: dict[str, MCPServer]) -> MCPServer:
    return servers["demo"]


# --- the server on its own ---------------------------------------------------------------


def test_tools_are_offered_with_prefixed_names(demo: MCPServer) -> None:
    tools = {name: (description, schema) for name, description, schema in demo.tools()}
    assert set(tools) == {f"mcp__demo__{t}" for t in
                          ("add", "echo", "env", "fail", "slow", "crash", "structured")}
    description, schema = tools["mcp__demo__add"]
    assert description == "Add two integers."
    assert schema["type"] == "object" and schema["required"] == ["a", "b"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert tools["mcp__demo__crash"][1]["properties"] == {}
    assert demo.running and demo.pid is not None and not gone(demo.pid)


def test_calls_return_the_content(demo: MCPServer) -> None:
    assert demo.handler("mcp__demo__add")({"a": 2, "b": 3}) == "5"
    assert demo.handler("echo")({"text": "héllo"}) == "héllo"  # the server's own name too
    assert demo.call("structured", {"city": "Paris"}).replace(" ", "").replace("\n", "") \
        == '{"city":"Paris","temp_c":21}'
    with pytest.raises(ValueError, match="offers no tool 'nope'"):
        demo.handler("nope")


def test_calls_from_many_threads_at_once(demo: MCPServer) -> None:
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        results[i] = demo.call("add", {"a": i, "b": 1})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: str(i + 1) for i in range(8)}


def test_is_error_result_raises_with_the_server_message(demo: MCPServer) -> None:
    with pytest.raises(MCPToolError, match="boom"):
        demo.call("fail", {"message": "boom"})
    with pytest.raises(promptkit.ToolError):  # an MCPError is a ToolError
        demo.call("no_such_tool", {})
    assert demo.call("echo", {"text": "ok"}) == "ok"


def test_slow_call_times_out_and_the_server_stays_usable(demo: MCPServer) -> None:
    started = time.monotonic()
    with pytest.raises(MCPTimeoutError, match=r"'slow' of server 'demo' did not answer within 1 s"):
        demo.handler("slow")({"seconds": 30})  # the server's timeout
    assert 0.9 < time.monotonic() - started < 3
    with pytest.raises(MCPTimeoutError, match=r"within 0\.3 s"):
        demo.call("slow", {"seconds": 30}, timeout=0.3)
    assert isinstance(MCPTimeoutError("x"), TimeoutError)
    assert demo.call("slow", {"seconds": 0.01}) == "slept 0.01"


def test_allowed_tools_env_and_close(servers: dict[str, MCPServer]) -> None:
    server = servers["filtered"]
    assert server.name == "mcp_server_demo"
    assert [name for name, _, _ in server.tools()] == [
        "mcp__mcp_server_demo__add", "mcp__mcp_server_demo__env", "mcp__mcp_server_demo__slow"]
    with pytest.raises(ValueError, match="offers no tool"):
        server.handler("echo")
    assert server.call("env", {"name": "DEMO_VALUE"}) == "from env"
    assert server.call("env", {"name": "PROMPTKIT_MCP_SECRET"}) == ""
    assert server.call("env", {"name": "PATH"}) != ""
    handler = server.handler("add")
    server.retain()  # a fork shares the server: the first release leaves it running
    server.release()
    assert server.running
    in_flight: list[BaseException] = []

    def slow_call() -> None:
        try:
            server.call("slow", {"seconds": 30})
        except BaseException as exc:
            in_flight.append(exc)

    waiter = threading.Thread(target=slow_call)
    waiter.start()
    time.sleep(0.2)
    closes_promptly(server)
    waiter.join(2)
    assert "was closed while tool 'slow' ran" in str(in_flight[0])
    server.close()  # idempotent
    server.release()
    with pytest.raises(MCPServerError, match="'mcp_server_demo' is closed"):
        handler({"a": 1, "b": 2})
    with pytest.raises(MCPServerError, match="already started"):
        server.start()


def test_unknown_allowed_tool_is_refused() -> None:
    server = MCPServer(DEMO, name="demo", allowed_tools=["add", "nope"])
    with pytest.raises(MCPServerError, match=r"has no tool \['nope'\]; its tools: \['add'\]"):
        server._select([{"name": "add", "inputSchema": {"type": "object"}}])


def test_server_crashing_mid_call(servers: dict[str, MCPServer]) -> None:
    server = servers["crashy"]
    in_flight: list[BaseException] = []

    def slow_call() -> None:
        try:
            server.call("slow", {"seconds": 30})
        except BaseException as exc:
            in_flight.append(exc)

    waiter = threading.Thread(target=slow_call)
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(MCPServerError) as caught:
        server.handler("mcp__crashy__crash")({})
    message = str(caught.value)
    assert message.startswith("MCP server 'crashy' exited")
    assert "crashing on purpose" in message  # the server's last stderr line
    waiter.join(5)
    assert not waiter.is_alive() and time.monotonic() - started < 5
    assert isinstance(in_flight[0], MCPServerError) and "'crashy' exited" in str(in_flight[0])
    with pytest.raises(MCPServerError, match=r"'crashy' exited .*unavailable"):
        server.call("echo", {"text": "x"})
    assert not server.running
    closes_promptly(server)


def test_bad_commands_fail_to_start_clearly() -> None:
    with pytest.raises(MCPServerError, match="'no-such-mcp-server-xyz' is not on PATH"):
        MCPServer(["no-such-mcp-server-xyz"]).start()
    exits = MCPServer([sys.executable, "-c", "import sys; sys.exit('bad config file')"],
                      name="broken")
    with pytest.raises(MCPServerError, match=r"'broken' failed to start.*bad config file"):
        exits.start()
    assert gone(exits.pid)
    mute = MCPServer([sys.executable, "-c", "import sys\nfor _ in sys.stdin: pass"],
                     name="mute", start_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(MCPServerError, match=r"'mute' did not answer initialize within 0\.5 s"):
        mute.start()
    assert time.monotonic() - started < 5
    assert gone(mute.pid)


def test_missing_mcp_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(ImportError, match=r"pip install 'promptkit-sdk\[mcp\]'"):
        MCPServer(DEMO).start()


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        MCPServer("python server.py")
    with pytest.raises(TypeError):
        MCPServer([])
    with pytest.raises(ValueError, match="may only use"):
        MCPServer(DEMO, name="bad name")
    with pytest.raises(ValueError, match="positive"):
        MCPServer(DEMO, timeout=0)
    with pytest.raises(MCPServerError, match="not started"):
        MCPServer(DEMO).tools()
    with pytest.raises(MCPServerError, match="not started"):
        MCPServer(DEMO).call("add")


@pytest.mark.parametrize(("command", "name"), [
    (["python3", "server.py"], "server"),
    ([sys.executable, "-u", "tests/mcp_server_demo.py"], "mcp_server_demo"),
    (["python", "-m", "acme.mcp_files"], "mcp_files"),
    (["npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "server-filesystem"),
    (["uvx", "mcp-server-git@1.2"], "mcp-server-git"),
    (["docker", "run", "-i", "--rm", "-e", "K=V", "mcp/fetch:latest"], "fetch"),
    (["/opt/bin/weather server.sh"], "weather_server"),
])
def test_server_name_from_command(command: list[str], name: str) -> None:
    assert server_name(command) == name


def test_content_value_shapes() -> None:
    assert content_value({"content": [{"type": "text", "text": "a"},
                                      {"type": "text", "text": "b"}]}) == "a\nb"
    assert content_value({"content": [], "structuredContent": {"t": 1}}) == {"t": 1}
    assert content_value({"content": [{"type": "image", "data": "QUJD",
                                       "mimeType": "image/png"}]}) \
        == "[image image/png]"
    assert content_value({"content": [{"type": "resource_link", "uri": "file:///b",
                                       "name": "b"}]}) == "[resource_link file:///b]"
    assert content_value({"content": [{"type": "resource", "resource": {
        "uri": "file:///a", "text": "body"}}]}) == "body"
    assert content_value({"content": []}) == ""
    with pytest.raises(MCPToolError, match="reported an error"):
        content_value({"content": [], "isError": True})


# --- through the tool loop -----------------------------------------------------------------


def test_tool_loop_calls_mcp_tools(driver: Driver, demo: MCPServer) -> None:
    script = {"turns": {1: {"tool_calls": [
        {"name": "mcp__demo__add", "arguments": {"a": "2", "b": 3}},  # coerced by the schema
        {"name": "mcp__demo__fail", "arguments": {"message": "no luck"}},
        {"name": "mcp__demo__add", "arguments": {"a": "two"}}]}, 2: "5"}}
    conv = driver.open(ASSISTANT, "plain", provider="mock", mock_responses=script)
    for name, entry in demo.registered_tools():
        conv._tools.add(name, entry)
    response = driver.send(conv, "add 2 and 3")
    assert response.text == "5"
    ok, failed, invalid = response.tool_results
    assert (ok.content, ok.is_error) == ("5", False)
    assert failed.is_error and "no luck" in failed.content
    assert invalid.is_error and "invalid arguments" in invalid.content
    assert demo.running  # the conversation does not own this server


# --- the public API (ConversationCore.add_mcp_server, wired by the lead) --------------------

wired = pytest.mark.skipif(not hasattr(promptkit.Conversation, "add_mcp_server"),
                           reason="wired by the lead")


@wired
def test_add_mcp_server_sync() -> None:
    conv = promptkit.open(ASSISTANT, "plain", provider="mock", mock_responses=ADD_TURNS)
    server = conv.add_mcp_server(command=DEMO, name="demo")
    response = conv.send("add 2 and 3")
    assert response.text == "5"
    assert [(r.name, r.content, r.is_error) for r in response.tool_results] == [
        ("mcp__demo__add", "5", False)]
    pid = server.pid
    conv.close()
    assert gone(pid)


@wired
def test_add_mcp_server_async() -> None:
    async def scenario() -> int | None:
        aconv = promptkit.open_async(ASSISTANT, "plain", provider="mock",
                                     mock_responses=ADD_TURNS)
        server = aconv.add_mcp_server(command=DEMO, name="demo")
        if inspect.isawaitable(server):
            server = await server
        response = await aconv.send("add 2 and 3")
        assert response.text == "5"
        assert [(r.name, r.content, r.is_error) for r in response.tool_results] == [
            ("mcp__demo__add", "5", False)]
        await aconv.aclose()
        return server.pid  # type: ignore[no-any-return]

    assert gone(asyncio.run(scenario()))
