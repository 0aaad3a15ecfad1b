// A toy forecaster: a few steps of a deterministic random walk from a seed, and a
// deliberately wasteful inner loop so that calls cost measurable CPU.
function run(args, ctx) {
  let level = 100;
  const path = [];
  for (let i = 0; i < args.horizon; i++) {
    let noise = 0;
    for (let j = 0; j < 2000; j++) noise += Math.random() - 0.5;
    level = Math.round(level + noise);
    path.push(level);
  }
  return { path };
}
