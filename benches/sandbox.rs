//! The sandbox: invokes through the full kernel path, contract checks, code importing
//! libraries, batched agent steps, worker and context start-up, and the cost of one
//! host call.
//!
//! Reference (the original Python system, same machine): ~2 200 priced invokes/s.
//! Floors for this implementation: 50 000 invokes/s and 100 000 agent-steps/s.

use std::{hint::black_box, time::Instant};

use agent_ecology::{
    kernel::Kernel,
    run::Simulation,
    sandbox::{
        find_worker_binary,
        process::{WorkerProcess, WorkerSpawn},
        worker::{WorkerLimits, new_context},
    },
    scene::Scene,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn world(ron: &str) -> Simulation {
    Simulation::new(&Scene::from_ron_str("bench", ron).expect("bench scene parses"), None)
        .expect("bench scene is valid")
}

fn tool(id: &str, code: &str, extra: &str) -> String {
    format!(r#"(id: "{id}", owner: "bob", code: {code:?}, interface: (tools: [(name: "run")]), {extra}),"#)
}

const ADDER: &str = "function run(args) { return args.x + 1 }";

// The callers below get a CPU quota far beyond what a measurement uses: the quota is
// checked and recorded on every call, as in a real world, but never runs out while
// simulated time stands still.
fn invokes(c: &mut Criterion) {
    let mut group = c.benchmark_group("sandbox");
    group.throughput(Throughput::Elements(1));

    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", scrip: 1000000000, quota: {{"cpu": 1000000000000}}), (id: "bob")], artifacts: [{}])"#,
        tool("adder", ADDER, "pricing: (invoke_price: 1)")
    ));
    let args = json!({"x": 41});
    group.bench_function("priced invoke of run(args) { return args.x + 1 }", |b| {
        b.iter(|| {
            let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
            black_box(kernel.invoke("adder", "run", args.clone()).expect("invoke succeeds"));
        })
    });

    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", scrip: 1000000000, quota: {{"cpu": 1000000000000}}), (id: "bob")], artifacts: [{}{}])"#,
        tool("gate", "function check_permission(req) { return {allowed: req.caller === 'alice'} }", ""),
        tool("adder", ADDER, r#"pricing: (invoke_price: 1), contract: "gate""#),
    ));
    group.bench_function("priced invoke checked by a contract in code", |b| {
        b.iter(|| {
            let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
            black_box(kernel.invoke("adder", "run", args.clone()).expect("invoke succeeds"));
        })
    });

    // Code that builds on a chain of libraries: three modules evaluated per call.
    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", scrip: 1000000000, quota: {{"cpu": 1000000000000}}), (id: "bob")], artifacts: [{}{}{}])"#,
        tool("inc", "export function inc(x) { return x + 1 }", ""),
        tool("inc2", "import { inc } from \"artifact:inc\";\nexport function inc2(x) { return inc(inc(x)) }", ""),
        tool(
            "adder",
            "import { inc2 } from \"artifact:inc2\";\nexport function run(args) { return inc2(args.x) - 1 }",
            "pricing: (invoke_price: 1)"
        ),
    ));
    group.bench_function("priced invoke of code importing a chain of two libraries", |b| {
        b.iter(|| {
            let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
            black_box(kernel.invoke("adder", "run", args.clone()).expect("invoke succeeds"));
        })
    });

    // What a roll-back costs: code that pays and writes, then either returns or throws
    // (everything it did undone, its CPU still charged).
    const PAYS_AND_WRITES: &str = "function run(args) { transfer(\"bob\", 1); write(\"vault_note\", \"x\"); \
                                   if (args.fail) throw new Error(\"no\"); return 1 }";
    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", quota: {{"cpu": 1000000000000}}), (id: "bob"),
                             (id: "vault", scrip: 1000000000, code: {PAYS_AND_WRITES:?},
                              interface: (tools: [(name: "run")]))])"#
    ));
    for (name, fail) in
        [("invoke that pays and writes (kept)", false), ("invoke that pays, writes and throws (rolled back)", true)]
    {
        let args = json!({"fail": fail});
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
                assert_eq!(black_box(kernel.invoke("vault", "run", args.clone())).is_ok(), !fail);
            })
        });
    }

    // One host call from code back to the kernel, amortised over 100 per invoke.
    const CALLS: u64 = 100;
    let caller = format!(
        "function run() {{ let s = 0; for (let i = 0; i < {CALLS}; i++) s += kernel.balance('bob'); return s }}"
    );
    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", quota: {{"cpu": 1000000000000}}), (id: "bob")], artifacts: [{}])"#,
        tool("asker", &caller, "")
    ));
    group.throughput(Throughput::Elements(CALLS));
    group.bench_function("host call from code to the kernel (kernel.balance)", |b| {
        b.iter(|| {
            let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
            black_box(kernel.invoke("asker", "run", json!({})).expect("invoke succeeds"));
        })
    });
    group.finish();
}

fn agent_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("sandbox");
    const AGENTS: u64 = 2_000;
    let step = "function step(view) { return view.scrip > 0 ? [] : [{action: 'noop'}] }";
    let agents: String = (0..AGENTS)
        .map(|i| format!(r#"(id: "a{i:05}", agent: true, code: {step:?}, interface: (tools: [(name: "step")])),"#))
        .collect();
    let mut sim = world(&format!("Scene(principals: [{agents}])"));
    sim.step();
    group.throughput(Throughput::Elements(AGENTS));
    group.sample_size(20);
    group.bench_function(format!("agent steps, {AGENTS} agents batched per lane"), |b| b.iter(|| sim.step()));
    group.finish();
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("sandbox");
    group.sample_size(20);
    let exe = find_worker_binary().expect("the ecology binary is built alongside benchmarks");
    let limits = WorkerLimits::default();
    group.bench_function("worker process start-up (spawn, lockdown, ready)", |b| {
        b.iter(|| {
            let worker = WorkerProcess::spawn(&WorkerSpawn {
                exe: &exe,
                heap_bytes: limits.heap_bytes,
                recursion: limits.recursion,
                stack_bytes: limits.stack_bytes,
                show_stderr: false,
            })
            .expect("worker starts");
            black_box(worker);
        })
    });
    group.bench_function("context creation with lockdown (in-process)", |b| {
        b.iter(|| black_box(new_context(&limits).expect("context builds")))
    });
    group.finish();
}

/// CPU accounting: how many VM instructions a CPU-microsecond is on this machine,
/// so the `instructions_per_cpu_us` default can be checked against reality.
fn calibration(_: &mut Criterion) {
    let mut sim = world(&format!(
        r#"Scene(principals: [(id: "alice", quota: {{"cpu": 1000000000000}}), (id: "bob")], artifacts: [{}])"#,
        tool("spin", "function run(a) { let s = 0; for (let i = 0; i < a.n; i++) s += i; return s }", "")
    ));
    let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
    kernel.invoke("spin", "run", json!({"n": 1000})).expect("warm up");
    let started = Instant::now();
    let result = kernel.act(
        agent_ecology::kernel::Action::from_json(json!({"action": "invoke", "id": "spin", "args": {"n": 5_000_000}}))
            .expect("action"),
    );
    let wall_us = started.elapsed().as_micros() as f64;
    let charged = result.resources_consumed.cpu_us as f64;
    println!(
        "calibration: a 5 000 000-iteration loop took {wall_us:.0} µs of wall time and was charged {charged:.0} cpu_us ({:.2} charged per real µs)",
        charged / wall_us
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = invokes, agent_steps, startup, calibration
}
criterion_main!(benches);
