// A user gets its work done with other people's tools. It discovers what exists,
// reads each tool's interface to know what to send, and calls one it can afford,
// preferring tools that worked for it before. It has little income (its share of
// the mint's UBI), so it may run dry and freeze. When short of money it accepts a
// loan someone offers, and repays it once it can. It also earns a little: every
// minute it writes a review of the tools it used and sells it through escrow.

const TEXTS = [
  "The market was good today: fresh tools, fair prices and a kind lender.",
  "Prices rose again and the poor users lose scrip to every call they make.",
  "A bright day at the mint: the auction paid a great dividend to all of us.",
  "Debt is a gloomy thing when the money runs dry and agents freeze.",
  "We trade, we build, we thrive; some say the town will win in the end.",
];

// Arguments for a tool, read from its interface's JSON Schema.
function argsFor(schema) {
  const args = {};
  const props = (schema && schema.properties) || {};
  for (const name of Object.keys(props)) {
    const prop = props[name];
    if (prop.enum) args[name] = prop.enum[Math.floor(Math.random() * prop.enum.length)];
    else if (prop.type === "integer" || prop.type === "number") args[name] = prop.minimum || 3;
    else if (prop.type === "string") {
      args[name] = name === "text" ? TEXTS[Math.floor(Math.random() * TEXTS.length)] : "day";
    }
  }
  return args;
}

function step(view) {
  const memory = view.memory
    ? JSON.parse(view.memory)
    : { tried: {}, loans: [], spent: 0, reviews: 0, last_review: 0 };
  const actions = [];

  // What happened to last step's calls: remember which tools worked.
  for (const r of view.inbox) {
    if (r.action !== "invoke" || !r.id || r.id.startsWith("kernel_")) continue;
    const tally = memory.tried[r.id] || { ok: 0, failed: 0 };
    if (r.success) tally.ok += 1;
    else tally.failed += 1;
    memory.tried[r.id] = tally;
  }

  // Credit: accept a loan offered to us when we are short; repay when we can.
  for (const e of view.events) {
    if (e.type === "DEBT_OFFERED" && e.payload.debtor === view.self && view.scrip < 40) {
      actions.push({ action: "invoke", id: "kernel_debt", method: "accept", args: { id: e.payload.id } });
      memory.loans.push(e.payload.id);
    }
  }
  memory.loans = memory.loans.filter((id) => {
    const note = kernel.artifact(id).debt;
    if (!note || note.status === "repaid" || note.status === "cancelled") return false;
    if (note.status !== "offered" && view.scrip >= note.outstanding + 25) {
      actions.push({ action: "invoke", id: "kernel_debt", method: "repay", args: { id } });
    }
    return true;
  });

  // A review of what it used, for sale: first-hand reports are what a market lacks.
  const used = Object.keys(memory.tried).filter((id) => memory.tried[id].ok > 0);
  if (used.length > 0 && view.now - memory.last_review >= 60) {
    memory.reviews += 1;
    memory.last_review = view.now;
    const id = view.self + "_review_" + memory.reviews;
    const lines = used.map((t) => {
      const tally = memory.tried[t];
      const price = (kernel.artifact(t).pricing || {}).invoke_price || 0;
      return t + ": worked " + tally.ok + " of " + (tally.ok + tally.failed) + " times, now " + price + " scrip a call";
    });
    const content = "Review " + memory.reviews + " by " + view.self + " at " + view.now + " s, having spent " +
      memory.spent + " scrip. " + lines.join(". ") + ".";
    actions.push({ action: "write", id, content, description: "A user's review of the town's tools" });
    actions.push({ action: "invoke", id: "kernel_escrow", method: "deposit", args: { artifact: id, price: 4 } });
  }

  // Work: one call to a tool we can afford, keeping a small reserve.
  // Tools are plain executables, or principals with code. An agent's loop is no
  // tool. A tool's price is all this caller pays when its owner pays for the tools
  // it calls (owner_pays); otherwise their prices come on top, within max_price.
  // A random handful is enough to choose from, however big the town.
  const found = kernel.query({
    kind: ["executable", "principal"],
    sample: 40,
    fields: ["id", "owner", "interface", "pricing"],
  }).items;
  const tools = found.filter((t) => {
    const price = (t.pricing && t.pricing.invoke_price) || 0;
    const tally = memory.tried[t.id] || { ok: 0, failed: 0 };
    return t.owner !== view.self && t.interface && t.interface.tools[0].name !== "step" &&
      price + 2 <= view.scrip && tally.failed <= tally.ok + 2;
  });
  if (tools.length > 0) {
    // Mostly the cheapest that worked, sometimes something new.
    tools.sort((a, b) => ((a.pricing && a.pricing.invoke_price) || 0) - ((b.pricing && b.pricing.invoke_price) || 0));
    const pick = Math.random() < 0.6 ? tools[0] : tools[Math.floor(Math.random() * tools.length)];
    const price = (pick.pricing && pick.pricing.invoke_price) || 0;
    const tool = pick.interface.tools[0];
    actions.push({ action: "invoke", id: pick.id, method: tool.name, args: argsFor(tool.inputSchema), max_price: price + 1 });
    memory.spent += price;
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
