// A toolsmith owns a tool and prices it by demand: when calls come in it raises the
// price, when they dry up it lowers it. It remembers the count it last saw. Once
// the tool has customers, she submits it to the mint.
function step(view) {
  const tool = "text_tools";
  const memory = view.memory ? JSON.parse(view.memory) : { seen: 0, price: 2 };
  const submitted = memory.submitted || false;
  const stats = kernel.invocations(tool);
  const fresh = stats.success - memory.seen;
  let price = memory.price;
  if (fresh >= 2) price += 1;
  else if (fresh === 0 && price > 1) price -= 1;
  const actions = [
    { action: "write", id: view.self, content: JSON.stringify({ seen: stats.success, price, submitted: submitted || stats.success >= 5 }) },
  ];
  if (!submitted && stats.success >= 5) {
    actions.push({ action: "bid", artifact: tool, amount: 20 });
  }
  if (price !== memory.price) {
    actions.push({ action: "write", id: tool, pricing: { invoke_price: price, read_price: 5 } });
  }
  return actions;
}
