// A rescuer sleeps until someone freezes, then sends them a little LLM budget: the
// "dinner bell" of a frozen agent is answered without polling.
function step(view) {
  const frozen = view.events.filter((e) => e.type === "AGENT_FROZEN");
  const gifts = frozen.map((e) => ({
    action: "transfer",
    to: e.payload.principal,
    amount: 200000,
    resource: "llm_budget",
  }));
  return gifts.concat([{ action: "sleep", on: { type: "AGENT_FROZEN" } }]);
}
