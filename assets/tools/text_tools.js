// Text utilities, offered as a service: word counts and keyword extraction.
// Invoked as run(args, ctx); args follow the interface declared in the scene.
function run(args, ctx) {
  const text = String(args.text || "");
  const words = text.toLowerCase().match(/[a-z0-9']+/g) || [];
  if (args.op === "count") {
    return { words: words.length, chars: text.length };
  }
  const freq = {};
  for (const w of words) {
    if (w.length > 3) freq[w] = (freq[w] || 0) + 1;
  }
  const top = Object.keys(freq).sort((a, b) => freq[b] - freq[a] || (a < b ? -1 : 1));
  return { keywords: top.slice(0, args.limit || 5) };
}
