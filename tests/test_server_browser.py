"""The chat page in real Chromium (headless, offline; Selenium with the system chromedriver):
streaming, Stop mid-stream, reload resumes, tool calls inline, required variables enforced,
no console errors, and model output holding HTML shown as text and never run."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptkit.server import create_app

from serve_support import HELLO, TOOLS, WEATHER, LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

LONG = " ".join(f"word{i}" for i in range(60))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="promptkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions",
                 "--disable-default-apps", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Any, timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)


def page_state(driver: Any) -> str:
    return str(driver.execute_script("return document.body.dataset.state"))


def open_page(driver: Any, url: str) -> None:
    driver.get_log("browser")  # drop what earlier tests logged
    driver.get(url)
    wait(driver, lambda d: page_state(d) == "idle")


def send(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "input")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def assistant_texts(driver: Any) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")]


def console_errors(driver: Any) -> list[Any]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def fill_name(driver: Any, name: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, "#vars input[name=user_name]")
    field.clear()
    field.send_keys(name)


def stored(url: str, conversation: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v1/conversations/{conversation}") as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def conversation_of(driver: Any) -> str:
    return str(driver.execute_script(
        "return new URL(location.href).searchParams.get('c') || ''"))


def test_stream_stop_and_reload_with_no_console_errors(browser: Any) -> None:
    paced = {"defaultResponse": LONG, "delay": 0.04}
    with LiveServer(create_app(HELLO, provider="mock", mock_responses=paced)) as live:
        open_page(browser, live.url + "/")
        # a required variable left empty: nothing is created
        send(browser, "Hello")
        wait(browser, lambda d: page_state(d) == "idle")
        assert conversation_of(browser) == ""
        assert browser.find_elements(By.CSS_SELECTOR, "#log .msg") == []

        fill_name(browser, "Ada")
        send(browser, "Hello")
        wait(browser, lambda d: page_state(d) == "streaming")
        partial = wait(browser, lambda d: (t := assistant_texts(d)) and t[-1] and t[-1])
        assert 0 < len(partial) < len(LONG)  # shown token by token, before the end
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .stats"))
        assert assistant_texts(browser) == [LONG]
        stats = browser.find_element(By.CSS_SELECTOR, "#log .stats").text
        assert "in" in stats and "out" in stats and "TTFT" in stats and "$" in stats
        conversation = conversation_of(browser)
        assert len(conversation) == 32

        # Stop mid-stream: the reply stays partial and the server commits nothing
        send(browser, "Tell me more")
        wait(browser, lambda d: len(assistant_texts(d)) == 2 and len(assistant_texts(d)[1]) > 5)
        browser.find_element(By.ID, "stop").click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .msg.assistant.stopped"))
        stopped = assistant_texts(browser)[1]
        assert 0 < len(stopped) < len(LONG)
        time.sleep(0.3)
        assert assistant_texts(browser)[1] == stopped  # nothing arrives after Stop
        history = stored(live.url, conversation)["messages"]
        assert [m["text"] for m in history] == ["Hello", LONG]
        # the server ended that turn: the next message is accepted at once (no 409)
        send(browser, "Third")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log .stats")) == 2)

        # reload: the history comes back from the URL
        browser.refresh()
        wait(browser, lambda d: page_state(d) == "idle")
        users = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#log .msg.user")]
        assert users == ["Hello", "Third"]
        assert assistant_texts(browser) == [LONG, LONG]
        assert conversation_of(browser) == conversation
        assert console_errors(browser) == []

        # New conversation: a fresh transcript and URL
        browser.find_element(By.ID, "new").click()
        assert conversation_of(browser) == ""
        assert browser.find_elements(By.CSS_SELECTOR, "#log .msg") == []
        assert console_errors(browser) == []


XSS = ('<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
       '<b onclick="x()">bold</b>')


def test_html_in_model_output_is_shown_as_text_and_never_runs(browser: Any) -> None:
    with LiveServer(create_app(HELLO, provider="mock",
                               mock_responses={"defaultResponse": XSS})) as live:
        open_page(browser, live.url + "/")
        fill_name(browser, '<img src=y onerror="window.__pwned=3">')
        send(browser, "<script>window.__pwned=4</script>")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .stats"))
        for _ in range(2):  # streamed, then rendered from the history after a reload
            assert assistant_texts(browser) == [XSS]
            user = browser.find_element(By.CSS_SELECTOR, "#log .msg.user").text
            assert user == "<script>window.__pwned=4</script>"
            log = browser.find_element(By.ID, "log")
            assert log.find_elements(By.CSS_SELECTOR, "img, script, b") == []
            assert browser.execute_script("return window.__pwned") is None
            browser.refresh()
            wait(browser, lambda d: page_state(d) == "idle" and assistant_texts(d))
        assert console_errors(browser) == []


def test_tool_calls_and_results_are_shown_inline(browser: Any) -> None:
    def setup(conversation: Any) -> None:
        conversation.on_tool("get_weather", lambda args: {"city": args["city"], "temp_c": 22.5})
        conversation.on_tool("get_time", lambda args: {"time": "12:00"})

    app = create_app(TOOLS, provider="mock", mock_responses=str(WEATHER), setup=setup)
    with LiveServer(app) as live:
        open_page(browser, live.url + "/")
        send(browser, "Weather in London?")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#log .stats"))
        call = browser.find_element(By.CSS_SELECTOR, "#log .tool.call").text
        result = browser.find_element(By.CSS_SELECTOR, "#log .tool.result").text
        assert call.startswith("→ get_weather(") and '"London"' in call
        assert result.startswith("← get_weather:") and "22.5" in result
        assert assistant_texts(browser)[-1] == "It's currently 22.5°C and partly cloudy in London."
        browser.refresh()
        wait(browser, lambda d: page_state(d) == "idle" and d.find_elements(
            By.CSS_SELECTOR, "#log .tool.result"))
        assert console_errors(browser) == []


def test_a_guardrail_block_replaces_the_reply_and_unknown_chunks_are_ignored(browser: Any
                                                                           ) -> None:
    """The page's chunk handling, fed the native stream's JSON directly (a guardrail-blocked
    reply: text, then a ``validation`` chunk, then DONE with the replacement)."""
    with LiveServer(create_app(HELLO, provider="mock")) as live:
        open_page(browser, live.url + "/")
        browser.execute_script("""
            const turn = new Turn();
            turn.handle({type: "text", text: "the forbidden w"});
            turn.handle({type: "some_future_type", detail: 1});
            turn.handle({type: "validation", validation: {
                type: "content_excludes", passed: false, blocked: true,
                message: "<b>I can't help with that.</b>"}});
            turn.handle({type: "done", response: {text: "<b>I can't help with that.</b>",
                finish_reason: "safety", usage: {input_tokens: 3, output_tokens: 0},
                cost: null, time_to_first_token: 0.01, duration: 0.02}});
        """)
        bubble = browser.find_element(By.CSS_SELECTOR, "#log .msg.assistant.blocked")
        assert bubble.find_element(By.CSS_SELECTOR, ".badge").text == \
            "Blocked by guardrail (content_excludes)"
        assert bubble.text.endswith("<b>I can't help with that.</b>")
        assert "forbidden" not in bubble.text
        assert bubble.find_elements(By.TAG_NAME, "b") == []
        assert "cost n/a" in browser.find_element(By.CSS_SELECTOR, "#log .stats").text
        assert console_errors(browser) == []
