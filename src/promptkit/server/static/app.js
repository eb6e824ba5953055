// The promptkit chat page. Model and tool output is untrusted: it is only ever put in the
// page as text (textContent / text nodes), never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  prompts: new Map(), conversation: null, controller: null,
  token: sessionStorage.getItem("promptkit-token") || "",
};

function setState(name) { document.body.dataset.state = name; }
function status(text) { $("status").textContent = text; }

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function headers(json) {
  const result = {};
  if (json) result["content-type"] = "application/json";
  if (state.token) result.authorization = "Bearer " + state.token;
  return result;
}

class ApiError extends Error {}

async function api(method, path, body, signal) {
  const response = await fetch(path, {
    method, headers: headers(body !== undefined), signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    $("auth").hidden = false;
    throw new ApiError("this server needs an API token");
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    throw new ApiError(message);
  }
  return response;
}

// --- prompt picker and variables -----------------------------------------------------------

function renderVariables(promptName, values, locked) {
  const form = $("vars");
  form.replaceChildren();
  const prompt = state.prompts.get(promptName);
  if (!prompt) return;
  for (const variable of prompt.variables) {
    const label = element("label");
    const caption = element("span", variable.required ? "required" : "", variable.name);
    const input = element("input");
    input.name = variable.name;
    input.required = Boolean(variable.required);
    input.placeholder = variable.description || variable.type || "";
    const value = values && values[variable.name];
    input.value = value !== undefined ? value : (variable.default ?? "");
    input.disabled = locked;
    label.append(caption, input);
    form.append(label);
  }
}

function variableValues() {
  const values = {};
  for (const input of $("vars").querySelectorAll("input")) {
    if (input.value !== "") values[input.name] = input.value;
  }
  return values;
}

// --- the transcript -------------------------------------------------------------------------

function addMessage(role, text) {
  const node = element("div", "msg " + role, text);
  $("log").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function addTool(kind, text, isError) {
  const node = element("div", "tool " + kind + (isError ? " error" : ""), text);
  $("log").append(node);
  return node;
}

function toolCallText(call) { return "→ " + call.name + "(" + JSON.stringify(call.arguments) + ")"; }
function toolResultText(result) { return "← " + (result.name || "tool") + ": " + result.content; }

function renderHistory(messages) {
  $("log").replaceChildren();
  for (const message of messages) {
    if (message.role === "user") addMessage("user", message.text);
    else if (message.role === "assistant") {
      if (message.text) addMessage("assistant", message.text);
      for (const call of message.tool_calls || []) addTool("call", toolCallText(call));
    } else if (message.role === "tool" && message.tool_result) {
      addTool("result", toolResultText(message.tool_result), message.tool_result.is_error);
    }
  }
}

function statsText(response) {
  const usage = response.usage || {};
  const parts = [(usage.input_tokens ?? 0) + " in", (usage.output_tokens ?? 0) + " out"];
  parts.push(response.cost === null || response.cost === undefined
    ? "cost n/a" : "$" + response.cost.toFixed(6));
  if (response.time_to_first_token !== null && response.time_to_first_token !== undefined) {
    parts.push("TTFT " + response.time_to_first_token.toFixed(3) + " s");
  }
  parts.push(response.duration.toFixed(3) + " s");
  return parts.join(" · ");
}

// --- a turn ---------------------------------------------------------------------------------

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

class Turn {
  constructor() { this.bubble = null; }

  text(text) {
    if (!this.bubble) this.bubble = addMessage("assistant", "");
    this.bubble.append(document.createTextNode(text));
  }

  handle(chunk) {
    switch (chunk.type) {
      case "text": this.text(chunk.text || ""); break;
      case "tool_call": addTool("call", toolCallText(chunk.tool_call)); this.bubble = null; break;
      case "tool_result":
        addTool("result", toolResultText(chunk.tool_result), chunk.tool_result.is_error);
        break;
      case "validation": this.blocked(chunk.validation || {}); break;
      case "done": this.done(chunk.response); break;
      case "error": addMessage("error", "Error: " + chunk.error.message); break;
      default: break; // chunk types this page does not know are ignored
    }
  }

  blocked(validation) {
    if (!this.bubble) this.bubble = addMessage("assistant", "");
    this.bubble.classList.add("blocked");
    this.bubble.replaceChildren(
      element("span", "badge", "Blocked by guardrail" + (validation.type ? " (" + validation.type + ")" : "")),
      document.createTextNode(validation.message || ""));
  }

  done(response) {
    if (!this.bubble && response.text) this.text(response.text);
    $("log").append(element("div", "stats", statsText(response)));
  }
}

async function ensureConversation() {
  if (state.conversation) return state.conversation;
  const form = $("vars");
  if (!form.checkValidity()) {
    form.reportValidity();
    throw new ApiError("fill in the required variables first");
  }
  const prompt = $("prompt").value;
  const created = await (await api("POST", "/v1/conversations",
    { prompt, variables: variableValues() })).json();
  state.conversation = created.id;
  const url = new URL(location.href);
  url.searchParams.set("c", created.id);
  history.replaceState(null, "", url);
  renderVariables(prompt, variableValues(), true);
  $("prompt").disabled = true;
  return created.id;
}

async function send(text) {
  const controller = new AbortController();
  state.controller = controller;
  $("stop").disabled = false;
  $("send").disabled = true;
  setState("streaming");
  const turn = new Turn();
  try {
    const id = await ensureConversation();
    addMessage("user", text);
    $("input").value = "";
    status("…");
    const response = await api("POST", "/v1/conversations/" + encodeURIComponent(id) + "/messages",
      { content: text, stream: true }, controller.signal);
    for await (const { data } of sseEvents(response)) turn.handle(data);
    status("");
  } catch (error) {
    if (error.name === "AbortError") {
      if (turn.bubble) turn.bubble.classList.add("stopped");
      else addMessage("assistant stopped", "");
      status("stopped");
    } else {
      status(error.message);
    }
  } finally {
    state.controller = null;
    $("stop").disabled = true;
    $("send").disabled = false;
    setState("idle");
  }
}

function newConversation() {
  if (state.controller) state.controller.abort();
  state.conversation = null;
  const url = new URL(location.href);
  url.searchParams.delete("c");
  history.replaceState(null, "", url);
  $("log").replaceChildren();
  $("prompt").disabled = false;
  renderVariables($("prompt").value, {}, false);
  status("");
}

async function load() {
  const catalogue = await (await api("GET", "/v1/prompts")).json();
  $("title").textContent = catalogue.pack.id;
  const select = $("prompt");
  select.replaceChildren();
  for (const prompt of catalogue.prompts) {
    state.prompts.set(prompt.name, prompt);
    const option = element("option", "", prompt.name);
    option.value = prompt.name;
    select.append(option);
  }
  const id = new URL(location.href).searchParams.get("c");
  if (id) {
    try {
      const conversation = await (await api("GET", "/v1/conversations/" + encodeURIComponent(id))).json();
      state.conversation = conversation.id;
      select.value = conversation.prompt;
      select.disabled = true;
      renderVariables(conversation.prompt, conversation.variables, true);
      renderHistory(conversation.messages);
      setState("idle");
      return;
    } catch (error) {
      status("could not resume the conversation: " + error.message);
    }
  }
  renderVariables(select.value, {}, false);
  setState("idle");
}

function start() {
  $("prompt").addEventListener("change", () => renderVariables($("prompt").value, {}, false));
  $("new").addEventListener("click", newConversation);
  $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("input").value.trim();
    if (text && !state.controller) send(text);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value;
    sessionStorage.setItem("promptkit-token", state.token);
    $("auth").hidden = true;
    load().catch((error) => status(error.message));
  });
  load().catch((error) => status(error.message));
}

start();
