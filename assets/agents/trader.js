// A trader pays a little to another principal now and then: money has to move for a
// market to exist. It keeps a reserve and asks discovery for one partner drawn at
// random among everyone who can hold scrip (the world's seeded random, so a run
// replays exactly, and every principal can be chosen however many there are).
function step(view) {
  if (view.scrip <= 30) return [{ action: "sleep", secs: 30 }];
  const partner = kernel.query({
    kind: ["principal", "agent"],
    exclude: [view.self, "kernel"],
    sample: 1,
    fields: ["id"],
  }).items[0];
  if (!partner) return [{ action: "sleep", secs: 30 }];
  return [{ action: "transfer", to: partner.id, amount: 1 + Math.floor(Math.random() * 3) }];
}
