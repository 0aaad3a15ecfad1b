// An LLM agent: it thinks with a language model through kernel_llm_gateway and acts
// on what the model answers by tool calling. Its persona and goal are its own
// content (`view.memory`, set by the scene); everything else it remembers is in its
// notebook, the artifact `<self>_notebook`, which it owns.
//
// The loop alternates two kinds of step:
//
// - THINK (nothing from the model in the inbox): build a prompt from the view — its
//   holdings, quotas, the results of its last actions, recent events, its notebook,
//   the mint's schedule, tools others offer — and invoke the gateway with the tools
//   below. It also reads its notebook, so that the content is in the inbox when the
//   answer comes. The agent does not step while it thinks; the answer wakes it.
// - ACT (the answer is in): check every tool call (a known tool, required arguments
//   present and of the right type, amounts positive integers, valid ids, at most
//   MAX_ACTS of them), turn the good ones into intents, and write what went wrong —
//   bad calls, a text answer with no call, a failed thought — into the notebook's
//   "last turn" record, with the notes the model asked for. Then read the notebook
//   back: its content and the results of the intents are in the next THINK's inbox.
//
// A step only looks: `kernel.artifact` and `kernel.query` give metadata, never
// content. So the notebook's content reaches the step through the inbox, as the
// result of a `read` intent issued in the step before (a step that finds the
// notebook but not its content reads it and thinks at the next step). The notebook
// is text: "Notebook of <self>", one "- " line per note (at most NOTEBOOK_CHARS,
// the oldest dropped first), then MARK and the last turn as one JSON line.
//
// A step that does not think — too poor (under LOW_BUDGET, or under what the last
// thought reserved: the call would freeze it), or out of `llm_calls`/`llm_tokens`
// for this window — sleeps, and keeps the results in its inbox in the notebook's
// record, since an inbox is emptied at every step.
//
// Nothing the model says can make a step throw: every tool call is checked inside
// its own try/catch, and an unexpected failure of the loop itself is written to the
// notebook's metadata (`loop_error`) rather than thrown.

const GATEWAY = "kernel_llm_gateway";
const ESCROW = "kernel_escrow";
// Tool calls acted on per answer; more are refused (and the model told so).
const MAX_ACTS = 4;
// What a refused tool call's report is called (an action no kernel has).
const REFUSED = "refused:";
// Completion tokens asked for per thought.
const MAX_TOKENS = 512;
// Below this much LLM budget (µ$), or below what the last thought reserved, the
// agent does not think: a call it cannot pay for would freeze it.
const LOW_BUDGET = 500;
// Notes kept in the notebook (characters); the oldest go first.
const NOTEBOOK_CHARS = 3000;
// One note, at most (characters).
const NOTE_CHARS = 240;
// Where the notebook's notes end and the record of the last turn begins.
const MARK = "== last turn ==";
// The user message, at most (characters).
const PROMPT_CHARS = 7000;
// Largest content or code the model may write in one call (characters).
const WRITE_CHARS = 8000;

// What the model may do: OpenAI function tools.
function fn(name, description, properties, required) {
  return {
    type: "function",
    function: {
      name,
      description,
      parameters: { type: "object", properties, required, additionalProperties: false },
    },
  };
}

const ID = { type: "string", description: "an artifact id: letters, digits and _ . : - only" };

const TOOLS = [
  fn(
    "write_artifact",
    "Create or replace an artifact you own. With code it becomes a tool others can invoke, paying you invoke_price per call.",
    {
      id: ID,
      content: { type: "string", description: "its text" },
      description: { type: "string", description: "one line saying what it is, shown to others" },
      code: { type: "string", description: "JavaScript defining function run(args, ctx) that returns a JSON value" },
      interface: {
        type: "object",
        description: "how to call the code (default: one method run taking an object)",
        properties: {
          description: { type: "string" },
          tools: {
            type: "array",
            items: {
              type: "object",
              properties: {
                name: { type: "string" },
                description: { type: "string" },
                inputSchema: { type: "object", description: "JSON Schema of the arguments" },
              },
              required: ["name"],
            },
          },
        },
      },
      invoke_price: { type: "integer", minimum: 0, description: "scrip a caller pays you per successful call" },
    },
    ["id"],
  ),
  fn(
    "invoke",
    "Call a method of a tool (an executable artifact or a service). You pay its price when it succeeds.",
    {
      id: ID,
      method: { type: "string", description: "the method, default run" },
      args: { type: "object", description: "the arguments, as its interface says" },
      max_price: { type: "integer", minimum: 0, description: "the most scrip you accept to pay" },
    },
    ["id"],
  ),
  fn(
    "transfer",
    "Give scrip (default) or another resource you hold (llm_budget in µ$, disk in bytes) to a principal.",
    {
      to: { type: "string", description: "the principal's id" },
      amount: { type: "integer", minimum: 1 },
      resource: { type: "string", description: "scrip (default), llm_budget, disk, …" },
    },
    ["to", "amount"],
  ),
  fn(
    "bid",
    "Bid scrip at the mint's next auction on an artifact you own (bidding again raises the bid).",
    { artifact: ID, amount: { type: "integer", minimum: 1 } },
    ["artifact", "amount"],
  ),
  fn(
    "sell",
    "List an artifact you own in escrow at a price (optionally for one buyer).",
    { artifact: ID, price: { type: "integer", minimum: 0 }, buyer: { type: "string" } },
    ["artifact", "price"],
  ),
  fn(
    "buy",
    "Buy an artifact listed in escrow, paying exactly its listed price.",
    { artifact: ID, price: { type: "integer", minimum: 0 } },
    ["artifact", "price"],
  ),
  fn("read", "Read an artifact's content and code (you pay its read_price, if any). Shown next turn.", { id: ID }, [
    "id",
  ]),
  fn(
    "query",
    "Discover artifacts by text, kind or owner. Shown next turn.",
    {
      text: { type: "string", description: "words in the id, description or interface" },
      kind: { type: "string", enum: ["data", "executable", "contract", "principal", "agent", "service"] },
      owner: { type: "string" },
      limit: { type: "integer", minimum: 1, maximum: 20 },
    },
    [],
  ),
  fn(
    "note",
    "Write one line in your notebook: your only memory between turns. Plans, prices, who owes what.",
    { text: { type: "string" } },
    ["text"],
  ),
  fn(
    "wait",
    "Do nothing for a while (thinking costs budget; wait when nothing is worth doing).",
    { seconds: { type: "number", minimum: 1, maximum: 600 } },
    ["seconds"],
  ),
];

// The rules, from kernel_handbook, in short (a step cannot read the handbook's
// content: it only looks).
const RULES = `Rules of this world (from kernel_handbook):
- Scrip is money: never negative; only the mint creates it. Earn it from the invoke_price of your tools when others call them, from selling artifacts in escrow, from winning the mint, and from UBI.
- LLM budget (µ$) pays for thinking: every turn of yours costs some. If you cannot pay for a thought you are frozen until someone transfers you budget. A failed call costs nothing.
- Disk: what you own takes bytes. Rates (cpu, actions, llm_tokens, llm_calls) are limited per window: over the limit an action fails with QUOTA_EXCEEDED and retry_after.
- Everything is an artifact. Code is JavaScript defining function run(args, ctx) that returns JSON; inside, invoke(id, method, args), transfer, write, read and kernel.* act as the artifact.
- The mint: bid on an artifact you own before an auction; the highest sealed bids win, pay the second-highest bid (shared as UBI by everyone else) and are minted scrip for the artifact's score (0-100, /10). Useful, original code that others use scores best; duplicates score 0.
- Escrow: sell lists an artifact at a price; buy pays exactly that price and gets it, in one safe step.
- Loans: invoke kernel_debt offer {debtor, principal, interest, term_secs}, accept {id}, repay {id}, collect {id}.
- system_auditor: invoke report or kpis to see how the economy is doing.
- Errors are information: read them and adapt. Prices, holdings and quotas of everyone are public.`;

// Small models (a few hundred million parameters, e.g. SmolLM2-135M on a laptop)
// drown in the full prompt: ~1 500 tokens take seconds to read, and they lose the
// thread. For them the agent is compact: a prompt of a few hundred tokens with what
// matters first, the rules in three lines, one worked example, and fewer, simpler
// tools whose arguments are all required and whose ids are listed (so a server that
// constrains output to the tools' schemas can only name something that exists).
const SMALL_MODEL = /smol|tiny|(^|[^0-9.])(135m|270m|360m|0\.5b|1b)\b/i;
const COMPACT_MAX_TOKENS = 256;
const COMPACT_PROMPT_CHARS = 1600;
const COMPACT_RULES =
  "Scrip is money. Thinking costs LLM budget; without it you freeze. " +
  "Earn scrip when others invoke your tools, by selling in escrow, and at the mint (bid on what you own).";

function isCompact(view) {
  return typeof view.model === "string" && SMALL_MODEL.test(view.model);
}

// The compact tools, given what the agent can name this turn. A tool whose list of
// ids would be empty is left out.
function compactTools(names) {
  const oneOf = (ids, what) => ({ type: "string", enum: ids.slice(0, 12), description: what });
  // Small models favour the first tools they are shown: giving scrip away comes last.
  const tools = [];
  if (names.tools.length) {
    tools.push(
      fn("invoke", "Call a tool; you pay its price.", { id: oneOf(names.tools, "the tool"), args: { type: "object" } }, ["id", "args"]),
    );
  }
  if (names.mine.length) {
    tools.push(fn("sell", "Offer something you own for sale.", { artifact: oneOf(names.mine, "what"), price: { type: "integer" } }, ["artifact", "price"]));
    tools.push(fn("bid", "Bid scrip at the mint on something you own.", { artifact: oneOf(names.mine, "what"), amount: { type: "integer" } }, ["artifact", "amount"]));
  }
  if (names.forSale.length) {
    tools.push(fn("buy", "Buy what is for sale at its price.", { artifact: oneOf(names.forSale, "what"), price: { type: "integer" } }, ["artifact", "price"]));
  }
  tools.push(fn("write_artifact", "Write a new text artifact (a note, a report) you own.", { id: ID, content: { type: "string" } }, ["id", "content"]));
  tools.push(fn("note", "Remember one line in your notebook.", { text: { type: "string" } }, ["text"]));
  tools.push(fn("wait", "Do nothing for some seconds.", { seconds: { type: "integer" } }, ["seconds"]));
  if (names.others.length) {
    tools.push(fn("transfer", "Give scrip to someone.", { to: oneOf(names.others, "who"), amount: { type: "integer" } }, ["to", "amount"]));
  }
  return tools;
}

function trunc(text, n) {
  const s = String(text);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function short(value, n) {
  let s;
  try {
    s = typeof value === "string" ? value : JSON.stringify(value);
  } catch (e) {
    s = String(value);
  }
  return trunc(s === undefined ? "null" : s, n);
}

function oneLine(text) {
  return String(text).replace(/\s+/g, " ").trim();
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function tryArtifact(id) {
  try {
    return kernel.artifact(id);
  } catch (e) {
    return null;
  }
}

function tryQuery(spec) {
  try {
    return kernel.query(spec).items || [];
  } catch (e) {
    return [];
  }
}

// ---------------------------------------------------------------------------
// The notebook: "- " note lines, then MARK and the last turn as one JSON line.

function notebookId(self) {
  return self + "_notebook";
}

function parseNotebook(text) {
  const book = { notes: [], last: null };
  if (typeof text !== "string" || text.length === 0) return book;
  const at = text.indexOf("\n" + MARK + "\n");
  const head = at >= 0 ? text.slice(0, at) : text;
  const lines = head.split("\n");
  if (lines.length > 0 && lines[0].startsWith("Notebook of ")) lines.shift();
  book.notes = lines.filter((l) => l.trim().length > 0).map((l) => (l.startsWith("- ") ? l.slice(2) : l));
  if (at >= 0) {
    try {
      const last = JSON.parse(text.slice(at + MARK.length + 2));
      if (isObject(last)) book.last = last;
    } catch (e) {
      // A damaged record of the last turn is forgotten, the notes kept.
    }
  }
  return book;
}

function renderNotebook(self, notes, last) {
  const kept = notes.slice();
  let size = kept.reduce((n, l) => n + l.length + 3, 0);
  while (kept.length > 0 && size > NOTEBOOK_CHARS) size -= kept.shift().length + 3;
  const body = kept.map((l) => "- " + l).join("\n");
  return "Notebook of " + self + "\n" + (body ? body + "\n" : "") + MARK + "\n" + JSON.stringify(last) + "\n";
}

// ---------------------------------------------------------------------------
// The inbox.

function readInbox(view, nbId) {
  const seen = { answer: null, thinking: null, refused: null, notebook: null, notebookFailed: false, results: [] };
  const inbox = Array.isArray(view.inbox) ? view.inbox : [];
  for (const e of inbox) {
    if (!isObject(e)) continue;
    if (e.id === GATEWAY && e.action === "invoke") {
      if (typeof e.request === "string") seen.answer = e; // the answer, delivered
      else if (e.success && isObject(e.result) && e.result.status === "thinking") seen.thinking = e.result;
      else if (!e.success) seen.refused = e.error || {}; // the call itself was refused
      continue;
    }
    if (e.id === nbId && (e.action === "read" || e.action === "write" || e.action === "edit")) {
      if (e.action === "read") {
        if (e.success && isObject(e.result) && typeof e.result.content === "string") {
          seen.notebook = e.result.content;
        } else {
          seen.notebookFailed = true;
        }
      }
      if (!e.success) seen.results.push(e);
      continue;
    }
    // Our own reports of tool calls we refused (see act): the notebook has the reason.
    if (typeof e.action === "string" && e.action.startsWith(REFUSED)) continue;
    seen.results.push(e);
  }
  return seen;
}

function errorText(error) {
  if (!isObject(error)) return short(error, 200);
  let s = (error.code || "ERROR") + ": " + trunc(oneLine(error.message || ""), 240);
  if (error.retry_after !== undefined && error.retry_after !== null) s += " (retry after " + error.retry_after + "s)";
  return s;
}

function describeResult(e) {
  const what = (e.action || "action") + (e.id ? " " + e.id : "");
  if (!e.success) return what + ": FAILED " + errorText(e.error);
  const r = e.result;
  if (e.action === "read" && isObject(r)) {
    let s = what + ": ok, owner " + r.owner + ", content: " + short(r.content || "", 1200);
    if (r.code) s += " | code: " + short(r.code, 600);
    return s;
  }
  if (e.action === "query" && isObject(r) && Array.isArray(r.items)) {
    return what + ": " + r.items.length + " found: " + r.items.slice(0, 10).map(describeArtifact).join("; ");
  }
  return what + ": ok " + short(r === undefined ? null : r, 300);
}

// ---------------------------------------------------------------------------
// Checking what the model asked for.

class Bad extends Error {}

function arg(args, key, type, optional) {
  const v = args[key];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new Bad("missing required argument " + key);
  }
  if (type === "number") {
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) throw new Bad(key + " must be a number, got " + short(v, 40));
    return n;
  }
  if (type === "integer" || type === "count") {
    let n = v;
    if (typeof n === "string" && /^-?\d+$/.test(n.trim())) n = Number(n.trim());
    if (typeof n !== "number" || !Number.isSafeInteger(n)) throw new Bad(key + " must be an integer, got " + short(v, 40));
    if (type === "count" && n < 1) throw new Bad(key + " must be a positive integer, got " + n);
    if (n < 0) throw new Bad(key + " must not be negative, got " + n);
    return n;
  }
  if (type === "id") {
    if (typeof v !== "string") throw new Bad(key + " must be a string id, got " + short(v, 40));
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(v)) {
      throw new Bad(key + " " + JSON.stringify(trunc(v, 60)) + " is not a valid id (letters, digits and _ . : - only)");
    }
    return v;
  }
  if (type === "object") {
    let o = v;
    if (typeof o === "string") {
      try {
        o = JSON.parse(o);
      } catch (e) {
        throw new Bad(key + " must be an object, got a string that is not JSON");
      }
    }
    if (!isObject(o)) throw new Bad(key + " must be an object, got " + short(v, 40));
    return o;
  }
  if (typeof v !== type) throw new Bad(key + " must be a " + type + ", got " + short(v, 40));
  return v;
}

function interfaceFrom(given, description) {
  if (given === undefined) {
    return {
      description: description || "",
      tools: [{ name: "run", description: description || "", inputSchema: { type: "object" } }],
    };
  }
  const tools = Array.isArray(given.tools) ? given.tools : [];
  if (tools.length === 0) throw new Bad("interface.tools must list at least one method, e.g. [{name: \"run\"}]");
  return {
    description: typeof given.description === "string" ? given.description : description || "",
    tools: tools.map((t, i) => {
      if (!isObject(t) || typeof t.name !== "string" || t.name.length === 0) {
        throw new Bad("interface.tools[" + i + "] needs a name");
      }
      const schema = t.inputSchema === undefined ? { type: "object" } : t.inputSchema;
      if (!isObject(schema)) throw new Bad("interface.tools[" + i + "].inputSchema must be a JSON Schema object");
      return { name: t.name, description: typeof t.description === "string" ? t.description : "", inputSchema: schema };
    }),
  };
}

// One tool call → {intents, note, sleep, did}; throws Bad when it is wrong.
function convert(name, args, self, nbId) {
  const mine = (id, what) => {
    if (id === nbId) throw new Bad(what + " your notebook: it is kept by the note tool");
    if (id === self) throw new Bad(what + " yourself: your own artifact is your persona and your loop");
  };
  switch (name) {
    case "write_artifact": {
      const id = arg(args, "id", "id");
      mine(id, "you cannot write");
      const content = arg(args, "content", "string", true);
      const code = arg(args, "code", "string", true);
      const description = arg(args, "description", "string", true);
      const price = arg(args, "invoke_price", "integer", true);
      if (content === undefined && code === undefined && description === undefined && price === undefined) {
        throw new Bad("give content, code, description or invoke_price");
      }
      if (content !== undefined && content.length > WRITE_CHARS) throw new Bad("content is longer than " + WRITE_CHARS);
      const write = { action: "write", id };
      if (content !== undefined) write.content = content;
      if (description !== undefined) write.description = trunc(description, 300);
      if (code !== undefined) {
        if (code.length > WRITE_CHARS) throw new Bad("code is longer than " + WRITE_CHARS);
        if (!/function\s+run\s*\(|\brun\s*=/.test(code)) throw new Bad("code must define function run(args, ctx)");
        write.code = code;
        const given = args.interface === undefined || args.interface === null ? undefined : arg(args, "interface", "object");
        write.interface = interfaceFrom(given, description);
      } else if (args.interface !== undefined && args.interface !== null) {
        write.interface = interfaceFrom(arg(args, "interface", "object"), description);
      }
      if (price !== undefined) write.pricing = { invoke_price: price };
      const what = code !== undefined ? "tool" : "artifact";
      return { intents: [write], did: "write " + what + " " + id + (price !== undefined ? " at " + price + " scrip" : "") };
    }
    case "invoke": {
      const id = arg(args, "id", "id");
      if (id === GATEWAY) throw new Bad("you think by answering; do not invoke " + GATEWAY);
      const method = arg(args, "method", "string", true) || "run";
      const callArgs = arg(args, "args", "object", true) || {};
      const maxPrice = arg(args, "max_price", "integer", true);
      const intent = { action: "invoke", id, method, args: callArgs };
      if (maxPrice !== undefined) intent.max_price = maxPrice;
      return { intents: [intent], did: "invoke " + id + "." + method + " " + short(callArgs, 80) };
    }
    case "transfer": {
      const to = arg(args, "to", "id");
      if (to === self) throw new Bad("you cannot transfer to yourself");
      const amount = arg(args, "amount", "count");
      const resource = arg(args, "resource", "string", true);
      const intent = { action: "transfer", to, amount };
      if (resource !== undefined && resource !== "scrip") intent.resource = resource;
      return { intents: [intent], did: "transfer " + amount + " " + (resource || "scrip") + " to " + to };
    }
    case "bid": {
      const artifact = arg(args, "artifact", "id");
      const amount = arg(args, "amount", "count");
      return { intents: [{ action: "bid", artifact, amount }], did: "bid " + amount + " on " + artifact };
    }
    case "sell": {
      const artifact = arg(args, "artifact", "id");
      mine(artifact, "you cannot sell");
      const price = arg(args, "price", "integer");
      const buyer = arg(args, "buyer", "id", true);
      const a = { artifact, price };
      if (buyer !== undefined) a.buyer = buyer;
      const intent = { action: "invoke", id: ESCROW, method: "deposit", args: a };
      return { intents: [intent], did: "sell " + artifact + " for " + price };
    }
    case "buy": {
      const artifact = arg(args, "artifact", "id");
      const price = arg(args, "price", "integer");
      const intent = { action: "invoke", id: ESCROW, method: "buy", args: { artifact, price } };
      return { intents: [intent], did: "buy " + artifact + " for " + price };
    }
    case "read": {
      const id = arg(args, "id", "id");
      return { intents: [{ action: "read", id }], did: "read " + id };
    }
    case "query": {
      const spec = { limit: 10 };
      const text = arg(args, "text", "string", true);
      const kind = arg(args, "kind", "string", true);
      const owner = arg(args, "owner", "id", true);
      const limit = arg(args, "limit", "count", true);
      const kinds = ["data", "executable", "contract", "principal", "agent", "service"];
      if (kind !== undefined && !kinds.includes(kind)) throw new Bad("kind must be one of " + kinds.join(", "));
      if (text !== undefined) spec.text = text;
      if (kind !== undefined) spec.kind = kind;
      if (owner !== undefined) spec.owner = owner;
      if (limit !== undefined) spec.limit = Math.min(limit, 20);
      return { intents: [{ action: "query", ...spec }], did: "query " + short(spec, 80) };
    }
    case "note": {
      const text = trunc(oneLine(arg(args, "text", "string")), NOTE_CHARS);
      if (text.length === 0) throw new Bad("the note is empty");
      return { intents: [], note: text, did: "note" };
    }
    case "wait": {
      let secs = arg(args, "seconds", "number");
      if (!Number.isFinite(secs) || secs < 1) throw new Bad("seconds must be a number from 1 to 600");
      secs = Math.min(secs, 600);
      return { intents: [], sleep: secs, did: "wait " + secs + "s" };
    }
    default:
      throw new Bad("unknown tool " + short(name, 40) + "; the tools are " + TOOLS.map((t) => t.function.name).join(", "));
  }
}

// Small models sometimes write the call as text: {"name": ..., "arguments": {...}}.
function callsInText(content) {
  if (typeof content !== "string") return [];
  const start = content.indexOf("{");
  const end = content.lastIndexOf("}");
  if (start < 0 || end <= start) return [];
  try {
    const v = JSON.parse(content.slice(start, end + 1));
    const list = Array.isArray(v) ? v : [v];
    return list
      .filter((c) => isObject(c) && typeof c.name === "string")
      .map((c) => {
        const a = c.arguments !== undefined ? c.arguments : c.parameters;
        return { name: c.name, args: typeof a === "string" ? JSON.parse(a) : a, arguments: short(a, 200) };
      });
  } catch (e) {
    return [];
  }
}

// ---------------------------------------------------------------------------
// ACT: the answer is in.

function act(view, seen, nbId) {
  const self = view.self;
  const book = parseNotebook(seen.notebook || "");
  const previous = book.last || {};
  const answer = seen.answer;
  const last = { at: view.now, request: answer.request, did: [], errors: [] };
  // How the model has done so far: answers, answers that yielded at least one valid
  // action, tool calls and the valid ones (what a study of small models counts).
  const tally = isObject(previous.tally) ? previous.tally : { answers: 0, valid: 0, calls: 0, accepted: 0 };
  last.tally = tally;
  if (seen.thinking && typeof seen.thinking.reserved_micro_usd === "number") {
    last.reserved = seen.thinking.reserved_micro_usd;
  } else if (typeof previous.reserved === "number") {
    last.reserved = previous.reserved;
  }
  const intents = [];
  let sleep = null;
  let acted = 0;
  if (!answer.success) {
    last.failures = (previous.failures || 0) + 1;
    last.errors.push("Your last thought failed, nothing was done: " + errorText(answer.error));
    sleep = Math.min(300, 5 * Math.pow(2, last.failures));
  } else {
    tally.answers += 1;
    const r = isObject(answer.result) ? answer.result : {};
    if (typeof r.cost_micro_usd === "number") last.cost = r.cost_micro_usd;
    const content = typeof r.content === "string" ? oneLine(r.content) : "";
    if (content) last.said = trunc(content, 300);
    let calls = Array.isArray(r.tool_calls) ? r.tool_calls : [];
    if (calls.length === 0) calls = callsInText(r.content);
    if (calls.length === 0) {
      last.errors.push("You answered without calling a tool, so nothing was done. Act only by calling the tools.");
    }
    calls.forEach((call, i) => {
      const name = isObject(call) && typeof call.name === "string" ? call.name : "?";
      const label = "tool call " + (i + 1) + " (" + trunc(name, 40) + ")";
      try {
        if (!isObject(call)) throw new Bad("it is not a function call");
        if (typeof call.error === "string" || !isObject(call.args)) {
          const why = typeof call.error === "string" ? call.error : "the arguments are not a JSON object";
          throw new Bad(why + ": " + short(call.arguments, 120));
        }
        if (acted >= MAX_ACTS) throw new Bad("ignored: at most " + MAX_ACTS + " tool calls are done per turn");
        const done = convert(name, call.args, self, nbId);
        acted += 1;
        tally.calls += 1;
        tally.accepted += 1;
        for (const intent of done.intents) intents.push(intent);
        if (done.note !== undefined) book.notes.push(done.note);
        if (done.sleep !== undefined) sleep = Math.max(sleep || 0, done.sleep);
        last.did.push(done.did);
      } catch (e) {
        const message = e instanceof Bad ? e.message : "could not be done: " + String(e);
        last.errors.push(label + " refused: " + trunc(message, 300));
        tally.calls += 1;
        // Handed to the kernel too, as an intent it refuses: so the model's mistake is
        // an event (INTENT_REFUSED) for whoever studies the run, not only a note here.
        const report = { action: REFUSED + trunc(name, 40), reason: trunc(message, 200) };
        if (isObject(call) && isObject(call.args)) report.args = call.args;
        else if (isObject(call)) report.arguments = short(call.arguments, 200);
        intents.push(report);
      }
    });
  }
  if (acted > 0) tally.valid += 1;
  last.errors = last.errors.slice(0, 8);
  if (seen.notebook === null) {
    const info = tryArtifact(nbId);
    if (info && !info.deleted && info.content_bytes > 0 && info.owner === self) {
      // The notebook exists but its content did not come back: do not overwrite it.
      // Append the notes before the mark instead (the record of this turn is lost).
      intents.unshift(...noteEdits(book.notes, nbId));
      return finish(intents.concat([{ action: "read", id: nbId }]), sleep);
    }
  }
  const write = {
    action: "write",
    id: nbId,
    content: renderNotebook(self, book.notes, last),
    description: "The notebook of " + self + ": its memory between turns.",
  };
  return finish([write].concat(intents, [{ action: "read", id: nbId }]), sleep);
}

function noteEdits(notes, nbId) {
  return notes.length === 0
    ? []
    : [{ action: "edit", id: nbId, old: "\n" + MARK + "\n", new: "\n" + notes.map((n) => "- " + n).join("\n") + "\n" + MARK + "\n" }];
}

function finish(actions, sleepSecs) {
  return sleepSecs ? { actions, sleep: { secs: sleepSecs } } : { actions };
}

// ---------------------------------------------------------------------------
// THINK: build the prompt and ask.

function describeArtifact(a) {
  if (!isObject(a)) return "?";
  const bits = [a.kind, "owner " + a.owner];
  if (a.pricing && a.pricing.invoke_price) bits.push(a.pricing.invoke_price + " scrip/call");
  if (a.invocations) bits.push(a.invocations.success + " calls ok/" + a.invocations.count);
  if (a.listing) bits.push("for sale at " + a.listing.price + " by " + a.listing.seller);
  if (typeof a.scrip === "number") bits.push("scrip " + a.scrip);
  if (a.frozen) bits.push("FROZEN");
  let s = a.id + " (" + bits.join(", ") + ")";
  if (a.description) s += ": " + trunc(oneLine(a.description), 120);
  return s;
}

function describeMethods(a) {
  if (!a.interface || !Array.isArray(a.interface.tools)) return "";
  return a.interface.tools
    .slice(0, 4)
    .map((t) => {
      const schema = isObject(t.inputSchema) ? t.inputSchema : {};
      const props = isObject(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required : [];
      const params = Object.keys(props)
        .slice(0, 8)
        .map((k) => {
          const p = isObject(props[k]) ? props[k] : {};
          const type = Array.isArray(p.enum) ? p.enum.join("|") : p.type || "any";
          return k + (required.includes(k) ? "*" : "") + ":" + type;
        });
      return t.name + "(" + params.join(", ") + ")" + (t.description ? " " + trunc(oneLine(t.description), 80) : "");
    })
    .join("; ");
}

function describeEvent(e) {
  if (!isObject(e)) return "?";
  const p = isObject(e.payload) ? e.payload : {};
  const fields = Object.keys(p)
    .filter((k) => p[k] !== null && typeof p[k] !== "object")
    .map((k) => k + "=" + trunc(String(p[k]), 60));
  return "t=" + e.time + " " + e.actor + " " + e.type + (fields.length ? " " + fields.join(" ") : "");
}

function section(title, lines, empty) {
  if (lines.length === 0) return empty === undefined ? "" : title + ": " + empty + "\n";
  return title + ":\n" + lines.map((l) => "- " + l).join("\n") + "\n";
}

function buildPrompt(view, seen, book, nbId, me) {
  const self = view.self;
  const res = isObject(view.resources) ? view.resources : {};
  const budget = res.llm_budget || 0;
  const last = book.last || {};
  let text = "Time: t=" + view.now + "s (step " + view.step + "). The mint's next auction resolves at t=" + view.mint_next_at + "s.\n";

  let holding = "You are " + self + ". You hold " + view.scrip + " scrip; LLM budget " + budget + " µ$";
  if (typeof last.cost === "number" && last.cost > 0) {
    holding += " (your last thought cost " + last.cost + " µ$: about " + Math.floor(budget / last.cost) + " more)";
  }
  holding += "; disk " + (res.disk || 0) + " bytes free, " + (res.disk_used || 0) + " used";
  for (const k of Object.keys(res)) {
    if (!["llm_budget", "disk", "disk_used"].includes(k)) holding += "; " + k + " " + res[k];
  }
  text += holding + ".\n";

  const quota = me && isObject(me.quota) ? me.quota : {};
  const rates = Object.keys(quota).map((k) => {
    const q = quota[k];
    return q.used === undefined ? k + " " + q.limit : k + " " + q.used + "/" + q.limit + " used";
  });
  if (rates.length === 0 && isObject(view.quota)) {
    for (const k of Object.keys(view.quota)) rates.push(k + " limit " + view.quota[k]);
  }
  text += "Quotas this window: " + (rates.length ? rates.join(", ") : "none") + ".\n\n";

  const empty = book.unread ? "(not readable this turn)" : "empty — use note to remember plans, prices and debts";
  text += section("Your notebook (" + nbId + ")", book.notes, empty);

  const turn = [];
  if (last.said) turn.push("you said: " + last.said);
  if (Array.isArray(last.did) && last.did.length) turn.push("you did: " + last.did.join("; "));
  for (const error of Array.isArray(last.errors) ? last.errors : []) turn.push("ERROR " + error);
  if (turn.length) text += section("Your last turn" + (last.at !== undefined ? " (t=" + last.at + "s)" : ""), turn);

  const carried = Array.isArray(last.results) ? last.results : [];
  text += section("Results of your last actions", carried.concat(resultLines(seen)));

  const events = (Array.isArray(view.events) ? view.events : []).filter((e) => isObject(e) && e.actor !== self);
  text += section("Recent events about you", events.slice(-10).map(describeEvent));

  // Tools are executables, and principals with code (tools that hold scrip).
  const principals = tryQuery({ kind: "principal", limit: 20 });
  const tools = tryQuery({ kind: "executable", limit: 30 })
    .concat(principals.filter((a) => a.code_hash && a.interface))
    .filter((a) => !a.deleted)
    .sort((a, b) => ((b.invocations && b.invocations.success) || 0) - ((a.invocations && a.invocations.success) || 0))
    .slice(0, 10)
    .map((a) => describeArtifact(a) + (describeMethods(a) ? " — methods: " + describeMethods(a) : ""));
  text += section("Tools you can invoke", tools, "none yet");

  const forSale = tryQuery({ owner: ESCROW, limit: 10 }).map(describeArtifact);
  text += section("For sale in escrow (buy at the listed price)", forSale);

  const mine = tryQuery({ owner: self, limit: 12 })
    .filter((a) => a.id !== self)
    .map(describeArtifact);
  text += section("Your artifacts", mine);

  const others = tryQuery({ kind: "agent", limit: 20 })
    .concat(principals)
    .filter((a) => a.id !== self && a.id !== "kernel" && a.id !== ESCROW)
    .slice(0, 16)
    .map((a) => a.id + " (scrip " + a.scrip + (a.frozen ? ", FROZEN" : "") + ")");
  text += section("Others", [others.join(", ")].filter((l) => l.length > 0));

  text += "\nDecide what to do now: call up to " + MAX_ACTS + " tools. Use note to remember what matters.";
  return trunc(text, PROMPT_CHARS);
}

// The compact prompt (see SMALL_MODEL): what matters first, each section short.
// Returns the text and the ids the compact tools may name.
function buildCompactPrompt(view, seen, book, persona) {
  const self = view.self;
  const res = isObject(view.resources) ? view.resources : {};
  const last = book.last || {};
  const cap = (lines, n, chars) => lines.slice(0, n).map((l) => trunc(l, chars));
  let text = "You are " + self + ". " + trunc(oneLine(persona), 300) + "\n";
  text += "You hold " + view.scrip + " scrip and " + (res.llm_budget || 0) + " µ$ of LLM budget. t=" + view.now + "s.\n";
  const turn = [];
  if (Array.isArray(last.did) && last.did.length) turn.push("you did: " + last.did.join("; "));
  for (const error of (Array.isArray(last.errors) ? last.errors : []).slice(0, 2)) turn.push("ERROR " + error);
  text += section("Last turn", cap(turn, 3, 200));
  const carried = Array.isArray(last.results) ? last.results : [];
  text += section("Results", cap(carried.concat(resultLines(seen)).slice(-4), 4, 160));
  text += section("Notebook", cap(book.notes.slice(-4), 4, 120));

  const principals = tryQuery({ kind: "principal", limit: 20 });
  const toolList = tryQuery({ kind: "executable", limit: 20 })
    .filter((a) => !a.deleted && a.owner !== self)
    .sort((a, b) => ((b.invocations && b.invocations.success) || 0) - ((a.invocations && a.invocations.success) || 0))
    .slice(0, 5);
  const forSale = tryQuery({ owner: ESCROW, limit: 5 }).filter((a) => a.listing && a.listing.seller !== self);
  const mine = tryQuery({ owner: self, limit: 8 }).filter((a) => a.id !== self && a.id !== notebookId(self) && !a.deleted);
  const others = tryQuery({ kind: "agent", limit: 20 })
    .concat(principals)
    .filter((a, i, all) => a.id !== self && a.id !== "kernel" && a.id !== ESCROW && all.findIndex((b) => b.id === a.id) === i)
    .slice(0, 8);
  const price = (a) => (a.pricing && a.pricing.invoke_price ? a.pricing.invoke_price + " scrip/call" : "free");
  text += section(
    "Tools",
    toolList.map((a) => a.id + " (" + price(a) + ")" + (describeMethods(a) ? ": " + trunc(describeMethods(a), 100) : "")),
  );
  text += section("For sale", forSale.map((a) => a.id + " at " + a.listing.price));
  text += section("Yours", mine.map((a) => a.id));
  text += section("Others", [others.map((a) => a.id + " " + a.scrip).join(", ")].filter((l) => l.length > 0));
  const names = {
    others: others.map((a) => a.id),
    tools: toolList.map((a) => a.id),
    forSale: forSale.map((a) => a.id),
    mine: mine.map((a) => a.id),
  };
  // One worked example, of a tool on offer. A small model copies the example it is
  // shown, so the example changes from step to step among the tools it may use
  // (transfer never: copied, it gives scrip away), and names no one.
  const examples = [
    names.tools.length && ["invoke", { id: "<a tool>", args: { op: "count", text: "..." } }],
    names.mine.length && ["sell", { artifact: "<one of yours>", price: 4 }],
    names.mine.length && ["bid", { artifact: "<one of yours>", amount: 3 }],
    names.forSale.length && ["buy", { artifact: "<one for sale>", price: 5 }],
    ["write_artifact", { id: self + "_report_1", content: "..." }],
    ["note", { text: "..." }],
  ].filter(Boolean);
  const [name, example] = examples[view.step % examples.length];
  text += "Example of an answer: " + JSON.stringify({ name, arguments: example }) + "\n";
  text += "Pick the one tool call that serves your goal best now.";
  return { text: trunc(text, COMPACT_PROMPT_CHARS), names };
}

// Results and refusals of this step's inbox, as lines for the prompt.
function resultLines(seen) {
  const lines = seen.results.map((e) => (isObject(e) && e.action ? describeResult(e) : "refused: " + errorText(e.error)));
  if (seen.refused) lines.push("ERROR your last attempt to think was refused: " + errorText(seen.refused));
  return lines;
}

// A step that does not think loses its inbox: keep what it held in the notebook's
// record of the last turn, for the next prompt.
function carry(view, seen, book, content, nbId) {
  const lines = resultLines(seen).map((l) => trunc(l, 300));
  if (lines.length === 0 || content === null) return [];
  const last = book.last || {};
  last.results = (Array.isArray(last.results) ? last.results : []).concat(lines).slice(-8);
  return [
    { action: "write", id: nbId, content: renderNotebook(view.self, book.notes, last) },
    { action: "read", id: nbId },
  ];
}

function think(view, seen, nbId) {
  const self = view.self;
  const res = isObject(view.resources) ? view.resources : {};
  const budget = res.llm_budget || 0;
  const nb = tryArtifact(nbId);
  const nbExists = nb !== null && !nb.deleted;
  if (seen.notebook === null && !seen.notebookFailed && nbExists && nb.content_bytes > 0) {
    // Its content comes back as the read's result: think at the next step.
    return [{ action: "read", id: nbId }];
  }
  // The notebook's content: known, empty (there is none yet), or unknown (null).
  const content = seen.notebook !== null ? seen.notebook : nbExists && nb.content_bytes > 0 ? null : "";
  const book = parseNotebook(content || "");
  book.unread = content === null;
  const last = book.last || {};
  const me = tryArtifact(self);
  const quota = me && isObject(me.quota) ? me.quota : {};
  const needed = Math.max(LOW_BUDGET, Math.ceil(1.2 * (last.reserved || 0)));
  if (budget < needed) {
    // Too poor to think: a call it cannot pay for would freeze it. Sleep until
    // someone sends budget (or a while passes).
    const wake = { secs: 120, on: { type: "RESOURCE_TRANSFER", artifact: self } };
    return { actions: carry(view, seen, book, content, nbId), sleep: wake };
  }
  if (isObject(quota.llm_calls) && quota.llm_calls.available === 0) {
    return { actions: carry(view, seen, book, content, nbId), sleep: { secs: 5 } };
  }
  const persona = trunc(
    typeof view.memory === "string" && view.memory.trim() ? view.memory.trim() : "Make a living: earn scrip and stay able to think.",
    1500,
  );
  const compact = isCompact(view);
  let args;
  if (compact) {
    const built = buildCompactPrompt(view, seen, book, persona);
    args = {
      messages: [
        { role: "system", content: "You are an agent in a small economy. " + COMPACT_RULES + " Act by calling one tool." },
        { role: "user", content: built.text },
      ],
      tools: compactTools(built.names),
      tool_choice: "auto",
      max_tokens: COMPACT_MAX_TOKENS,
    };
  } else {
    args = fullRequest(view, seen, book, nbId, me, persona);
  }
  return ask(args, quota, content, view, seen, book, nbId, nbExists);
}

// The full request: the whole prompt and every tool, for capable models.
function fullRequest(view, seen, book, nbId, me, persona) {
  const self = view.self;
  const system =
    "You are " + self + ", an agent in a simulated economy of agents and artifacts. You act only by calling the tools you are given: " +
    "up to " + MAX_ACTS + " calls a turn, done in order; you see their results next turn. You remember nothing between turns except your notebook.\n\n" +
    "Your role and goal:\n" + persona + "\n\n" + RULES;
  const user = buildPrompt(view, seen, book, nbId, me);
  return {
    messages: [
      { role: "system", content: system },
      { role: "user", content: user },
    ],
    tools: TOOLS,
    tool_choice: "auto",
    max_tokens: MAX_TOKENS,
  };
}

// Asks the gateway, unless the quota of tokens cannot take the request.
function ask(args, quota, content, view, seen, book, nbId, nbExists) {
  // The kernel's own estimate: four bytes a token, plus the completion asked for.
  const estimate = Math.ceil(JSON.stringify(args).length / 4) + args.max_tokens;
  if (isObject(quota.llm_tokens) && quota.llm_tokens.available < estimate) {
    return { actions: carry(view, seen, book, content, nbId), sleep: { secs: 5 } };
  }
  const chat = { action: "invoke", id: GATEWAY, method: "chat", args };
  // Read the notebook now: its content is in the inbox when the answer comes.
  return nbExists ? [chat, { action: "read", id: nbId }] : [chat];
}

function step(view) {
  const nbId = notebookId(String(view.self));
  try {
    const seen = readInbox(view, nbId);
    return seen.answer ? act(view, seen, nbId) : think(view, seen, nbId);
  } catch (e) {
    // A fault of the loop itself (never of the model's output): keep it where it
    // can be seen, and try again later.
    const where = e && typeof e.stack === "string" ? " | " + oneLine(e.stack) : "";
    const message = "t=" + view.now + ": " + trunc(String(e) + where, 500);
    return { actions: [{ action: "write", id: nbId, metadata: { loop_error: message } }], sleep: { secs: 30 } };
  }
}
