// A patron lives off its tool's sales and bails out customers who froze: when the
// dinner bell rings (AGENT_FROZEN), it sends the frozen one enough scrip to go on,
// if it can spare it. Otherwise it sleeps until the next bell.
function step(view) {
  const frozen = view.events.filter((e) => e.type === "AGENT_FROZEN");
  let spare = view.scrip - 20;
  const gifts = [];
  for (const e of frozen) {
    if (spare >= 25) {
      gifts.push({ action: "transfer", to: e.payload.principal, amount: 25 });
      spare -= 25;
    }
  }
  return gifts.concat([{ action: "sleep", on: { type: "AGENT_FROZEN" } }]);
}
