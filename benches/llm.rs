//! Thinking at scale: 1 000 LLM agents against a local OpenAI-compatible server
//! (`tests/support/fake_llm.rs`, real HTTP on 127.0.0.1).
//!
//! Two figures, printed on standard error besides criterion's output:
//!
//! 1. **Throughput in realtime** — the server answers after 200 ms; the world keeps
//!    stepping (`config.llm.clock: Realtime`, default `max_concurrency` 64), every
//!    agent asks again as soon as it is answered. Once with 1 000 agents under the
//!    world's cap, once with 10 000 under the endpoint's own cap of 64. Completed
//!    thinking steps per second (`THINKING` events over wall time) against the bound
//!    the concurrency cap sets, 64 / 0.2 s = 320 calls/s.
//! 2. **The world's own cost per call** — the server answers at once; only the time
//!    spent inside `Simulation::step` is counted (the waits between steps are not), per
//!    call completed. That covers the agent's step (sandboxed JavaScript), the invoke of
//!    the gateway (estimate, reserve, request body, submit), and the Ingest phase
//!    (collect, settle, event, delivery to the inbox). The same world with agents that
//!    take a cheap action instead of thinking gives the cost of an agent step without
//!    a model; the difference is the cost of thinking to the world.
//!
//! Criterion times the second (with thinking, and without), per call or agent step.

#[path = "../tests/support/fake_llm.rs"]
mod fake_llm;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use agent_ecology::{kernel::EventLog, run::Simulation, scene::Scene};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake_llm::{FakeLlm, Reply};

/// The `ecology` binary's allocator (mimalloc underneath).
#[global_allocator]
static ALLOCATOR: agent_ecology::sandbox::alloc::WorkerAllocator = agent_ecology::sandbox::alloc::WorkerAllocator;

const AGENTS: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(200);
const CONCURRENCY: f64 = 64.0;
/// How long the realtime run is measured for.
const WINDOW: Duration = Duration::from_secs(6);

/// Thinks, and thinks again whenever it is answered.
const THINKER: &str = r#"function step(view) {
    const content = view.inbox.length ? "again" : "start";
    return [{action: "invoke", id: "kernel_llm_gateway", method: "chat",
             args: {messages: [{role: "user", content: content}]}}];
}"#;

/// Takes a cheap action every step instead (the baseline).
const IDLER: &str = r#"function step(view) {
    return [{action: "query", id: view.self}];
}"#;

/// Where the cap on calls in flight is set: the world's `max_concurrency` (64 by
/// default), or the endpoint's own with a world cap far above it.
#[derive(Clone, Copy)]
enum Cap {
    World,
    Endpoint,
}

fn world(base_url: &str, code: &str, clock: &str) -> Simulation {
    world_of(AGENTS, Cap::World, base_url, code, clock)
}

fn world_of(agents: usize, cap: Cap, base_url: &str, code: &str, clock: &str) -> Simulation {
    let (world_cap, endpoint_cap) = match cap {
        Cap::World => (String::new(), String::new()),
        Cap::Endpoint => {
            ("max_concurrency: 100000,".to_owned(), format!(", max_concurrency: {}", CONCURRENCY as usize))
        }
    };
    let ron = format!(
        r#"Scene(
            config: (dt_secs: 0.05, llm: (
                clock: {clock}, default_model: "fake", max_tokens: 16, {world_cap}
                retry: (max_attempts: 3, base_ms: 10, max_ms: 50),
                endpoints: {{"local": (base_url: {base_url:?}{endpoint_cap})}},
                models: {{"fake": (endpoint: "local", input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.1)}},
            )),
            populations: [(id: "a{{n:05}}", count: {agents}, template: (agent: true, code: {code:?},
                interface: (tools: [(name: "step")]), llm_budget_micro_usd: 1000000000000, quota: {{"cpu": None}}))],
        )"#
    );
    Simulation::new(&Scene::from_ron_str("bench", &ron).expect("bench scene parses"), None)
        .expect("bench scene is valid")
}

fn thoughts(sim: &Simulation) -> u64 {
    sim.world().resource::<EventLog>().by_type().get("THINKING").copied().unwrap_or(0)
}

fn failures(sim: &Simulation) -> u64 {
    sim.world().resource::<EventLog>().by_type().get("THINKING_FAILED").copied().unwrap_or(0)
}

/// Figure 1: calls completed per second with a 200 ms server, in realtime.
fn realtime_throughput(agents: usize, cap: Cap) {
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("ok", 12, 4));
    fake.set_latency(LATENCY);
    let mut sim = world_of(agents, cap, &fake.base_url(), THINKER, "Realtime");
    // Every agent asks in the first step (and starts its sandbox lane).
    sim.step();
    let started = Instant::now();
    let before = thoughts(&sim);
    let mut steps = 0u64;
    let mut in_step = Duration::ZERO;
    while started.elapsed() < WINDOW {
        let t = Instant::now();
        sim.step();
        in_step += t.elapsed();
        steps += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed().as_secs_f64();
    let done = thoughts(&sim) - before;
    let rate = done as f64 / wall;
    let ideal = CONCURRENCY / LATENCY.as_secs_f64();
    eprintln!();
    let capped = match cap {
        Cap::World => "the world's max_concurrency 64",
        Cap::Endpoint => "the endpoint's max_concurrency 64",
    };
    eprintln!("== LLM throughput, realtime: {agents} agents, {} ms latency, {capped} ==", LATENCY.as_millis());
    eprintln!(
        "   {done} calls completed in {wall:.2} s = {rate:.1} calls/s ({:.0}% of the {ideal:.0}/s the concurrency cap allows)",
        100.0 * rate / ideal
    );
    eprintln!(
        "   {steps} steps meanwhile ({:.1} ms in step() each, {:.0}% of the wall time); {} failed calls; {} requests served",
        in_step.as_secs_f64() * 1e3 / steps.max(1) as f64,
        100.0 * in_step.as_secs_f64() / wall,
        failures(&sim),
        fake.request_count()
    );
    let _ = sim.end_thinking();
}

/// Steps `sim` until `count(sim)` has grown by `n`, sleeping `pause` between steps;
/// returns the time spent inside `step()` and the growth.
fn step_until(sim: &mut Simulation, n: u64, pause: Duration, count: fn(&Simulation) -> u64) -> (Duration, u64) {
    let start = count(sim);
    let mut in_step = Duration::ZERO;
    while count(sim) - start < n {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let t = Instant::now();
        sim.step();
        in_step += t.elapsed();
    }
    (in_step, count(sim) - start)
}

/// Figure 2: the world's own cost per call, the waits excluded.
fn overhead(c: &mut Criterion) {
    // Answers come at once; a short pause between steps lets every one arrive, so a
    // step does all the work of one round of 1 000 calls.
    let pause = Duration::from_millis(8);
    let fake = FakeLlm::start();
    fake.set_default(Reply::text("ok", 12, 4));
    let mut thinking = world(&fake.base_url(), THINKER, "Realtime");
    thinking.step();
    let mut idle = world(&fake.base_url(), IDLER, "Realtime");
    idle.step();
    // Warm up: the sandbox lanes and the connection pool.
    step_until(&mut thinking, 3 * AGENTS as u64, pause, thoughts);
    idle.run_steps(3);
    // Rounds of each, alternating, so that whatever else the machine does weighs on
    // both alike; the medians.
    let (mut with_model, mut without) = (Vec::new(), Vec::new());
    let mut calls = 0;
    for _ in 0..9 {
        let (spent, done) = step_until(&mut thinking, 2 * AGENTS as u64, pause, thoughts);
        with_model.push(spent.as_secs_f64() * 1e6 / done as f64);
        calls += done;
        let mut spent = Duration::ZERO;
        for _ in 0..2 {
            std::thread::sleep(pause);
            let t = Instant::now();
            idle.step();
            spent += t.elapsed();
        }
        without.push(spent.as_secs_f64() * 1e6 / (2 * AGENTS) as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (per_call, per_agent_step) = (median(&mut with_model), median(&mut without));
    eprintln!();
    eprintln!("== the world's own cost per LLM call (server answers at once; waits excluded) ==");
    eprintln!(
        "   {per_call:.1} µs in step() per completed call (median of 9 rounds; {calls} calls, {} failed)",
        failures(&thinking)
    );
    eprintln!("   {per_agent_step:.1} µs per agent step taking a cheap action instead (no model)");
    eprintln!(
        "   => thinking adds ~{:.1} µs per call to the world (reserve, body, submit, collect, settle, deliver)",
        per_call - per_agent_step
    );
    eprintln!();

    let mut group = c.benchmark_group("llm");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    group.bench_function("world time per call (1000 agents, latency 0)", |b| {
        b.iter_custom(|iters| {
            // A step completes a whole round of calls: time per call, times `iters`.
            let (spent, calls) = step_until(&mut thinking, iters, pause, thoughts);
            black_box(spent.mul_f64(iters as f64 / calls as f64))
        })
    });
    group.bench_function("world time per agent step without a model (1000 agents)", |b| {
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(AGENTS as u64);
            let t = Instant::now();
            idle.run_steps(rounds);
            black_box(t.elapsed().mul_f64(iters as f64 / (rounds * AGENTS as u64) as f64))
        })
    });
    group.finish();
    let _ = thinking.end_thinking();
}

fn benches(c: &mut Criterion) {
    realtime_throughput(AGENTS, Cap::World);
    realtime_throughput(10 * AGENTS, Cap::Endpoint);
    overhead(c);
}

criterion_group! {
    name = llm;
    config = Criterion::default();
    targets = benches
}
criterion_main!(llm);
