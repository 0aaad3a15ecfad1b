//! What a world is made of, declared once.
//!
//! Three things must see the whole state of a world: the checkpoint (everything, to
//! resume exactly), the checksum (everything that can make two worlds differ) and
//! `--save-scene` (a new start that goes on like the world saved). The list of parts
//! is written here and nowhere else; [`world_state!`] generates from it the
//! checkpoint's body (written borrowing the world, read back owned), the checksum's
//! feed, the dispatch of saving a scene, and [`effects_checksum`]. Each part must say
//! what a saved scene keeps of it ([`SaveResource`], [`SavePart`] in
//! [`super::save`]): a part added here without that does not compile, so none of the
//! three can forget it.
//!
//! Every part is one of three kinds:
//! - *effect*: what actions change and a roll-back undoes (holdings, artifacts,
//!   the services' records);
//! - *measure*: what the world measures and counts as it runs (rate windows,
//!   statistics, inboxes, the event log, the clock, the random stream);
//! - *outside*: what the process holds on the world's behalf (recordings' request
//!   counts), kept by a checkpoint but no part of the checksum.
//!
//! [`effects_checksum`] digests the effects alone: an action that failed must leave
//! it as it was, whatever it was charged.

use std::borrow::Cow;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{
    save::{SavePart, SaveResource},
    timeline::Timeline,
};
use crate::{
    bridge::{BridgeState, LlmBridge, mcp::McpBridge, mcp::McpBridgeState},
    economy::{
        capabilities::CapabilityRequests,
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
        EventLog, Held, InvocationStats, Quota, Standing, Supply,
        activity::{Activity, ActivityState, Habits},
        events::LogState,
        llm::{Thoughts, ThoughtsState},
        mcp::{McpCalls, McpCallsState},
        rates::Usage,
    },
    world::{
        components::{
            AccessContract, Artifact, Capabilities, CreatedBy, Executable, Frozen, Grants, Imports, Inbox, Interface,
            LastAction, Limits, Loop, McpGateway, ModelChoice, Pricing, Service, System, Thinking, Tombstone,
        },
        config::Config,
        ids::{ArtifactId, Ids},
        rng::SimRng,
        time::SimClock,
    },
};

/// What a part is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Effect,
    Measure,
    Outside,
}

/// A running digest: each value postcard-encoded (compact, deterministic) and
/// length-prefixed, so field boundaries are part of it.
pub(crate) struct Digest {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Digest {
    pub(crate) fn new(label: &str) -> Self {
        let mut digest = Self { hasher: blake3::Hasher::new(), buf: Vec::with_capacity(4096) };
        digest.feed(label);
        digest
    }

    pub(crate) fn feed<T: Serialize + ?Sized>(&mut self, value: &T) {
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

    pub(crate) fn hex(self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// A resource that is part of a world's state: how a checkpoint writes and reads it,
/// and what the checksum sees of it.
pub(crate) trait ResourceState: Resource + Sized {
    /// What a checkpoint writes, borrowing the world where it can.
    type Written<'a>: Serialize
    where
        Self: 'a;
    /// What a checkpoint reads back.
    type Read: DeserializeOwned;
    /// Read back after the entities (its written form names them by id).
    const AFTER_ENTITIES: bool = false;
    fn write<'a>(&'a self, world: &'a World) -> Self::Written<'a>;
    fn read(read: Self::Read, world: &mut World) -> Result<(), String>;
    fn digest(&self, digest: &mut Digest);
}

/// Resources a checkpoint keeps as they are. `json`: fed to the checksum as JSON,
/// for types whose optional fields a compact encoding could confuse.
macro_rules! kept_as_they_are {
    ($($ty:ty),* ; json: $($json:ty),*) => {
        $( kept_as_they_are!(@one $ty, |this: &$ty, digest: &mut Digest| digest.feed(this)); )*
        $( kept_as_they_are!(@one $json, |this: &$json, digest: &mut Digest| {
            digest.feed(&serde_json::to_string(this).unwrap_or_default())
        }); )*
    };
    (@one $ty:ty, $digest:expr) => {
        impl ResourceState for $ty {
            type Written<'a> = &'a $ty;
            type Read = $ty;
            fn write<'a>(&'a self, _: &'a World) -> &'a $ty {
                self
            }
            fn read(read: $ty, world: &mut World) -> Result<(), String> {
                world.insert_resource(read);
                Ok(())
            }
            fn digest(&self, digest: &mut Digest) {
                ($digest)(self, digest)
            }
        }
    };
}

kept_as_they_are!(
    SimClock, SimRng, Supply, Held, InvocationStats, Mint, Escrow, Debts, TaskBoard, Locks, Kpis,
    CapabilityRequests;
    json: Governance, Timeline
);

/// The configuration is kept as it is, and the checksum sees it as the scene declared
/// it (see [`Config::portable`]).
impl ResourceState for Config {
    type Written<'a> = &'a Config;
    type Read = Config;
    fn write<'a>(&'a self, _: &'a World) -> &'a Config {
        self
    }
    fn read(read: Config, world: &mut World) -> Result<(), String> {
        world.insert_resource(read);
        Ok(())
    }
    fn digest(&self, digest: &mut Digest) {
        digest.feed(&self.portable());
    }
}

impl ResourceState for Activity {
    type Written<'a> = ActivityState<'a>;
    type Read = ActivityState<'static>;
    const AFTER_ENTITIES: bool = true;
    fn write<'a>(&'a self, world: &'a World) -> ActivityState<'a> {
        self.state(world)
    }
    fn read(read: Self::Read, world: &mut World) -> Result<(), String> {
        let activity = Activity::from_state(read, world)?;
        world.insert_resource(activity);
        Ok(())
    }
    fn digest(&self, digest: &mut Digest) {
        digest.feed(&self.digest_view());
    }
}

/// Resources a checkpoint keeps in a form of their own that names entities by id
/// (restored after the entities), and whose checksum is a view without entities.
macro_rules! kept_by_id {
    ($($ty:ty => $state:ty),* $(,)?) => { $(
        impl ResourceState for $ty {
            type Written<'a> = $state;
            type Read = $state;
            const AFTER_ENTITIES: bool = true;
            fn write<'a>(&'a self, world: &'a World) -> $state {
                self.state(world)
            }
            fn read(read: $state, world: &mut World) -> Result<(), String> {
                let resource = <$ty>::from_state(read, world)?;
                world.insert_resource(resource);
                Ok(())
            }
            fn digest(&self, digest: &mut Digest) {
                digest.feed(&self.digest_view());
            }
        }
    )* };
}

kept_by_id!(Thoughts => ThoughtsState, McpCalls => McpCallsState);

/// The bridges' recordings' request counts and answers in hand: the process's, not
/// the world's, so no part of the checksum.
macro_rules! kept_outside {
    ($($ty:ty => $state:ty),* $(,)?) => { $(
        impl ResourceState for $ty {
            type Written<'a> = $state;
            type Read = $state;
            fn write<'a>(&'a self, _: &'a World) -> $state {
                self.state()
            }
            fn read(read: $state, world: &mut World) -> Result<(), String> {
                world.resource_mut::<$ty>().restore(read);
                Ok(())
            }
            fn digest(&self, _: &mut Digest) {}
        }
    )* };
}

kept_outside!(LlmBridge => BridgeState, McpBridge => McpBridgeState);

impl ResourceState for EventLog {
    type Written<'a> = LogState<'a>;
    type Read = LogState<'static>;
    fn write<'a>(&'a self, _: &'a World) -> LogState<'a> {
        self.state()
    }
    fn read(read: Self::Read, world: &mut World) -> Result<(), String> {
        let log = EventLog::from_state(read)?;
        world.insert_resource(log);
        Ok(())
    }
    fn digest(&self, digest: &mut Digest) {
        // The chain covers the whole log, even what the ring forgot.
        digest.feed(&(self.total(), self.digest()));
    }
}

/// Makes principals with equal limits share one map again, so that a restored world
/// of many principals with the same quota holds it once, as the world saved did.
fn share_limits(world: &mut World) {
    let mut shared: std::collections::BTreeSet<Limits> = std::collections::BTreeSet::new();
    let mut quotas = world.query::<&mut Quota>();
    for mut quota in quotas.iter_mut(world) {
        match shared.get(quota.shared()) {
            Some(limits) => *quota = Quota::new(limits.clone()),
            None => {
                shared.insert(quota.shared().clone());
            }
        }
    }
}

/// The registry itself: every resource and every component that is state, with its
/// kind. Markers (components without data) are saved as flags.
macro_rules! world_state {
    (
        resources { $($r:ident: $rty:ty = $rkind:ident,)* }
        components { $($c:ident: $cty:ty = $ckind:ident,)* }
        markers { $($m:ident: $mty:ty = $mkind:ident,)* }
    ) => {
        /// One entity in a checkpoint: its id and each part it has.
        #[derive(Serialize, Deserialize)]
        pub(crate) struct EntityRecord<'a> {
            id: Cow<'a, ArtifactId>,
            $(
                #[serde(default, skip_serializing_if = "std::ops::Not::not")]
                $m: bool,
            )*
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                $c: Option<Cow<'a, $cty>>,
            )*
        }

        impl<'a> EntityRecord<'a> {
            fn capture(world: &'a World, entity: Entity, id: &'a ArtifactId) -> Self {
                Self {
                    id: Cow::Borrowed(id),
                    $( $m: world.get::<$mty>(entity).is_some(), )*
                    $( $c: world.get::<$cty>(entity).map(Cow::Borrowed), )*
                }
            }

            /// Spawns the entity with its parts. The parts a part requires are put in
            /// with their defaults by bevy and replaced by the recorded ones, which
            /// come after them.
            fn spawn(self, world: &mut World) {
                let mut entity = world.spawn(self.id.into_owned());
                $( if self.$m { entity.insert(<$mty>::default()); } )*
                $( if let Some(part) = self.$c { entity.insert(part.into_owned()); } )*
            }
        }

        /// A world as a checkpoint writes it, borrowing from the world.
        #[derive(Serialize)]
        pub(crate) struct WrittenState<'a> {
            $( $r: <$rty as ResourceState>::Written<'a>, )*
            /// In creation order.
            entities: Vec<EntityRecord<'a>>,
        }

        /// A world as a checkpoint reads it back.
        #[derive(Deserialize)]
        pub(crate) struct ReadState {
            $( $r: <$rty as ResourceState>::Read, )*
            entities: Vec<EntityRecord<'static>>,
        }

        impl<'a> WrittenState<'a> {
            pub(crate) fn capture(world: &'a World) -> Self {
                let entities = world
                    .resource::<Ids>()
                    .in_creation_order()
                    .iter()
                    .filter_map(|&e| world.get::<ArtifactId>(e).map(|id| EntityRecord::capture(world, e, id)))
                    .collect();
                Self { $( $r: ResourceState::write(world.resource::<$rty>(), world), )* entities }
            }
        }

        impl ReadState {
            /// Puts this state into `world`, a world with the ecology plugins and
            /// nothing else: its machinery goes, and comes back as the checkpoint
            /// holds it, in its place in creation order.
            pub(crate) fn restore(self, world: &mut World) -> Result<(), String> {
                let machinery: Vec<Entity> =
                    world.query_filtered::<Entity, With<ArtifactId>>().iter(world).collect();
                for entity in machinery {
                    world.despawn(entity);
                }
                let ReadState { $( $r, )* entities } = self;
                $( let mut $r = Some($r); )*
                $(
                    if !<$rty as ResourceState>::AFTER_ENTITIES && let Some(read) = $r.take() {
                        <$rty as ResourceState>::read(read, world)?;
                    }
                )*
                for record in entities {
                    record.spawn(world);
                }
                share_limits(world);
                $( if let Some(read) = $r.take() { <$rty as ResourceState>::read(read, world)?; } )*
                Ok(())
            }
        }

        /// Every part of an entity, borrowed, for the checksum.
        #[derive(Serialize)]
        struct EntityDigest<'a> {
            id: &'a ArtifactId,
            $( $m: bool, )*
            $( $c: Option<&'a $cty>, )*
        }

        /// Feeds every part of the kinds `kinds` to `digest`: resources in their
        /// order, then every entity in id order.
        fn digest_world(world: &World, digest: &mut Digest, kinds: &[Kind]) {
            $( if kinds.contains(&Kind::$rkind) { ResourceState::digest(world.resource::<$rty>(), digest); } )*
            let ids = world.resource::<Ids>();
            let mut entities: Vec<(&ArtifactId, Entity)> = ids
                .in_creation_order()
                .iter()
                .filter_map(|&e| world.get::<ArtifactId>(e).map(|id| (id, e)))
                .collect();
            entities.sort_by(|a, b| a.0.cmp(b.0));
            digest.feed(&(entities.len() as u64));
            for (id, e) in entities {
                digest.feed(&EntityDigest {
                    id,
                    $( $m: kinds.contains(&Kind::$mkind) && world.get::<$mty>(e).is_some(), )*
                    $( $c: if kinds.contains(&Kind::$ckind) { world.get::<$cty>(e) } else { None }, )*
                });
            }
        }

        /// Hands every resource, then every part of `entity`, to what saves a scene.
        pub(crate) fn save_resources(world: &World, out: &mut super::save::SavedWorld) {
            $( SaveResource::save(world.resource::<$rty>(), world, out); )*
        }

        pub(crate) fn save_parts(world: &World, entity: Entity, out: &mut super::save::SavedEntity) {
            $( if let Some(part) = world.get::<$mty>(entity) { SavePart::save(part, world, entity, out); } )*
            $( if let Some(part) = world.get::<$cty>(entity) { SavePart::save(part, world, entity, out); } )*
        }

        /// Every part's name and kind, in the order declared.
        #[cfg(test)]
        pub(crate) const PARTS: &[(&str, Kind)] = &[
            $( (stringify!($r), Kind::$rkind), )*
            $( (stringify!($c), Kind::$ckind), )*
            $( (stringify!($m), Kind::$mkind), )*
        ];
    };
}

world_state! {
    resources {
        clock: SimClock = Measure,
        rng: SimRng = Measure,
        config: Config = Measure,
        supply: Supply = Effect,
        held: Held = Effect,
        invocations: InvocationStats = Measure,
        activity: Activity = Measure,
        mint: Mint = Effect,
        escrow: Escrow = Effect,
        debts: Debts = Effect,
        governance: Governance = Effect,
        tasks: TaskBoard = Effect,
        locks: Locks = Effect,
        kpis: Kpis = Measure,
        timeline: Timeline = Measure,
        thoughts: Thoughts = Measure,
        capability_requests: CapabilityRequests = Effect,
        mcp_calls: McpCalls = Measure,
        bridge: LlmBridge = Outside,
        mcp_bridge: McpBridge = Outside,
        events: EventLog = Measure,
    }
    components {
        artifact: Artifact = Effect,
        created_by: CreatedBy = Effect,
        standing: Standing = Effect,
        quota: Quota = Effect,
        last_action: LastAction = Measure,
        usage: Usage = Measure,
        executable: Executable = Effect,
        imports: Imports = Effect,
        interface: Interface = Effect,
        contract: AccessContract = Effect,
        pricing: Pricing = Effect,
        looping: Loop = Effect,
        inbox: Inbox = Measure,
        capabilities: Capabilities = Effect,
        model: ModelChoice = Effect,
        thinking: Thinking = Measure,
        tombstone: Tombstone = Effect,
        frozen: Frozen = Effect,
        service: Service = Effect,
        habits: Habits = Measure,
        debt: Debt = Effect,
        commons: Commons = Effect,
        mcp_gateway: McpGateway = Effect,
        grants: Grants = Effect,
        subscriptions: Subscriptions = Effect,
    }
    markers {
        system: System = Effect,
    }
}

/// Hex digest of the world's state and event log: everything that can make two
/// worlds differ (what the process holds outside the world aside).
pub fn world_checksum(world: &World) -> String {
    let mut digest = Digest::new("agent-ecology world v2");
    digest_world(world, &mut digest, &[Kind::Effect, Kind::Measure]);
    digest.hex()
}

/// Hex digest of the world's effects alone — holdings, artifacts, the services'
/// records — leaving out what is measured (rate windows, statistics, heartbeats,
/// inboxes, the event log). An action that fails leaves it unchanged.
pub fn effects_checksum(world: &World) -> String {
    let mut digest = Digest::new("agent-ecology effects v1");
    digest_world(world, &mut digest, &[Kind::Effect]);
    digest.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_declared_once() {
        let mut names: Vec<&str> = PARTS.iter().map(|(name, _)| *name).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a part is declared twice");
        assert!(PARTS.iter().any(|(name, kind)| *name == "usage" && *kind == Kind::Measure));
        assert!(PARTS.iter().any(|(name, kind)| *name == "inbox" && *kind == Kind::Measure));
        assert!(PARTS.iter().any(|(name, kind)| *name == "held" && *kind == Kind::Effect));
    }

    /// Two worlds that differ only in an inbox, or only in a rate window, differ.
    #[test]
    fn inboxes_and_rate_windows_are_in_the_checksum_and_not_in_the_effects() {
        let scene = crate::scene::Scene::from_ron_str(
            "t.ron",
            r#"Scene(principals: [(id: "a", agent: true, code: "function step() { return [] }",
                                   interface: (tools: [(name: "step")]), quota: {"cpu": 1000000})])"#,
        )
        .unwrap();
        let mut sim = crate::run::Simulation::new(&scene, None).unwrap();
        let (checksum, effects) = (world_checksum(sim.world()), effects_checksum(sim.world()));
        let world = sim.world_mut();
        let entity = crate::world::ids::lookup(world, "a").unwrap();
        world.get_mut::<Inbox>(entity).unwrap().0.push(serde_json::json!({"success": true}));
        let with_inbox = world_checksum(world);
        assert_ne!(with_inbox, checksum, "an inbox is state");
        assert_eq!(effects_checksum(world), effects, "an inbox is not an effect");
        let mut kernel = crate::kernel::Kernel::as_principal(world, "a").unwrap();
        kernel.record_usage(entity, "cpu", 10);
        assert_ne!(world_checksum(world), with_inbox, "a rate window is state");
        assert_eq!(effects_checksum(world), effects, "a rate window is not an effect");
    }
}
