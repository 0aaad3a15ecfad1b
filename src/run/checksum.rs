//! The checksum of a world: one hex digest over its whole state and its event log.
//!
//! Everything that makes two worlds different goes in — clock, RNG position, settings,
//! supply, pending interventions, every entity's components in id order, and the
//! running digest of the event log — and nothing that does not: `Entity` numbers and
//! hash-map order never reach the hasher. Values are encoded with postcard (compact,
//! deterministic) and each is length-prefixed so that field boundaries are part of
//! the digest.

use bevy_ecs::prelude::*;
use serde::Serialize;

use crate::{
    economy::{
        debt::{Debt, Debts},
        escrow::Escrow,
        governance::{Commons, Governance},
        kpis::Kpis,
        locks::Locks,
        mint::Mint,
        subscriptions::Subscriptions,
        tasks::TaskBoard,
    },
    kernel::{
        EventLog, InvocationStats, Supply,
        activity::{Activity, Habits},
    },
    scene::Timeline,
    world::{
        components::{
            AccessContract, Artifact, Capabilities, CreatedBy, Executable, Frozen, Grants, Imports, Interface,
            LastAction, Loop, McpGateway, ModelChoice, Pricing, Quota, Service, Standing, System, Thinking, Tombstone,
        },
        config::Config,
        ids::{ArtifactId, Ids},
        rng::SimRng,
        time::SimClock,
    },
};

/// Every component an entity may have, borrowed, in a fixed order.
#[derive(Serialize)]
struct EntityState<'a> {
    id: &'a ArtifactId,
    artifact: Option<&'a Artifact>,
    created_by: Option<&'a CreatedBy>,
    standing: Option<&'a Standing>,
    quota: Option<&'a Quota>,
    last_action: Option<&'a LastAction>,
    executable: Option<&'a Executable>,
    interface: Option<&'a Interface>,
    contract: Option<&'a AccessContract>,
    pricing: Option<&'a Pricing>,
    looping: Option<&'a Loop>,
    capabilities: Option<&'a Capabilities>,
    tombstone: Option<&'a Tombstone>,
    frozen: Option<&'a Frozen>,
    system: bool,
    service: Option<&'a Service>,
    habits: Option<&'a Habits>,
    debt: Option<&'a Debt>,
    commons: Option<&'a Commons>,
    model: Option<&'a ModelChoice>,
    thinking: Option<&'a Thinking>,
    mcp_gateway: Option<&'a McpGateway>,
    grants: Option<&'a Grants>,
    subscriptions: Option<&'a Subscriptions>,
    /// Last, and left out when absent: a world without libraries keeps the checksum
    /// it had before there were any (the digest is never decoded, so the encoding
    /// need not say the field is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    imports: Option<&'a Imports>,
}

struct Digest {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Digest {
    fn feed<T: Serialize + ?Sized>(&mut self, value: &T) {
        let buf = std::mem::take(&mut self.buf);
        // Every type fed here has known lengths and plain fields, which postcard
        // always encodes; falling back to JSON keeps the digest total regardless.
        let buf = postcard::to_extend(value, buf)
            .unwrap_or_else(|_| serde_json::to_vec(&serde_json::to_value(value).ok()).unwrap_or_default());
        self.hasher.update(&(buf.len() as u64).to_le_bytes());
        self.hasher.update(&buf);
        self.buf = buf;
        self.buf.clear();
    }
}

/// Hex digest of the world's state and event log.
pub fn world_checksum(world: &World) -> String {
    let mut digest = Digest { hasher: blake3::Hasher::new(), buf: Vec::with_capacity(4096) };
    digest.feed("agent-ecology world v1");
    digest.feed(world.resource::<SimClock>());
    digest.feed(world.resource::<SimRng>());
    digest.feed(world.resource::<Config>());
    digest.feed(world.resource::<Supply>());
    digest.feed(world.resource::<InvocationStats>());
    digest.feed(&world.resource::<Activity>().digest_view());
    digest.feed(world.resource::<Mint>());
    digest.feed(world.resource::<Escrow>());
    digest.feed(world.resource::<Debts>());
    digest.feed(&serde_json::to_string(world.resource::<Governance>()).unwrap_or_default());
    digest.feed(world.resource::<TaskBoard>());
    digest.feed(world.resource::<Locks>());
    digest.feed(world.resource::<Kpis>());
    digest.feed(&world.resource::<crate::kernel::llm::Thoughts>().digest_view());
    digest.feed(&world.resource::<crate::kernel::mcp::McpCalls>().digest_view());
    digest.feed(world.resource::<crate::economy::capabilities::CapabilityRequests>());
    // Pending interventions hold actions with optional fields, which a compact
    // encoding could confuse with one another; JSON keeps the field names.
    let timeline = serde_json::to_string(world.resource::<Timeline>()).unwrap_or_default();
    digest.feed(&timeline);

    let ids = world.resource::<Ids>();
    let mut entities: Vec<(&ArtifactId, Entity)> =
        ids.in_creation_order().iter().filter_map(|&e| world.get::<ArtifactId>(e).map(|id| (id, e))).collect();
    entities.sort_by(|a, b| a.0.cmp(b.0));
    digest.feed(&(entities.len() as u64));
    for (id, e) in entities {
        digest.feed(&EntityState {
            id,
            artifact: world.get(e),
            created_by: world.get(e),
            standing: world.get(e),
            quota: world.get(e),
            last_action: world.get(e),
            executable: world.get(e),
            interface: world.get(e),
            contract: world.get(e),
            pricing: world.get(e),
            looping: world.get(e),
            capabilities: world.get(e),
            tombstone: world.get(e),
            frozen: world.get(e),
            system: world.get::<System>(e).is_some(),
            service: world.get(e),
            habits: world.get(e),
            debt: world.get(e),
            commons: world.get(e),
            model: world.get(e),
            thinking: world.get(e),
            mcp_gateway: world.get(e),
            grants: world.get(e),
            subscriptions: world.get(e),
            imports: world.get(e),
        });
    }
    let log = world.resource::<EventLog>();
    digest.feed(&(log.total(), log.digest()));
    digest.hasher.finalize().to_hex().to_string()
}
