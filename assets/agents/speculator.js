// A speculator plays the mint. Every round it writes a fresh digest of the market
// (new content: an artifact scores only once) and bids on it, sealed, at what past
// rounds suggest a winner pays; between rounds it buys notes others sell through
// escrow and submits those too. Its bid goes to everyone else as UBI if it wins.
function step(view) {
  const memory = view.memory ? JSON.parse(view.memory) : { round: 0, bid_on: [] };
  const actions = [];

  // What winners paid and were minted recently: the going rate.
  const resolved = kernel.events({ type: "MINT_RESOLVED", limit: 5 });
  let paid = 0;
  let minted = 0;
  let wins = 0;
  for (const e of resolved) {
    for (const w of e.payload.winners) {
      paid += w.price;
      minted += w.minted;
      wins += 1;
    }
  }
  const going = wins > 0 ? Math.round(paid / wins) : 3;
  const worth = wins > 0 ? Math.round(minted / wins) : 10;
  // Bid up to what a win is worth, never more than a fifth of what it holds.
  const amount = Math.max(1, Math.min(worth, going + 2, Math.floor(view.scrip / 5)));

  const round = Math.floor(view.now / 60);
  if (round > memory.round && view.scrip >= 20) {
    memory.round = round;
    const id = view.self + "_digest_" + round;
    const lines = kernel.query({ kind: "executable", limit: 50 }).items.map((t) =>
      "- " + t.id + " by " + t.owner + ": " + (t.description || "no description") + " Price " +
      ((t.pricing && t.pricing.invoke_price) || 0) + ", " + (t.invocations ? t.invocations.success : 0) +
      " successful calls, success rate " + (t.invocations && t.invocations.success_rate !== null
        ? Math.round(100 * t.invocations.success_rate) + "%" : "unknown") + ".");
    const content = "Digest of round " + round + " (" + view.now + " s): the tools of the town and how they sell.\n" +
      lines.join("\n") + "\nGoing rate at the mint: " + going + " scrip for about " + worth + " minted.";
    actions.push({ action: "write", id, content, description: "A market digest for the mint" });
    actions.push({ action: "bid", artifact: id, amount });
    memory.bid_on.push(id);
  }

  // Notes and reviews listed cheaply are raw material for the next bids: two a wake.
  let bought = 0;
  for (const item of kernel.query({ owner: "kernel_escrow", limit: 100 }).items) {
    if (bought === 2) break;
    const listing = item.listing;
    if (listing && !item.invocations && listing.price <= 8 && listing.price + 25 + 10 * bought <= view.scrip &&
        (!listing.buyer || listing.buyer === view.self)) {
      actions.push({ action: "invoke", id: "kernel_escrow", method: "buy", args: { artifact: item.id, price: listing.price } });
      actions.push({ action: "bid", artifact: item.id, amount: 1 });
      memory.bid_on.push(item.id);
      bought += 1;
    }
  }

  if (memory.bid_on.length > 20) memory.bid_on = memory.bid_on.slice(-20);
  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
