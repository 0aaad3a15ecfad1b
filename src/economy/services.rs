//! The world's services: system artifacts whose methods are native code.
//!
//! Each service is an artifact in every world, owned by the `kernel`, with an
//! MCP-style interface like any tool, so agents discover it with `query`, learn it with
//! `describe`, and call it with `invoke` (from an intent or from code) — the kernel
//! checks the arguments against the interface, answers the method itself, and logs
//! the invocation as usual. A service acts *as its immediate caller*: buying from
//! escrow spends the caller's scrip, exactly as if the caller had acted itself.
//!
//! Services charge no price and use no sandbox CPU.

use bevy_ecs::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::kernel::Standing;
use crate::{
    kernel::{KERNEL_ID, Kernel, KernelError},
    world::{
        components::{Artifact, Capabilities, Interface, Service, System, Tool},
        ids::ArtifactId,
        time::SimTime,
    },
};

pub const MINT_ID: &str = "kernel_mint";
pub const ESCROW_ID: &str = "kernel_escrow";
pub const DEBT_ID: &str = "kernel_debt";
pub const GOVERNANCE_ID: &str = "kernel_governance";
pub const AUDITOR_ID: &str = "system_auditor";
pub const GATEWAY_ID: &str = "kernel_llm_gateway";
pub const SUBSCRIPTIONS_ID: &str = "kernel_subscriptions";
pub const TASKS_ID: &str = "kernel_tasks";
pub const LOCKS_ID: &str = "kernel_locks";
/// The rules of the world, written for its agents: a data artifact in every world.
pub const HANDBOOK_ID: &str = "kernel_handbook";

impl Service {
    /// The services of every world (MCP gateways come with the scene's servers).
    pub const ALL: [Service; 10] = [
        Service::Mint,
        Service::Escrow,
        Service::Debt,
        Service::Governance,
        Service::Auditor,
        Service::LlmGateway,
        Service::Capabilities,
        Service::Subscriptions,
        Service::Tasks,
        Service::Locks,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Service::Mint => MINT_ID,
            Service::Escrow => ESCROW_ID,
            Service::Debt => DEBT_ID,
            Service::Governance => GOVERNANCE_ID,
            Service::Auditor => AUDITOR_ID,
            Service::LlmGateway => GATEWAY_ID,
            Service::Capabilities => super::capabilities::CAPABILITIES_ID,
            // One per server, each `mcp_<server>` (see `kernel::mcp::gateway_id`).
            Service::Mcp => "mcp_",
            Service::Subscriptions => SUBSCRIPTIONS_ID,
            Service::Tasks => TASKS_ID,
            Service::Locks => LOCKS_ID,
        }
    }

    pub fn from_id(id: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.id() == id)
    }

    fn about(self) -> &'static str {
        match self {
            Service::Mint => {
                "The mint: bid scrip on an artifact you own. Every period the highest sealed bids win, pay the \
                 next-highest bid (shared out as UBI to everyone else) and are minted scrip by the artifact's score."
            }
            Service::Escrow => {
                "Escrow: list an artifact you own at a price (ownership passes to escrow); a buyer who pays that \
                 exact price gets it, in one step; the seller may cancel."
            }
            Service::Debt => {
                "Loans as artifacts: a creditor offers a loan, the debtor accepts and receives the principal, and \
                 owes principal plus interest by the due time to whoever holds the debt artifact then."
            }
            Service::Governance => {
                "Commons: principals owned by no one, acting only on proposals their members pass by vote \
                 (quorum and threshold)."
            }
            Service::Auditor => "The auditor: a readable account of the run so far, and the health indicators.",
            Service::LlmGateway => {
                "The LLM gateway: ask a language model (OpenAI chat format, tool calling included). The principal \
                 at the root of the call pays from its LLM budget: the estimate is reserved, the real cost (tokens \
                 used × the model's price) charged; a failed call costs nothing. An agent's own call returns at \
                 once and the answer arrives in its inbox."
            }
            Service::Capabilities => {
                "Capabilities: ask for a power no scrip buys (the llm syscall for your code, an MCP server that \
                 needs one), saying why; a person or the world's policy decides, and a grant may carry a spending \
                 limit. Requests and decisions are public."
            }
            Service::Mcp => "An MCP server's tools.",
            Service::Subscriptions => {
                "Subscriptions: agents name the events they care about (by type, actor, or an id named in the \
                 event) and are woken by each one, whatever they are sleeping on, until they unsubscribe. Your \
                 own acts do not wake you."
            }
            Service::Tasks => {
                "The task board: post a task with a reward (held by the board at once), a worker claims it \
                 (exclusively) and submits a result, and the poster accepts (the reward goes to the worker) or \
                 rejects (the task is open again). Unclaimed tasks can be cancelled; tasks past their deadline \
                 undelivered expire; either way the reward comes back."
            }
            Service::Locks => {
                "Locks: take a named lock for some simulated seconds; while you hold it nobody else can. Renew it \
                 by acquiring it again, release it when done; it runs out by itself at its time."
            }
        }
    }

    fn interface(self) -> Interface {
        let tools = match self {
            Service::Mint => vec![
                tool(
                    "bid",
                    "Bid (or raise your bid) on an artifact you own; the amount is held until the auction resolves.",
                    json!({"artifact": {"type": "string"}, "amount": {"type": "integer", "minimum": 1}}),
                    &["artifact", "amount"],
                ),
                tool(
                    "cancel",
                    "Withdraw your bid on an artifact; the amount comes back.",
                    json!({"artifact": {"type": "string"}}),
                    &["artifact"],
                ),
                tool("status", "Next resolution, sealed bids, your own bids, recent results.", json!({}), &[]),
            ],
            Service::Escrow => vec![
                tool(
                    "deposit",
                    "List an artifact you own at a price, optionally for one buyer only.",
                    json!({
                        "artifact": {"type": "string"},
                        "price": {"type": "integer", "minimum": 0},
                        "buyer": {"type": "string"},
                    }),
                    &["artifact", "price"],
                ),
                tool(
                    "buy",
                    "Buy a listed artifact, naming the price you accept.",
                    json!({"artifact": {"type": "string"}, "price": {"type": "integer", "minimum": 0}}),
                    &["artifact", "price"],
                ),
                tool("cancel", "Take your listing back.", json!({"artifact": {"type": "string"}}), &["artifact"]),
                tool(
                    "listings",
                    "What is for sale, in artifact id order.",
                    json!({
                        "seller": {"type": "string"},
                        "cursor": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                    }),
                    &[],
                ),
            ],
            Service::Debt => vec![
                tool(
                    "offer",
                    "Offer a loan: principal now, principal + interest due term_secs after acceptance.",
                    json!({
                        "debtor": {"type": "string"},
                        "principal": {"type": "integer", "minimum": 1},
                        "interest": {"type": "integer", "minimum": 0},
                        "term_secs": {"type": "number", "exclusiveMinimum": 0},
                        "id": {"type": "string"},
                    }),
                    &["debtor", "principal", "interest", "term_secs"],
                ),
                tool("accept", "Accept a loan offered to you: the principal is paid out.", id_arg(), &["id"]),
                tool("cancel", "Withdraw (creditor) or decline (debtor) an offer not yet accepted.", id_arg(), &["id"]),
                tool(
                    "repay",
                    "Pay toward a debt (default: all that is owed), to whoever holds it.",
                    json!({"id": {"type": "string"}, "amount": {"type": "integer", "minimum": 1}}),
                    &["id"],
                ),
                tool(
                    "collect",
                    "Holder of an overdue debt: take what the debtor has, up to what is owed.",
                    id_arg(),
                    &["id"],
                ),
                tool("status", "A debt's terms and state.", id_arg(), &["id"]),
            ],
            Service::Governance => vec![
                tool(
                    "create_commons",
                    "Create a commons: a principal that acts only on its members' passed proposals.",
                    json!({
                        "id": {"type": "string"},
                        "members": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "quorum_pct": {"type": "integer", "minimum": 1, "maximum": 100},
                        "threshold_pct": {"type": "integer", "minimum": 0, "maximum": 99},
                        "scrip": {"type": "integer", "minimum": 0},
                    }),
                    &["id", "members"],
                ),
                tool(
                    "propose",
                    "Members: propose an action for the commons to take (or none, for a poll).",
                    json!({
                        "commons": {"type": "string"},
                        "description": {"type": "string"},
                        "action": {"type": ["object", "null"]},
                        "voting_secs": {"type": "number", "exclusiveMinimum": 0},
                    }),
                    &["commons"],
                ),
                tool(
                    "vote",
                    "Members: vote on an open proposal (a later vote replaces an earlier one).",
                    json!({"proposal": {"type": "string"}, "yes": {"type": "boolean"}}),
                    &["proposal", "yes"],
                ),
                tool(
                    "proposals",
                    "Proposals and their votes and results.",
                    json!({"commons": {"type": "string"}, "open": {"type": "boolean"}}),
                    &[],
                ),
            ],
            Service::Auditor => vec![
                tool(
                    "report",
                    "A readable account of the run from the events still in memory.",
                    json!({"since_secs": {"type": "number", "minimum": 0}}),
                    &[],
                ),
                tool("kpis", "The health indicators now, and their recent samples.", json!({}), &[]),
            ],
            Service::LlmGateway => vec![
                tool(
                    "chat",
                    "Ask a model. messages: [{role, content}]; tools/tool_choice as in OpenAI's API. Default model: \
                     yours, else the world's.",
                    json!({
                        "model": {"type": "string"},
                        "messages": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                        "tools": {"type": "array", "items": {"type": "object"}},
                        "tool_choice": {"type": ["string", "object"]},
                        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    }),
                    &["messages"],
                ),
                tool("models", "The models of this world and their prices (µ$ per million tokens).", json!({}), &[]),
            ],
            Service::Capabilities => vec![
                tool(
                    "request",
                    "Ask for a capability, saying why (optionally with the spending limit you need). Decided by a \
                     person or the world's policy; a decision is an event that names you.",
                    json!({
                        "capability": {"type": "string", "minLength": 1},
                        "reason": {"type": "string", "minLength": 1},
                        "limit": {"type": "integer", "minimum": 1},
                    }),
                    &["capability", "reason"],
                ),
                tool(
                    "list",
                    "Requests (filtered by status: pending, granted, denied; or principal), what can be asked \
                     for, and what you hold.",
                    json!({"status": {"type": "string"}, "principal": {"type": "string"}}),
                    &[],
                ),
                tool("status", "One request.", json!({"id": {"type": "integer", "minimum": 1}}), &["id"]),
            ],
            Service::Mcp => Vec::new(),
            Service::Subscriptions => vec![
                tool(
                    "subscribe",
                    "Be woken by every event matching all the fields given (at least one): type (e.g. TASK_POSTED), \
                     actor, artifact (any id named in the event). Agents only; at most 16 at once.",
                    json!({
                        "type": {"type": "string", "minLength": 1},
                        "actor": {"type": "string", "minLength": 1, "maxLength": 128},
                        "artifact": {"type": "string", "minLength": 1, "maxLength": 128},
                    }),
                    &[],
                ),
                tool("unsubscribe", "End one of your subscriptions.", id_arg(), &["id"]),
                tool("list", "Your subscriptions.", json!({}), &[]),
            ],
            Service::Tasks => vec![
                tool(
                    "post",
                    "Post a task; the reward leaves your scrip now and is held until the task is settled. \
                     deadline_secs (from now): undelivered by then, it expires and the reward comes back.",
                    json!({
                        "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                        "reward": {"type": "integer", "minimum": 1},
                        "deadline_secs": {"type": "number", "exclusiveMinimum": 0},
                    }),
                    &["description", "reward"],
                ),
                tool(
                    "claim",
                    "Claim an open task (not your own): only you may submit for it now.",
                    task_arg(),
                    &["task"],
                ),
                tool("release", "Give back a task you claimed; it is open again.", task_arg(), &["task"]),
                tool(
                    "submit",
                    "Claimant: hand in the result, a text and/or the id of an artifact.",
                    json!({
                        "task": {"type": "string"},
                        "text": {"type": "string", "maxLength": 4000},
                        "artifact": {"type": "string"},
                    }),
                    &["task"],
                ),
                tool(
                    "accept",
                    "Poster: accept the submitted result; the reward goes to the claimant.",
                    task_arg(),
                    &["task"],
                ),
                tool(
                    "reject",
                    "Poster: turn the submitted result down, saying why; the task is open again (expired, past \
                     its deadline).",
                    json!({"task": {"type": "string"}, "reason": {"type": "string", "minLength": 1, "maxLength": 500}}),
                    &["task", "reason"],
                ),
                tool("cancel", "Poster: withdraw an open task; the reward comes back.", task_arg(), &["task"]),
                tool("status", "One task: its terms, state, submission and rejections.", task_arg(), &["task"]),
                tool(
                    "list",
                    "Tasks, oldest first, by status, poster or claimant.",
                    json!({
                        "status": {"enum": ["open", "claimed", "submitted", "accepted", "cancelled", "expired"]},
                        "poster": {"type": "string"},
                        "claimant": {"type": "string"},
                        "cursor": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                    }),
                    &[],
                ),
            ],
            Service::Locks => vec![
                tool(
                    "acquire",
                    "Take the lock name for secs (renew it, if you hold it). If someone else holds it: \
                     {acquired: false, holder, expires_at}.",
                    json!({
                        "name": {"type": "string", "minLength": 1, "maxLength": 128},
                        "secs": {"type": "number", "exclusiveMinimum": 0, "maximum": super::locks::MAX_LOCK_SECS},
                    }),
                    &["name", "secs"],
                ),
                tool("release", "Let go of a lock you hold.", lock_arg(), &["name"]),
                tool("status", "Whether a lock is held, by whom, until when.", lock_arg(), &["name"]),
            ],
        };
        Interface { description: self.about().to_owned(), tools }
    }
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Tool {
    Tool {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }),
    }
}

fn id_arg() -> Value {
    json!({"id": {"type": "string"}})
}

fn task_arg() -> Value {
    json!({"task": {"type": "string"}})
}

fn lock_arg() -> Value {
    json!({"name": {"type": "string", "minLength": 1, "maxLength": 128}})
}

/// Spawns the services and the handbook, owned by the `kernel`, which bears their
/// bytes. Escrow has
/// standing: it owns what is listed, and holds the disk that goes with it.
pub(crate) fn spawn(world: &mut World) {
    let kernel = ArtifactId::trusted(KERNEL_ID);
    let mut bytes = 0;
    for service in Service::ALL {
        let about = service.about();
        let artifact = Artifact {
            owner: kernel.clone(),
            created_at: SimTime::ZERO,
            updated_at: SimTime::ZERO,
            content: Box::from(about),
            details: None,
        };
        let mut entity =
            world.spawn((ArtifactId::trusted(service.id()), artifact, service.interface(), service, System));
        let id = entity.id();
        bytes += crate::kernel::state::artifact_bytes(entity.world(), id);
        if service == Service::Mint {
            // The mint pays for its LLM scorer from its own budget (set by the scene;
            // anyone may add to it).
            entity.insert(Standing::default());
        }
        if service == Service::LlmGateway {
            entity
                .insert(Capabilities(std::collections::BTreeSet::from([crate::kernel::llm::CAN_CALL_LLM.to_owned()])));
        }
        if service == Service::Escrow {
            // Room for anything listed; what it holds always belongs to a seller.
            entity.insert(Standing::new(0, 0, u64::MAX / 4));
        }
    }
    let handbook = crate::scene::embedded_asset("handbook.md").unwrap_or("");
    bytes += handbook.len() as u64;
    world.spawn((
        ArtifactId::trusted(HANDBOOK_ID),
        Artifact {
            owner: kernel.clone(),
            created_at: SimTime::ZERO,
            updated_at: SimTime::ZERO,
            content: Box::from(handbook),
            details: None,
        },
        System,
    ));
    if let Some(kernel) = crate::world::ids::lookup(world, KERNEL_ID) {
        crate::kernel::ledger::allot_disk(world, kernel, bytes);
    }
}

/// Parses a method's arguments (already checked against its schema).
pub(crate) fn args<T: DeserializeOwned>(method: &str, args: &Value) -> Result<T, KernelError> {
    serde_json::from_value(args.clone()).map_err(|e| KernelError::invalid(format!("{method}: {e}")))
}

/// Answers `method` of `service` as the kernel's caller.
pub(crate) fn serve(kernel: &mut Kernel, service: Service, method: &str, input: &Value) -> Result<Value, KernelError> {
    match service {
        Service::Mint => super::mint::serve(kernel, method, input),
        Service::Escrow => super::escrow::serve(kernel, method, input),
        Service::Debt => super::debt::serve(kernel, method, input),
        Service::Governance => super::governance::serve(kernel, method, input),
        Service::Auditor => super::auditor::serve(kernel, method, input),
        Service::LlmGateway => crate::kernel::llm::serve(kernel, method, input),
        Service::Capabilities => super::capabilities::serve(kernel, method, input),
        // Gateways are answered with their entity (`kernel::mcp::serve`).
        Service::Mcp => Err(no_such_method("mcp", method)),
        Service::Subscriptions => super::subscriptions::serve(kernel, method, input),
        Service::Tasks => super::tasks::serve(kernel, method, input),
        Service::Locks => super::locks::serve(kernel, method, input),
    }
}

/// A method a service does not have (the interface check makes this unreachable for
/// callers; it guards against an interface and its handler drifting apart).
pub(crate) fn no_such_method(service: &str, method: &str) -> KernelError {
    KernelError::invalid(format!("{service} has no method {method:?}")).with("method", method)
}
