// A builder writes priced tools for others to use, one after another from its plan,
// and lives off their sales. It prices each tool by demand, submits a tool to the
// mint once others have used it (use by others is what the mint's scorer rewards
// most), and sells its oldest tool through escrow when it has newer ones to live on.
//
// Every tool of this town takes `{text}` (and maybe more, declared in its interface),
// so users can call tools they have never seen by reading the interface.

// What each builder makes, in order, and when (simulated seconds).
const PLANS = {
  frank: [
    {
      id: "word_stats",
      at: 0,
      price: 2,
      description: "Counts words, sentences and average word length of a text.",
      code: `function run(args) {
  const text = String(args.text);
  const words = text.split(/\\s+/).filter((w) => w.length > 0);
  const sentences = text.split(/[.!?]+/).filter((s) => s.trim().length > 0);
  const letters = words.reduce((n, w) => n + w.length, 0);
  return { words: words.length, sentences: sentences.length,
           mean_word: words.length ? letters / words.length : 0 };
}`,
    },
    {
      id: "summary",
      at: 150,
      price: 8,
      description: "A one-line summary: the keywords (from text_tools) and the size (from word_stats).",
      // Built on other tools, whose prices its owner pays (owner_pays: the owner of
      // the code that makes a call pays its price), so it is priced above the sum of
      // its parts and callers pay one price. This is how capital gets depth.
      policy: "owner_pays",
      code: `function run(args) {
  const keys = invoke("text_tools", "run", { op: "keywords", text: args.text, limit: 3 }, { max_price: 6 });
  const stats = invoke("word_stats", "run", { text: args.text }, { max_price: 4 });
  return { summary: keys.keywords.join(", ") + " (" + stats.words + " words)" };
}`,
    },
  ],
  grace: [
    {
      id: "sentiment",
      at: 0,
      price: 3,
      description: "Scores the mood of a text from -1 (gloomy) to 1 (cheerful).",
      code: `const GOOD = ["good", "great", "fair", "rich", "thrive", "gain", "win", "kind", "fresh", "bright"];
const BAD = ["bad", "poor", "dry", "freeze", "frozen", "loss", "lose", "debt", "broke", "gloomy"];
function run(args) {
  const words = String(args.text).toLowerCase().match(/[a-z]+/g) || [];
  let score = 0;
  for (const w of words) {
    if (GOOD.includes(w)) score += 1;
    if (BAD.includes(w)) score -= 1;
  }
  return { mood: words.length ? Math.max(-1, Math.min(1, (score * 5) / words.length)) : 0 };
}`,
    },
    {
      id: "rhyme",
      at: 90,
      price: 2,
      description: "Finds the words of a text that rhyme with a given word (same last letters).",
      code: `function run(args) {
  const target = String(args.word || "day").toLowerCase();
  const tail = target.slice(-2);
  const words = String(args.text).toLowerCase().match(/[a-z]+/g) || [];
  const found = words.filter((w) => w !== target && w.endsWith(tail));
  return { rhymes: Array.from(new Set(found)).slice(0, 8) };
}`,
    },
  ],
};

const TEXT_SCHEMA = {
  type: "object",
  properties: { text: { type: "string", description: "the text to work on" } },
  required: ["text"],
};

// Whether an artifact exists yet (kernel.artifact throws NOT_FOUND if not).
function exists(id) {
  try {
    kernel.artifact(id);
    return true;
  } catch (e) {
    return false;
  }
}

function step(view) {
  const plan = PLANS[view.self] || [];
  const memory = view.memory
    ? JSON.parse(view.memory)
    : { built: [], seen: {}, prices: {}, bid: [], listed: null, last_bid_at: -60 };
  const actions = [];

  // 1. Build what is due and affordable (a tool costs disk, nothing else).
  for (const tool of plan) {
    if (memory.built.includes(tool.id) || view.now < tool.at) continue;
    const schema = tool.id === "rhyme"
      ? { type: "object", properties: { text: { type: "string" }, word: { type: "string" } }, required: ["text"] }
      : TEXT_SCHEMA;
    const interface_ = { description: tool.description, tools: [{ name: "run", description: tool.description, inputSchema: schema }] };
    const pricing = { invoke_price: tool.price };
    if (tool.policy) pricing.resource_policy = tool.policy;
    actions.push({
      action: "write",
      id: tool.id,
      description: tool.description,
      code: tool.code,
      interface: interface_,
      pricing,
    });
    memory.built.push(tool.id);
    memory.prices[tool.id] = tool.price;
    memory.seen[tool.id] = 0;
  }

  // 2. Price by demand: busy tools get dearer, idle ones cheaper. (What was just
  //    written above exists from this step's actions on, not yet.)
  const existing = memory.built.filter(exists);
  for (const id of existing) {
    const info = kernel.artifact(id);
    if (info.owner !== view.self || !info.invocations) continue;
    const fresh = info.invocations.success - (memory.seen[id] || 0);
    memory.seen[id] = info.invocations.success;
    let price = memory.prices[id];
    if (fresh >= 3) price += 1;
    else if (fresh === 0 && price > 1) price -= 1;
    if (price !== memory.prices[id]) {
      memory.prices[id] = price;
      const pricing = { invoke_price: price };
      const tool = plan.find((t) => t.id === id);
      if (tool && tool.policy) pricing.resource_policy = tool.policy;
      actions.push({ action: "write", id, pricing });
    }
  }

  // 3. The mint: once a round, bid on a used tool not submitted yet. A tool scores
  //    once (after that its content is a duplicate and scores nothing), so with
  //    every tool submitted, the builder writes this round's manual of its tools
  //    and bids on that. The richer the builder, the more it bids.
  if (view.now - memory.last_bid_at >= 60 && view.scrip > 30) {
    let candidate = existing.find((id) => {
      const info = kernel.artifact(id);
      return !memory.bid.includes(id) && info.owner === view.self && info.invocations && info.invocations.success >= 3;
    });
    if (!candidate && existing.length > 0) {
      candidate = view.self + "_manual_" + Math.floor(view.now / 60);
      const pages = existing.map((id) => {
        const info = kernel.artifact(id);
        const calls = info.invocations ? info.invocations.success : 0;
        return id + ": " + info.description + " Send {text}. " + calls + " calls so far, " +
          ((info.pricing && info.pricing.invoke_price) || 0) + " scrip each.";
      });
      actions.push({
        action: "write",
        id: candidate,
        content: "Manual of " + view.self + "'s tools, minute " + Math.floor(view.now / 60) + ".\n" + pages.join("\n"),
        description: "How to use " + view.self + "'s tools",
      });
    }
    if (candidate) {
      actions.push({ action: "bid", artifact: candidate, amount: Math.min(40, 4 + Math.floor(view.scrip / 10)) });
      memory.bid.push(candidate);
      memory.last_bid_at = view.now;
    }
  }

  // 4. Cash out: with two tools earning, sell the older one through escrow.
  if (memory.listed === null && memory.built.length >= 2 && view.now >= 240) {
    const oldest = memory.built[0];
    if (existing.includes(oldest) && kernel.artifact(oldest).owner === view.self) {
      const price = 10 * memory.prices[oldest] + 10;
      actions.push({ action: "invoke", id: "kernel_escrow", method: "deposit", args: { artifact: oldest, price } });
      memory.listed = oldest;
    }
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
