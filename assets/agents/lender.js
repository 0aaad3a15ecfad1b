// A lender offers short loans to agents running low, for interest. Debt is a note
// the lender owns (no balance goes negative): the borrower accepts it to get the
// money, repays before it falls due, or defaults in public. Past due, the lender
// collects what the debtor holds, and it stops lending to defaulters.
function step(view) {
  const memory = view.memory ? JSON.parse(view.memory) : { notes: [], refused: [] };
  const actions = [];

  // Keep track of the notes: collect what is overdue, forget what is settled.
  const open = [];
  for (const id of memory.notes) {
    const info = kernel.artifact(id);
    const note = info.debt;
    if (!note) continue;
    if (note.status === "defaulted" && note.outstanding > 0) {
      if (!memory.refused.includes(note.debtor)) memory.refused.push(note.debtor);
      if (kernel.balance(note.debtor) > 0) {
        actions.push({ action: "invoke", id: "kernel_debt", method: "collect", args: { id } });
      }
      open.push(id);
    } else if (note.status === "offered" && view.now - note.offered_at > 60) {
      actions.push({ action: "invoke", id: "kernel_debt", method: "cancel", args: { id } });
    } else if (note.status === "offered" || note.status === "active") {
      open.push(id);
    }
  }
  memory.notes = open;

  // Offer: to an agent below 25 scrip that is not frozen, owes us nothing and
  // never defaulted on us. At most four loans out at once.
  if (open.length < 4 && view.scrip >= 60) {
    const candidates = kernel.query({ kind: "agent", sample: 50, fields: ["id", "frozen", "scrip"] });
    const borrowers = candidates.items.filter((p) =>
      p.id !== view.self && !p.frozen && p.scrip < 25 && !memory.refused.includes(p.id) &&
      !open.some((id) => kernel.artifact(id).debt.debtor === p.id));
    if (borrowers.length > 0) {
      const who = borrowers[0].id;
      actions.push({
        action: "invoke",
        id: "kernel_debt",
        method: "offer",
        args: { debtor: who, principal: 20, interest: 4, term_secs: 120 },
      });
    }
  }
  // The note ids of offers made last step.
  for (const r of view.inbox) {
    if (r.action === "invoke" && r.id === "kernel_debt" && r.success && r.result && r.result.id &&
        !memory.notes.includes(r.result.id)) {
      memory.notes.push(r.result.id);
    }
  }

  actions.push({ action: "write", id: view.self, content: JSON.stringify(memory) });
  return actions;
}
