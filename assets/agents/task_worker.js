// A worker selling its labour on the task board. It subscribes to new tasks and to
// rejections (a rejected task is open again), claims one task at a time — the board
// gives each task to one claimant only, so workers woken together do not both do the
// same job — writes the note asked for into an artifact and submits it. When paid,
// it adds a line to the shared worklog; the worklog is read, changed and written back
// over several steps, so a worker holds the `worklog` lock while it does, or two
// workers would each write back their own copy and one line would be lost.
//
// A worker whose description says "hasty" skips the word on its first job (and has
// it rejected), to show that the poster checks before it pays.
function step(view) {
  const memory = view.memory
    ? JSON.parse(view.memory)
    : { subscribed: false, known: {}, open: [], phase: "idle", task: null, jobs: 0, earned: 0, log: [], hasty: null };
  const actions = [];
  const tasks = { action: "invoke", id: "kernel_tasks" };
  if (memory.hasty === null) {
    const me = kernel.artifact(view.self);
    memory.hasty = String(me.description || "").includes("hasty");
  }

  if (!memory.subscribed) {
    const filters = [{ type: "TASK_POSTED" }, { type: "TASK_REJECTED" }, { type: "TASK_ACCEPTED", artifact: view.self }];
    for (const args of filters) {
      actions.push({ action: "invoke", id: "kernel_subscriptions", method: "subscribe", args });
    }
    memory.subscribed = true;
  }

  // What happened: tasks to do (kept until a claim says they are taken), and the
  // word each asks for.
  const offer = (task) => {
    if (!memory.open.includes(task)) memory.open.push(task);
  };
  for (const event of view.events) {
    const p = event.payload || {};
    if (event.type === "TASK_POSTED") {
      memory.known[p.task] = (p.description.match(/'([a-z]+)'/) || [])[1] || "";
      offer(p.task);
    } else if (event.type === "TASK_REJECTED" && p.reopened) {
      offer(p.task);
    }
    if (event.type === "TASK_ACCEPTED" && p.claimant === view.self && p.task === memory.task) {
      memory.earned += p.reward;
      memory.log.push(view.self + " was paid " + p.reward + " for " + p.task + " at " + view.now + " s");
      memory.phase = "idle";
      memory.task = null;
    } else if (event.type === "TASK_REJECTED" && p.claimant === view.self && p.task === memory.task) {
      memory.phase = "idle";
      memory.task = null;
    } else if (event.type === "TASK_EXPIRED" && p.task === memory.task) {
      memory.phase = "idle";
      memory.task = null;
    }
  }

  // What became of my requests.
  for (const entry of view.inbox) {
    if (entry.action === "invoke" && entry.id === "kernel_tasks" && memory.phase === "claiming") {
      // Either way the task is no longer on offer: mine now, or someone else's.
      memory.open = memory.open.filter((t) => t !== memory.task);
      if (entry.success && entry.result.status === "claimed") {
        memory.phase = "working";
      } else if (!entry.success) {
        memory.phase = "idle";
        memory.task = null;
      }
    } else if (entry.action === "invoke" && entry.id === "kernel_locks" && memory.phase === "locking") {
      // Held: now read the worklog, to add to it next step.
      if (entry.success && entry.result.acquired) {
        actions.push({ action: "read", id: "worklog" });
        memory.phase = "reading";
      }
    } else if (entry.action === "read" && entry.id === "worklog" && memory.phase === "reading") {
      if (entry.success) {
        const lines = memory.log.splice(0).join("\n");
        actions.push({ action: "write", id: "worklog", content: entry.result.content + lines + "\n" });
      }
      actions.push({ action: "invoke", id: "kernel_locks", method: "release", args: { name: "worklog" } });
      memory.phase = "idle";
    }
  }

  if (memory.phase === "working") {
    // Do the job: write the note, then hand it in (intents run in order).
    memory.jobs += 1;
    const word = memory.known[memory.task] || "";
    const skip = memory.hasty && memory.jobs === 1;
    const id = view.self + "_note_" + memory.jobs;
    const content = skip
      ? "A quick note, written in a hurry by " + view.self + "."
      : "A note by " + view.self + " on the " + word + ", written for " + memory.task + " at " + view.now + " s.";
    actions.push({ action: "write", id, content, description: "Work for " + memory.task });
    actions.push({ ...tasks, method: "submit", args: { task: memory.task, artifact: id } });
    memory.phase = "submitted";
  } else if (memory.phase === "idle" && memory.log.length > 0) {
    actions.push({ action: "invoke", id: "kernel_locks", method: "acquire", args: { name: "worklog", secs: 20 } });
    memory.phase = "locking";
  } else if (memory.phase === "locking") {
    // Someone else holds the worklog: ask again.
    actions.push({ action: "invoke", id: "kernel_locks", method: "acquire", args: { name: "worklog", secs: 20 } });
  } else if (memory.phase === "idle" && memory.open.length > 0) {
    memory.task = memory.open[0];
    memory.phase = "claiming";
    actions.push({ ...tasks, method: "claim", args: { task: memory.task } });
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  // Between jobs, sleep until the board has news; in the middle of one, go on at
  // the usual pace.
  const waiting = memory.phase === "submitted" || (memory.phase === "idle" && memory.open.length === 0);
  return waiting ? { actions, sleep: { secs: 60 } } : actions;
}
