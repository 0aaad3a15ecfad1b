// A vulture circles over the town. When an agent freezes (the AGENT_FROZEN "dinner
// bell" wakes it; it also looks around every half minute), the vulture pays just
// enough to thaw it and offers it a loan for the rescue: the rescued agent may take
// it, and the vulture holds the note. It helps each agent a few times at most.
function step(view) {
  const memory = view.memory ? JSON.parse(view.memory) : { rescued: {} };
  const actions = [];
  const line = 5; // the scene's freeze rule: min_scrip
  let spare = view.scrip - 30;
  const around = kernel.query({ kind: "agent", sample: 100, fields: ["id", "frozen", "scrip"] }).items;
  const frozen = around.filter((p) => p.frozen && p.id !== view.self);
  for (const agent of frozen) {
    const who = agent.id;
    const count = memory.rescued[who] || 0;
    const need = line + 8 - agent.scrip;
    if (count < 5 && need > 0 && need <= spare) {
      actions.push({ action: "transfer", to: who, amount: need });
      actions.push({
        action: "invoke",
        id: "kernel_debt",
        method: "offer",
        args: { debtor: who, principal: 10, interest: 3, term_secs: 180 },
      });
      memory.rescued[who] = count + 1;
      spare -= need;
    }
  }
  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  actions.push({ action: "sleep", on: { type: "AGENT_FROZEN" }, secs: 30 });
  return actions;
}
