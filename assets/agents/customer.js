// A customer uses a tool when it is worth it: it pays at most its budget per call,
// pins the code it checked once, and remembers what it learned.
function step(view) {
  const memory = view.memory ? JSON.parse(view.memory) : { calls: 0, pinned: null };
  if (memory.pinned === null) {
    memory.pinned = kernel.artifact("text_tools").code_hash;
  }
  for (const result of view.inbox) {
    if (result.action === "invoke" && result.success) memory.calls += 1;
  }
  const actions = [{ action: "write", id: view.self, content: JSON.stringify(memory) }];
  // Not at any price: a call dearer than the budget is not worth making.
  const price = (kernel.artifact("text_tools").pricing || {}).invoke_price || 0;
  if (view.scrip > 20 && price <= 4) {
    actions.push({
      action: "invoke",
      id: "text_tools",
      args: { op: "keywords", text: kernel.artifact("handbook").description, limit: 3 },
      max_price: 4,
      code_hash: memory.pinned,
    });
  }
  return actions;
}
