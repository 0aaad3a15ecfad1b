// A scout reaches outside the world: it asks for the `files` capability, then, through
// the MCP gateway `mcp_files`, lists the directory it may read and reads the scenes it
// finds there, one call at a time (each result arrives in its inbox a step later).
// What it learns it writes down as an artifact, `scout_notes`, for anyone to read.
// A request a person decides later is answered by an event, not in the inbox.
function step(view) {
  const mem = view.memory ? JSON.parse(view.memory) : { phase: "ask", files: [], notes: {}, waiting: false };
  for (const e of view.events) {
    const mine = e.payload && e.payload.principal === view.self && e.payload.capability === "files";
    if (mine && mem.phase === "wait" && e.type === "CAPABILITY_GRANTED") mem.phase = "list";
    if (mine && mem.phase === "wait" && e.type === "CAPABILITY_DENIED") mem.phase = "refused";
  }
  for (const r of view.inbox) {
    if (r.id === "kernel_capabilities" && r.success) {
      mem.phase = r.result.status === "granted" ? "list" : r.result.status === "denied" ? "refused" : "wait";
    } else if (r.request !== undefined) {
      mem.waiting = false;
      if (!r.success) {
        mem.notes[r.method] = "failed: " + r.error.message;
      } else if (r.method === "list_directory") {
        mem.files = r.result.text.split("\n").filter((l) => l.startsWith("[FILE]") && l.endsWith(".ron"))
          .map((l) => l.slice("[FILE] ".length)).slice(0, 3);
        mem.phase = "read";
      } else if (r.method === "read_file") {
        const name = mem.files[Object.keys(mem.notes).length];
        const described = r.result.text.split("\n").find((l) => l.includes("description:"));
        mem.notes[name] = described ? described.trim() : r.result.text.length + " characters";
      }
    }
  }
  const acts = [];
  if (mem.phase === "ask") {
    acts.push({ action: "invoke", id: "kernel_capabilities", method: "request",
                args: { capability: "files", reason: "to read the scenes on disk and tell the others about them" } });
    mem.phase = "wait";
  } else if (mem.phase === "list" && !mem.waiting) {
    acts.push({ action: "invoke", id: "mcp_files", method: "list_directory", args: { path: "." } });
    mem.waiting = true;
  } else if (mem.phase === "read" && !mem.waiting) {
    const next = mem.files[Object.keys(mem.notes).length];
    if (next !== undefined) {
      acts.push({ action: "invoke", id: "mcp_files", method: "read_file", args: { path: next } });
      mem.waiting = true;
    } else {
      acts.push({ action: "write", id: "scout_notes", content: JSON.stringify(mem.notes, null, 1) });
      mem.phase = "done";
    }
  }
  acts.unshift({ action: "write", id: view.self, content: JSON.stringify(mem) });
  if (mem.phase === "done" || mem.phase === "refused") acts.push({ action: "sleep", secs: 100000 });
  return acts;
}
