// A trader pays a little to another principal now and then: money has to move for a
// market to exist. It keeps a reserve and picks its partner at random (the world's
// seeded random, so a run replays exactly).
function step(view) {
  if (view.scrip <= 30) return [{ action: "sleep", secs: 30 }];
  const others = kernel
    .query({ kind: "principal" })
    .items.concat(kernel.query({ kind: "agent" }).items)
    .map((p) => p.id)
    .filter((id) => id !== view.self && id !== "kernel");
  const to = others[Math.floor(Math.random() * others.length)];
  return [{ action: "transfer", to, amount: 1 + Math.floor(Math.random() * 3) }];
}
