// A buyer pays for a forecast every step it can, and remembers how many it bought.
// It has no income: sooner or later it runs dry and freezes, unless someone helps.
function step(view) {
  const bought = Number(view.memory || "0") +
    view.inbox.filter((r) => r.action === "invoke" && r.success).length;
  return [
    { action: "invoke", id: "forecast", args: { horizon: 3 }, max_price: 8 },
    { action: "write", id: view.self, content: String(bought) },
  ];
}
