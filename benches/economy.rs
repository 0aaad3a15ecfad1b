//! The economy: one mint resolution, and one sample of the health indicators.
//!
//! Reference (the original Python system, same machine): ~27 ms to resolve 1 000 bids
//! among 1 000 principals. Floor for this implementation: 1 ms to resolve 1 000 sealed
//! bids among 10 000 principals — checking who still owns what they bid on, ranking,
//! scoring the winner with the offline scorer, the second price, refunding the 999
//! losers, sharing the price out as UBI over every other principal, and the events.
//!
//! Each resolution's bids are placed untimed (`iter_batched`); the mint keeps the id
//! order of the principals between resolutions, so the figures are those of a world
//! whose principals did not change since the last auction (adding some costs a merge).
//!
//! The indicators are sampled in a world of 10 000 agents and 2 000 tools after
//! 1 000 000 events: transfers between random agents and, one action in 25, an
//! invocation of a tool whose code invokes another random tool, all through
//! `Kernel::act`, so that the activity counters, the agents' habits, the call graph
//! (random, so deep: the worst case for capital depth) and the event log (its ring
//! bounded at the default 100 000) are full. Only `kpis::compute` is timed.

use std::{cell::RefCell, hint::black_box, time::Duration};

use agent_ecology::{
    economy::{kpis, mint},
    kernel::{
        Action, EventKind, EventLog, Kernel,
        actions::{Amount, TransferSpec},
        invoke::InvokeSpec,
        state,
    },
    run::{Simulation, audit},
    scene::{
        Scene,
        raw::{ArtifactSpec, PrincipalSpec, SceneFile},
    },
    world::{
        components::{Interface, Tool},
        config::Config,
    },
};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

/// The `ecology` binary's allocator (mimalloc underneath), so that allocation costs
/// are those of a real run.
#[global_allocator]
static ALLOCATOR: agent_ecology::sandbox::alloc::WorkerAllocator = agent_ecology::sandbox::alloc::WorkerAllocator;

/// SplitMix64: a deterministic stream for choosing pairs and amounts.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A world of the default scene's configuration with these principals and artifacts
/// only.
fn simulation(principals: Vec<PrincipalSpec>, artifacts: Vec<ArtifactSpec>) -> Simulation {
    let file = Scene::embedded_default().expect("default scene").file().clone();
    let file = SceneFile { principals, artifacts, interventions: Vec::new(), ..file };
    Simulation::new(&Scene::from_file("bench", file), None).expect("bench scene is valid")
}

fn principal(i: usize) -> String {
    format!("p{i:06}")
}

fn document(i: usize) -> String {
    format!("d{i:06}")
}

/// `principals` principals, the first `bids` of which each own a document to bid on.
fn auction_world(principals: usize, bids: usize) -> Simulation {
    let people = (0..principals)
        .map(|i| PrincipalSpec { id: principal(i), scrip: Some(1_000_000_000), ..Default::default() })
        .collect();
    let documents = (0..bids)
        .map(|i| ArtifactSpec {
            id: document(i),
            owner: principal(i),
            content: Some(format!(
                "Field notes {i}: the market opened early, prices of compute rose while disk stayed \
                 cheap; three traders pooled scrip to build a shared index of tools, and the \
                 auditor found the ledger balanced. Lesson {i}: reuse beats rewriting, and a \
                 described interface sells itself."
            )),
            ..Default::default()
        })
        .collect();
    simulation(people, documents)
}

/// Places one sealed bid per bidder, 1–100 000 scrip each.
fn place_bids(sim: &mut Simulation, bids: usize, stream: &mut Stream) {
    for i in 0..bids {
        let amount = 1 + stream.below(100_000) as i64;
        let mut kernel = Kernel::as_principal(sim.world_mut(), &principal(i)).expect("principal");
        kernel.bid(&document(i), amount).expect("owner bids with scrip to spare");
    }
}

fn resolve(sim: &mut Simulation) {
    let world = sim.world_mut();
    let config = world.resource::<Config>().mint;
    mint::resolve(world, &config, config.first_at);
}

/// Places bids, resolves, and checks every principal's balance against the events.
fn check_resolution(sim: &mut Simulation, principals: usize, bids: usize, stream: &mut Stream) {
    let index = |id: &str| id[1..].parse::<usize>().expect("a bench principal");
    place_bids(sim, bids, stream);
    assert_eq!(sim.world().resource::<mint::Mint>().open_bids(), bids);
    let before: Vec<u64> =
        (0..principals).map(|i| state::balance(sim.world(), &principal(i)).expect("principal")).collect();
    let first_event = sim.world().resource::<EventLog>().next_seq();
    resolve(sim);
    let world = sim.world();
    let mint = world.resource::<mint::Mint>();
    let held = world.resource::<agent_ecology::kernel::Held>().of(agent_ecology::kernel::Holder::Mint);
    assert_eq!((mint.open_bids(), held), (0, 0));

    let mut expected = before;
    let mut ubi_paid = 0;
    for event in world.resource::<EventLog>().since(first_event - 1) {
        match &event.kind {
            EventKind::MintResolved { revealed, winners, .. } => {
                assert_eq!((revealed.len(), winners.len()), (bids, 1));
                let winner = &winners[0];
                assert!(winner.score.is_some() && winner.price > 1, "{winner:?}");
                for bid in revealed.iter().filter(|b| b.bidder != winner.bidder) {
                    assert!(!bid.void);
                    expected[index(bid.bidder.as_str())] += bid.amount;
                }
                expected[index(winner.bidder.as_str())] += winner.bid - winner.price + winner.minted;
            }
            EventKind::UbiPaid { from, amount, recipients, per_head, remainder_to } => {
                ubi_paid += 1;
                let others: Vec<usize> = (0..principals).filter(|&i| i != index(from.as_str())).collect();
                assert_eq!(*recipients, others.len() as u64);
                assert_eq!(per_head * recipients + remainder_to.len() as u64, *amount);
                let firsts: Vec<usize> = remainder_to.iter().map(|id| index(id.as_str())).collect();
                assert_eq!(firsts, others[..remainder_to.len()], "the remainder goes to the first in id order");
                for &i in &others {
                    expected[i] += per_head;
                }
                for i in firsts {
                    expected[i] += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(ubi_paid, 1);
    for (i, &scrip) in expected.iter().enumerate() {
        assert_eq!(state::balance(world, &principal(i)).expect("principal"), scrip, "{}", principal(i));
    }
    audit(world).expect("the ledger balances");
}

fn mint_resolution(c: &mut Criterion) {
    let mut group = c.benchmark_group("economy");
    for (bids, principals) in [(1_000, 1_000), (1_000, 10_000)] {
        let sim = RefCell::new(auction_world(principals, bids));
        let mut stream = Stream(7);

        // Twice, checked against the rules: every bid comes back or is paid for, the
        // price is shared out as UBI in full, and the ledger balances.
        for _ in 0..2 {
            check_resolution(&mut sim.borrow_mut(), principals, bids, &mut stream);
        }

        let label = format!("{bids} bids, {principals} principals");
        group.bench_function(BenchmarkId::new("mint resolution", label), |b| {
            b.iter_batched(
                || place_bids(&mut sim.borrow_mut(), bids, &mut stream),
                |()| resolve(&mut sim.borrow_mut()),
                BatchSize::PerIteration,
            )
        });
        audit(sim.borrow().world()).expect("the ledger balances after the measurements");
    }
    group.finish();
}

const AGENTS: usize = 10_000;
const TOOLS: usize = 2_000;
const EVENTS: u64 = 1_000_000;
/// One action in this many is an invocation of a tool whose code invokes another.
const INVOKE_EVERY: usize = 25;

/// A tool that passes the call on to `args.to`, if given.
const RELAY: &str = "function run(args) { if (args && args.to) invoke(args.to, 'run', {}); return 1 }";
/// An agent's loop (never stepped here).
const LOOP: &str = "function step(view) { return { action: 'noop' } }";

fn agent(i: usize) -> String {
    format!("a{i:05}")
}

fn tool(i: usize) -> String {
    format!("t{i:05}")
}

fn busy_world() -> Simulation {
    let interface = |name: &str| Interface {
        description: String::new(),
        tools: vec![Tool {
            name: name.into(),
            description: "passes the call on".into(),
            input_schema: json!({"type": "object", "properties": {"to": {"type": "string"}}}),
        }],
    };
    let agents = (0..AGENTS)
        .map(|i| PrincipalSpec {
            id: agent(i),
            scrip: Some(1_000_000_000),
            quota: [("cpu".to_string(), None)].into(),
            agent: true,
            code: Some(LOOP.into()),
            interface: Some(interface("step")),
            ..Default::default()
        })
        .collect();
    let tools = (0..TOOLS)
        .map(|i| ArtifactSpec {
            id: tool(i),
            owner: agent(i * AGENTS / TOOLS),
            code: Some(RELAY.into()),
            interface: Some(interface("run")),
            ..Default::default()
        })
        .collect();
    let mut sim = simulation(agents, tools);

    let mut stream = Stream(11);
    let mut n = 0usize;
    while sim.world().resource::<EventLog>().total() < EVENTS {
        n += 1;
        let caller = agent(stream.below(AGENTS));
        let action = if n.is_multiple_of(INVOKE_EVERY) {
            Action::Invoke(InvokeSpec {
                id: tool(stream.below(TOOLS)),
                method: "run".into(),
                args: json!({ "to": tool(stream.below(TOOLS)) }),
                max_price: None,
                code_hash: None,
            })
        } else {
            Action::Transfer(TransferSpec {
                to: agent(stream.below(AGENTS)),
                amount: Some(Amount(1 + stream.below(50) as i64)),
                resource: None,
                artifact: None,
            })
        };
        let mut kernel = Kernel::as_principal(sim.world_mut(), &caller).expect("principal");
        let result = kernel.act(action);
        assert!(result.success, "{:?}", result.error);
    }
    sim
}

fn kpi_sample(c: &mut Criterion) {
    let started = std::time::Instant::now();
    let sim = busy_world();
    let world = sim.world();
    let sample = kpis::compute(world);
    eprintln!(
        "economy: built a world of {} agents and {} events in {:.1?} ({} invocations, capital depth {}, \
         coordination density {:.4})",
        sample.agents,
        world.resource::<EventLog>().total(),
        started.elapsed(),
        sample.invocations,
        sample.capital_depth,
        sample.coordination_density.unwrap_or_default(),
    );
    assert_eq!(sample.agents, AGENTS as u64);
    assert!(sample.capital_depth >= 2 && sample.specialisation.is_some());

    let mut group = c.benchmark_group("economy");
    group.bench_function(
        BenchmarkId::new("kpis::compute", format!("{AGENTS} agents, {TOOLS} tools, {EVENTS} events")),
        |b| b.iter(|| black_box(kpis::compute(black_box(world)))),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = mint_resolution, kpi_sample
}
criterion_main!(benches);
