// A dealer trades artifacts through escrow, where a purchase is atomic and names
// the price it accepts, so nobody can be cheated or front-run. It writes market
// notes and lists them for sale, and it buys tools others list when their record
// says they earn, then keeps them earning or lists them again at a markup.
function step(view) {
  const memory = view.memory ? JSON.parse(view.memory) : { notes: 0, bought: {}, relisted: [] };
  const actions = [];
  const listed = kernel.query({ owner: "kernel_escrow", limit: 100 }).items;

  // Buy: a listed tool with a record of use, priced at most 12 calls' worth.
  for (const item of listed) {
    const listing = item.listing;
    if (!listing || listing.seller === view.self || memory.bought[item.id]) continue;
    if (listing.buyer && listing.buyer !== view.self) continue;
    const calls = item.invocations ? item.invocations.success : 0;
    const perCall = (item.pricing && item.pricing.invoke_price) || 0;
    if (calls >= 3 && listing.price <= 12 * Math.max(perCall, 1) + 20 && listing.price + 15 <= view.scrip) {
      actions.push({ action: "invoke", id: "kernel_escrow", method: "buy", args: { artifact: item.id, price: listing.price } });
      memory.bought[item.id] = { price: listing.price, at: view.now };
      break;
    }
  }

  // Relist a tool held for two minutes at a markup: trade, not just hold.
  for (const id of Object.keys(memory.bought)) {
    const deal = memory.bought[id];
    if (memory.relisted.includes(id) || view.now - deal.at < 120) continue;
    if (kernel.artifact(id).owner !== view.self) continue;
    actions.push({
      action: "invoke",
      id: "kernel_escrow",
      method: "deposit",
      args: { artifact: id, price: Math.ceil(deal.price * 1.5) },
    });
    memory.relisted.push(id);
  }

  // Write and list a market note every minute: who holds what, what sells.
  if (view.now >= 30 * (memory.notes + 1) * 2 && view.scrip >= 10) {
    memory.notes += 1;
    const id = view.self + "_note_" + memory.notes;
    const principals = kernel.query({ kind: "agent", sample: 50, fields: ["id", "scrip"] }).items;
    const rich = principals.slice().sort((a, b) => b.scrip - a.scrip).slice(0, 3).map((p) => p.id + " holds " + p.scrip);
    const tools = kernel.query({ kind: "executable", limit: 50, fields: ["id", "pricing", "invocations"] }).items
      .map((t) => t.id + " at " + ((t.pricing && t.pricing.invoke_price) || 0) + " scrip, " +
        (t.invocations ? t.invocations.success : 0) + " calls")
      .join("; ");
    const content = "Market note " + memory.notes + " at " + view.now + " s. Richest: " + rich.join(", ") +
      ". Tools: " + tools + ". Listings open: " + listed.length + ".";
    actions.push({ action: "write", id, content, description: "A market note by " + view.self });
    actions.push({ action: "invoke", id: "kernel_escrow", method: "deposit", args: { artifact: id, price: 6 } });
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
