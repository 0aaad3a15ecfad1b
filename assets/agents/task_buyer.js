// A buyer of work. It posts writing tasks on the task board, each asking for a note
// that mentions one word, with a reward the board holds until the task is settled.
// It subscribes to results submitted for its tasks, so it wakes when one arrives
// rather than polling; it reads the artifact handed in and pays for it only if the
// note says what was asked. A rejected task is open again for any worker. Tasks
// come in batches of three every 70 s; the last of the last batch is a rush job
// that nobody can deliver in time, so it expires and its reward comes back.
const WORDS = ["river", "lantern", "harvest", "compass", "orchard", "glacier", "meadow", "beacon", "thistle"];
const BATCHES = 3;
const PER_BATCH = 3;

function step(view) {
  const memory = view.memory
    ? JSON.parse(view.memory)
    : { subscribed: false, queued: [], tasks: {}, reviews: {}, next: 0, batches: 0, accepted: 0, rejected: 0 };
  const actions = [];

  if (!memory.subscribed) {
    // Results handed in for my tasks name me as their poster.
    actions.push({
      action: "invoke",
      id: "kernel_subscriptions",
      method: "subscribe",
      args: { type: "TASK_SUBMITTED", artifact: view.self },
    });
    memory.subscribed = true;
  }

  for (const entry of view.inbox) {
    if (!entry.success || !entry.result) continue;
    if (entry.action === "invoke" && entry.id === "kernel_tasks" && entry.result.task && entry.result.reward) {
      // A post went through: its word is the oldest one waiting for a task id.
      const word = memory.queued.shift();
      if (word) memory.tasks[entry.result.task] = { word, status: "open" };
    } else if (entry.action === "read" && memory.reviews[entry.id]) {
      const task = memory.reviews[entry.id];
      delete memory.reviews[entry.id];
      const word = memory.tasks[task] ? memory.tasks[task].word : "";
      const content = String(entry.result.content || "").toLowerCase();
      if (word && content.includes(word) && content.length >= 40) {
        actions.push({ action: "invoke", id: "kernel_tasks", method: "accept", args: { task } });
        memory.tasks[task].status = "accepted";
        memory.accepted += 1;
      } else {
        const reason = "the note must mention '" + word + "' and be at least 40 characters";
        actions.push({ action: "invoke", id: "kernel_tasks", method: "reject", args: { task, reason } });
        memory.rejected += 1;
      }
    }
  }

  for (const event of view.events) {
    const p = event.payload || {};
    if (event.type === "TASK_SUBMITTED" && p.poster === view.self && memory.tasks[p.task]) {
      if (p.artifact) {
        // Look at the work before paying for it.
        actions.push({ action: "read", id: p.artifact });
        memory.reviews[p.artifact] = p.task;
      } else {
        actions.push({
          action: "invoke",
          id: "kernel_tasks",
          method: "reject",
          args: { task: p.task, reason: "hand in an artifact with the note" },
        });
      }
    } else if (event.type === "TASK_EXPIRED" && memory.tasks[p.task]) {
      memory.tasks[p.task].status = "expired";
    }
  }

  // Post a batch of tasks every 70 s while the money lasts.
  if (memory.batches < BATCHES && view.now >= 5 + 70 * memory.batches) {
    memory.batches += 1;
    for (let i = 0; i < PER_BATCH; i++) {
      const word = WORDS[memory.next % WORDS.length];
      const reward = 10 + 3 * (memory.next % 4);
      const rush = memory.batches === BATCHES && i === PER_BATCH - 1;
      if (view.scrip < reward * (i + 1)) break;
      actions.push({
        action: "invoke",
        id: "kernel_tasks",
        method: "post",
        args: {
          description: "Write a note of at least 40 characters that mentions the word '" + word + "'." +
            (rush ? " Needed within 2 seconds." : ""),
          reward,
          deadline_secs: rush ? 2 : 120,
        },
      });
      memory.queued.push(word);
      memory.next += 1;
    }
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
