//! The task board: buying work with the reward held up front.
//!
//! A poster describes a task and names a reward; the reward leaves its scrip at once
//! and is held by the board (counted in the scrip supply, like the mint's bids), so a
//! worker can see the money exists before doing anything. Then:
//!
//! ```text
//! open ──claim──▶ claimed ──submit──▶ submitted ──accept──▶ accepted (reward → claimant)
//!  │  ◀─release──   │                     │
//!  │  ◀───────────────────── reject ──────┘   (the reason is kept; anyone may claim again)
//!  └─cancel──▶ cancelled (reward → poster)
//! open/claimed past the deadline ──▶ expired (reward → poster)
//! ```
//!
//! Claims are exclusive and the poster cannot claim its own task. Only the claimant
//! submits (a text, an artifact id, or both); only the poster accepts or rejects. A
//! rejected task goes back to *open*, not to its claimant: the poster said the work
//! was not good enough, so it is anyone's to try — the claimant included, who can
//! read why in the task. The deadline is for delivery: a task still open or claimed
//! when it passes expires in that step's Settle phase and the reward goes back; a
//! result submitted in time waits for the poster's word, and rejecting it after the
//! deadline expires the task instead of reopening it.
//!
//! Tasks are never removed, so `status` answers for settled ones too.

use std::collections::{BTreeMap, BTreeSet};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services::{self, TASKS_ID};
use crate::{
    kernel::{
        ErrorCode, EventKind, Kernel, KernelError, journal,
        ledger::{Holder, Standing},
    },
    world::{
        ids::{self, ArtifactId},
        time::{SimClock, SimTime},
    },
};

/// Unsettled tasks (open, claimed or submitted) one poster may have at once.
pub const MAX_OPEN_TASKS: usize = 100;
/// Rejections kept per task (the most recent).
const REJECTIONS_KEPT: usize = 10;

/// Every task ever posted, and the scrip held for those not settled.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBoard {
    /// The number of the last task posted.
    last: u64,
    tasks: BTreeMap<u64, Task>,
    /// Tasks with a deadline, by deadline, until they are settled or expire.
    deadlines: BTreeSet<(SimTime, u64)>,
}

/// One task and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub poster: ArtifactId,
    pub description: String,
    pub reward: u64,
    pub posted_at: SimTime,
    pub deadline: Option<SimTime>,
    pub status: TaskStatus,
    pub claimant: Option<ArtifactId>,
    pub claimed_at: Option<SimTime>,
    pub submission: Option<Submission>,
    pub rejections: Vec<Rejection>,
    /// When it was accepted, cancelled or expired.
    pub closed_at: Option<SimTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Claimed,
    Submitted,
    Accepted,
    Cancelled,
    Expired,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Submitted => "submitted",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Expired => "expired",
        }
    }

    /// Whether the reward is still held.
    pub fn unsettled(self) -> bool {
        matches!(self, TaskStatus::Open | TaskStatus::Claimed | TaskStatus::Submitted)
    }
}

/// What a claimant handed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub text: Option<String>,
    pub artifact: Option<ArtifactId>,
    pub at: SimTime,
}

/// A result the poster turned down, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub claimant: ArtifactId,
    pub reason: String,
    pub at: SimTime,
}

/// Counts over the board, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub posted: u64,
    /// Open, claimed or submitted.
    pub unsettled: u64,
    pub accepted: u64,
    pub cancelled: u64,
    pub expired: u64,
    /// Rewards paid to claimants.
    pub paid: u64,
    /// Rewards held for unsettled tasks.
    pub held: u64,
}

impl TaskBoard {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(&number(id)?)
    }

    /// Every task, oldest first, with its id.
    pub fn tasks(&self) -> impl Iterator<Item = (String, &Task)> {
        self.tasks.iter().map(|(n, task)| (task_id(*n), task))
    }

    pub fn counts(&self) -> TaskCounts {
        let mut counts = TaskCounts { posted: self.tasks.len() as u64, ..TaskCounts::default() };
        for task in self.tasks.values() {
            match task.status {
                TaskStatus::Accepted => {
                    counts.accepted += 1;
                    counts.paid += task.reward;
                }
                TaskStatus::Cancelled => counts.cancelled += 1,
                TaskStatus::Expired => counts.expired += 1,
                _ => {
                    counts.unsettled += 1;
                    counts.held += task.reward;
                }
            }
        }
        counts
    }

    /// Each poster's held rewards, for saving a world as a new start (they are
    /// returned to their posters there).
    pub(crate) fn held_by(&self) -> BTreeMap<&ArtifactId, u64> {
        let mut out: BTreeMap<&ArtifactId, u64> = BTreeMap::new();
        for task in self.tasks.values().filter(|t| t.status.unsettled()) {
            *out.entry(&task.poster).or_default() += task.reward;
        }
        out
    }
}

fn task_id(n: u64) -> String {
    format!("task-{n}")
}

fn number(id: &str) -> Option<u64> {
    id.strip_prefix("task-")?.parse().ok()
}

fn task_json(id: &str, task: &Task, with_submission: bool) -> Value {
    let secs = |t: Option<SimTime>| t.map(SimTime::as_secs_f64);
    let mut value = json!({
        "id": id,
        "poster": task.poster,
        "description": task.description,
        "reward": task.reward,
        "status": task.status.as_str(),
        "posted_at": task.posted_at.as_secs_f64(),
        "deadline_at": secs(task.deadline),
        "claimant": task.claimant,
        "claimed_at": secs(task.claimed_at),
        "submitted_artifact": task.submission.as_ref().and_then(|s| s.artifact.clone()),
        "rejections": task.rejections.iter().map(|r| json!({
            "claimant": r.claimant, "reason": r.reason, "at": r.at.as_secs_f64(),
        })).collect::<Vec<_>>(),
        "closed_at": secs(task.closed_at),
    });
    if with_submission {
        value["submission"] = task
            .submission
            .as_ref()
            .map(|s| json!({ "text": s.text, "artifact": s.artifact, "at": s.at.as_secs_f64() }))
            .unwrap_or(Value::Null);
    }
    value
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Post {
        description: String,
        reward: i64,
        deadline_secs: Option<f64>,
    }
    #[derive(Deserialize)]
    struct One {
        task: String,
    }
    #[derive(Deserialize)]
    struct Submit {
        task: String,
        text: Option<String>,
        artifact: Option<String>,
    }
    #[derive(Deserialize)]
    struct Reject {
        task: String,
        reason: String,
    }
    #[derive(Deserialize)]
    struct List {
        status: Option<TaskStatus>,
        poster: Option<String>,
        claimant: Option<String>,
        cursor: Option<u64>,
        limit: Option<u64>,
    }
    let task = |input: &Value| services::args::<One>(method, input).map(|a| a.task);
    match method {
        "post" => {
            let a: Post = services::args(method, input)?;
            let deadline = match a.deadline_secs {
                None => None,
                Some(secs) => Some(
                    SimTime::from_secs_f64(secs)
                        .filter(|t| t.millis() > 0)
                        .ok_or_else(|| KernelError::invalid(format!("deadline_secs {secs} is not a time to come")))?,
                ),
            };
            kernel.post_task(&a.description, a.reward, deadline)
        }
        "claim" => kernel.claim_task(&task(input)?),
        "release" => kernel.release_task(&task(input)?),
        "submit" => {
            let a: Submit = services::args(method, input)?;
            kernel.submit_task(&a.task, a.text, a.artifact.as_deref())
        }
        "accept" => kernel.accept_task(&task(input)?),
        "reject" => {
            let a: Reject = services::args(method, input)?;
            kernel.reject_task(&a.task, &a.reason)
        }
        "cancel" => kernel.cancel_task(&task(input)?),
        "status" => {
            let id = task(input)?;
            let (_, task) = kernel.task(&id)?;
            Ok(task_json(&id, &task, true))
        }
        "list" => {
            let a: List = services::args(method, input)?;
            let filter = |t: &Task| {
                a.status.is_none_or(|s| t.status == s)
                    && a.poster.as_deref().is_none_or(|p| t.poster == p)
                    && a.claimant.as_deref().is_none_or(|c| t.claimant.as_ref().is_some_and(|x| x == c))
            };
            Ok(list_json(kernel.world(), filter, a.cursor.unwrap_or(0), a.limit.unwrap_or(50)))
        }
        _ => Err(services::no_such_method(TASKS_ID, method)),
    }
}

/// One page of the tasks `filter` keeps, oldest first; `next_cursor` continues it.
fn list_json(world: &World, filter: impl Fn(&Task) -> bool, cursor: u64, limit: u64) -> Value {
    let board = world.resource::<TaskBoard>();
    let mut items = Vec::new();
    let mut next_cursor = None;
    let matching = board.tasks.iter().filter(|(_, t)| filter(t));
    for (position, (n, task)) in matching.enumerate().skip(cursor as usize) {
        if items.len() as u64 == limit {
            next_cursor = Some(position as u64);
            break;
        }
        items.push(task_json(&task_id(*n), task, false));
    }
    json!({ "items": items, "next_cursor": next_cursor })
}

/// A task not in the state an operation needs.
fn wrong_status(id: &str, task: &Task, needed: &str) -> KernelError {
    KernelError::invalid(format!("{id} is {}; it must be {needed}", task.status.as_str()))
        .with("task", id)
        .with("status", task.status.as_str())
}

/// Settle phase: tasks still open or claimed at their deadline expire; their rewards
/// go back to their posters.
pub(crate) fn expire_overdue_tasks(world: &mut World) {
    let now = world.resource::<SimClock>().now();
    let mut due = Vec::new();
    {
        let mut board = world.resource_mut::<TaskBoard>();
        while let Some(&(at, n)) = board.deadlines.first() {
            if at > now {
                break;
            }
            board.deadlines.pop_first();
            if board.tasks.get(&n).is_some_and(|t| matches!(t.status, TaskStatus::Open | TaskStatus::Claimed)) {
                due.push(n);
            }
        }
    }
    if due.is_empty() {
        return;
    }
    let Ok(mut kernel) = Kernel::as_system(world) else { return };
    for n in due {
        kernel.expire_task(n);
    }
}

impl Kernel<'_> {
    /// Task `id` by number, with a copy of it.
    fn task(&self, id: &str) -> Result<(u64, Task), KernelError> {
        number(id)
            .and_then(|n| self.world.resource::<TaskBoard>().tasks.get(&n).map(|t| (n, t.clone())))
            .ok_or_else(|| KernelError::new(ErrorCode::NotFound, format!("there is no task {id:?}")).with("task", id))
    }

    fn put_task(&mut self, n: u64, task: Task) {
        self.save_task(n);
        self.world.resource_mut::<TaskBoard>().tasks.insert(n, task);
    }

    /// Journals task `n` as it is (or that there is none), the board's count and the
    /// task's place in the deadline index, before a change.
    fn save_task(&mut self, n: u64) {
        journal::save_with::<TaskBoard, _>(
            self.world,
            |board| {
                let before = board.tasks.get(&n).cloned();
                let indexed =
                    before.as_ref().and_then(|t| t.deadline).is_some_and(|at| board.deadlines.contains(&(at, n)));
                (before, indexed, board.last)
            },
            move |board, (before, indexed, last)| {
                if let Some(at) = board.tasks.get(&n).and_then(|t| t.deadline) {
                    board.deadlines.remove(&(at, n));
                }
                match before {
                    Some(task) => {
                        if let (Some(at), true) = (task.deadline, indexed) {
                            board.deadlines.insert((at, n));
                        }
                        board.tasks.insert(n, task);
                    }
                    None => {
                        board.tasks.remove(&n);
                    }
                }
                board.last = last;
            },
        );
    }

    /// Gives a settled task's reward back to its poster, emits `event`, and then
    /// thaws the poster if that was what it lacked.
    fn refund(&mut self, task: &Task, event: EventKind) {
        let poster = ids::lookup(self.world, task.poster.as_str());
        self.emit(event);
        if let Some(poster) = poster {
            self.release_scrip(Holder::Tasks, poster, task.reward);
        }
    }

    /// Ends task `n` at its deadline (the caller is the world).
    fn expire_task(&mut self, n: u64) {
        let Some(mut task) = self.world.resource::<TaskBoard>().tasks.get(&n).cloned() else { return };
        task.status = TaskStatus::Expired;
        task.closed_at = Some(self.now);
        self.put_task(n, task.clone());
        let expired = EventKind::TaskExpired {
            task: task_id(n),
            poster: task.poster.clone(),
            claimant: task.claimant.clone(),
            refunded: task.reward,
        };
        self.refund(&task, expired);
    }

    /// Posts a task; `reward` scrip leaves the caller and is held until the task is
    /// settled.
    pub fn post_task(
        &mut self,
        description: &str,
        reward: i64,
        deadline: Option<SimTime>,
    ) -> Result<Value, KernelError> {
        let reward = crate::kernel::positive(reward, "reward")?;
        let Some(held) = self.world.get::<Standing>(self.caller_entity).map(Standing::scrip) else {
            return Err(
                KernelError::not_a_principal(self.caller.as_str()).with("hint", "only principals can post tasks")
            );
        };
        if held < reward {
            return Err(KernelError::new(
                ErrorCode::InsufficientFunds,
                format!("a reward of {reward} scrip is held at once; {} holds {held}", self.caller),
            )
            .with("needed", reward)
            .with("available", held));
        }
        let board = self.world.resource::<TaskBoard>();
        let open = board.tasks.values().filter(|t| t.poster == self.caller && t.status.unsettled()).count();
        if open >= MAX_OPEN_TASKS {
            return Err(KernelError::invalid(format!(
                "{} has {open} unsettled tasks, the most a poster may; settle or cancel some first",
                self.caller
            ))
            .with("limit", MAX_OPEN_TASKS as u64));
        }
        let deadline = deadline.map(|d| self.now.saturating_add(d));
        self.hold_scrip(self.caller_entity, Holder::Tasks, reward)?;
        let task = Task {
            poster: self.caller.clone(),
            description: description.to_owned(),
            reward,
            posted_at: self.now,
            deadline,
            status: TaskStatus::Open,
            claimant: None,
            claimed_at: None,
            submission: None,
            rejections: Vec::new(),
            closed_at: None,
        };
        let n = self.world.resource::<TaskBoard>().last + 1;
        self.save_task(n);
        let mut board = self.world.resource_mut::<TaskBoard>();
        board.last = n;
        board.tasks.insert(n, task);
        if let Some(at) = deadline {
            board.deadlines.insert((at, n));
        }
        let id = task_id(n);
        let deadline_at = deadline.map(SimTime::as_secs_f64);
        self.emit(EventKind::TaskPosted { task: id.clone(), reward, deadline_at, description: description.to_owned() });
        Ok(json!({ "task": id, "reward": reward, "deadline_at": deadline_at }))
    }

    /// Refuses an operation on a task whose deadline has passed (it expires this step).
    fn before_deadline(&self, id: &str, task: &Task) -> Result<(), KernelError> {
        match task.deadline {
            Some(at) if at <= self.now => {
                Err(KernelError::invalid(format!("{id}'s deadline ({} s) has passed", at.as_secs_f64()))
                    .with("task", id))
            }
            _ => Ok(()),
        }
    }

    /// The caller claims an open task: only it may submit a result now.
    pub fn claim_task(&mut self, id: &str) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        if task.status != TaskStatus::Open {
            let mut error = wrong_status(id, &task, "open to be claimed");
            if let Some(claimant) = &task.claimant {
                error = error.with("claimant", claimant.as_str());
            }
            return Err(error);
        }
        if task.poster == self.caller {
            return Err(KernelError::invalid(format!(
                "{} posted {id}; a poster cannot claim its own task",
                self.caller
            ))
            .with("task", id));
        }
        if self.world.get::<Standing>(self.caller_entity).is_none() {
            return Err(KernelError::not_a_principal(self.caller.as_str())
                .with("hint", "only principals can claim tasks: the reward needs somewhere to go"));
        }
        self.before_deadline(id, &task)?;
        task.status = TaskStatus::Claimed;
        task.claimant = Some(self.caller.clone());
        task.claimed_at = Some(self.now);
        task.submission = None;
        let poster = task.poster.clone();
        self.put_task(n, task.clone());
        self.emit(EventKind::TaskClaimed { task: id.to_owned(), poster });
        Ok(task_json(id, &task, false))
    }

    /// The claimant of `task`, or a refusal naming who may act.
    fn require_claimant(&self, id: &str, task: &Task) -> Result<(), KernelError> {
        if task.claimant.as_ref() != Some(&self.caller) {
            let who = task.claimant.as_ref().map_or("nobody".to_owned(), ToString::to_string);
            return Err(KernelError::new(
                ErrorCode::AccessDenied,
                format!("{id} is claimed by {who}, not {}; only its claimant may do that", self.caller),
            )
            .with("task", id));
        }
        Ok(())
    }

    fn require_poster(&self, id: &str, task: &Task, what: &str) -> Result<(), KernelError> {
        if task.poster != self.caller {
            return Err(KernelError::new(
                ErrorCode::NotOwner,
                format!("only {id}'s poster, {}, may {what} it", task.poster),
            )
            .with("task", id)
            .with("poster", task.poster.as_str()));
        }
        Ok(())
    }

    /// The claimant gives a claimed task back: it is open again.
    pub fn release_task(&mut self, id: &str) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        if task.status != TaskStatus::Claimed {
            return Err(wrong_status(id, &task, "claimed to be released"));
        }
        self.require_claimant(id, &task)?;
        task.status = TaskStatus::Open;
        task.claimant = None;
        task.claimed_at = None;
        let poster = task.poster.clone();
        self.put_task(n, task.clone());
        self.emit(EventKind::TaskReleased { task: id.to_owned(), poster });
        Ok(task_json(id, &task, false))
    }

    /// The claimant hands in its result: a text, an artifact, or both.
    pub fn submit_task(
        &mut self,
        id: &str,
        text: Option<String>,
        artifact: Option<&str>,
    ) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        if task.status != TaskStatus::Claimed {
            return Err(wrong_status(id, &task, "claimed (by you) to submit a result"));
        }
        self.require_claimant(id, &task)?;
        self.before_deadline(id, &task)?;
        if text.is_none() && artifact.is_none() {
            return Err(KernelError::invalid("a submission needs a text, an artifact, or both"));
        }
        let artifact = match artifact {
            Some(artifact) => {
                let entity = self.live(artifact)?;
                Some(self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(artifact))?)
            }
            None => None,
        };
        task.status = TaskStatus::Submitted;
        task.submission = Some(Submission { text, artifact: artifact.clone(), at: self.now });
        let poster = task.poster.clone();
        self.put_task(n, task.clone());
        self.emit(EventKind::TaskSubmitted { task: id.to_owned(), poster, artifact });
        Ok(task_json(id, &task, false))
    }

    /// The poster accepts the submitted result: the reward goes to the claimant.
    pub fn accept_task(&mut self, id: &str) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        self.require_poster(id, &task, "accept")?;
        if task.status != TaskStatus::Submitted {
            return Err(wrong_status(id, &task, "submitted to be accepted"));
        }
        let Some(claimant) = task.claimant.clone() else {
            return Err(wrong_status(id, &task, "claimed by someone"));
        };
        let claimant_entity = self.principal(claimant.as_str())?;
        if self.standing(claimant_entity)?.scrip().checked_add(task.reward).is_none() {
            return Err(KernelError::invalid(format!("paying {claimant} would overflow")));
        }
        task.status = TaskStatus::Accepted;
        task.closed_at = Some(self.now);
        self.put_task(n, task.clone());
        self.emit(EventKind::TaskAccepted { task: id.to_owned(), claimant: claimant.clone(), reward: task.reward });
        // Paid by the poster through the board: scrip moved between the two.
        self.pay_from_held(Holder::Tasks, self.caller_entity, claimant_entity, task.reward);
        Ok(json!({ "task": id, "claimant": claimant, "paid": task.reward }))
    }

    /// The poster turns the submitted result down: the task is open again (or, past
    /// its deadline, expires).
    pub fn reject_task(&mut self, id: &str, reason: &str) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        self.require_poster(id, &task, "reject")?;
        if task.status != TaskStatus::Submitted {
            return Err(wrong_status(id, &task, "submitted to be rejected"));
        }
        let Some(claimant) = task.claimant.take() else {
            return Err(wrong_status(id, &task, "claimed by someone"));
        };
        let reopened = task.deadline.is_none_or(|at| at > self.now);
        if task.rejections.len() == REJECTIONS_KEPT {
            task.rejections.remove(0);
        }
        task.rejections.push(Rejection { claimant: claimant.clone(), reason: reason.to_owned(), at: self.now });
        task.status = TaskStatus::Open;
        task.claimed_at = None;
        task.submission = None;
        self.put_task(n, task);
        self.emit(EventKind::TaskRejected {
            task: id.to_owned(),
            claimant: claimant.clone(),
            reason: reason.to_owned(),
            reopened,
        });
        if !reopened {
            self.expire_task(n);
        }
        let status = if reopened { "open" } else { "expired" };
        Ok(json!({ "task": id, "claimant": claimant, "status": status }))
    }

    /// The poster withdraws an open task; the reward comes back.
    pub fn cancel_task(&mut self, id: &str) -> Result<Value, KernelError> {
        let (n, mut task) = self.task(id)?;
        self.require_poster(id, &task, "cancel")?;
        if task.status != TaskStatus::Open {
            return Err(wrong_status(id, &task, "open (unclaimed) to be cancelled"));
        }
        task.status = TaskStatus::Cancelled;
        task.closed_at = Some(self.now);
        self.put_task(n, task.clone());
        if let Some(at) = task.deadline {
            // (The journal put the index entry back with the task, were this undone.)
            self.world.resource_mut::<TaskBoard>().deadlines.remove(&(at, n));
        }
        self.refund(&task, EventKind::TaskCancelled { task: id.to_owned(), refunded: task.reward });
        Ok(json!({ "task": id, "refunded": task.reward }))
    }
}
