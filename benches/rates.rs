//! Rate limiting: one check plus one record against a rolling window.
//!
//! Reference (the original Python rate tracker, same machine): 40 000–97 000
//! check+record pairs per second, slowing as its window fills. Floor for this
//! implementation: 10 000 000/s, the same whether the window holds 10 records or
//! 10 000.
//!
//! "Holds N records" is a steady state: the clock moves on by `window / N` between
//! records, so N records are inside the window at any time and one leaves for each
//! that arrives.

use std::hint::black_box;

use agent_ecology::{
    kernel::{
        Kernel,
        rates::{Window, bucket_width},
        state,
    },
    run::Simulation,
    scene::{
        Scene,
        raw::{PrincipalSpec, SceneFile},
    },
    world::time::SimTime,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const WINDOW_MS: u64 = 60_000;

fn window(c: &mut Criterion) {
    let mut group = c.benchmark_group("rates");
    group.throughput(Throughput::Elements(1));
    for held in [10u64, 10_000] {
        for dt_ms in [1_000u64, 1] {
            let width = bucket_width(SimTime::from_millis(WINDOW_MS), SimTime::from_millis(dt_ms));
            let mut w = Window::new(SimTime::from_millis(WINDOW_MS), width);
            // Fill the window to its steady state before measuring.
            let gap = WINDOW_MS / held;
            let mut now = 0u64;
            for _ in 0..held {
                w.record(SimTime::from_millis(now), 1);
                now += gap;
            }
            let label = format!("{held} records in window, {dt_ms} ms steps");
            group.bench_function(BenchmarkId::new("check+record", label), |b| {
                b.iter(|| {
                    now += gap;
                    let at = SimTime::from_millis(now);
                    let wait = w.wait_for(at, black_box(1), u64::MAX / 2);
                    if wait == Some(SimTime::ZERO) {
                        w.record(at, 1);
                    }
                    black_box(wait)
                })
            });
            // Exact to within one bucket of records.
            let slack = width.millis() / gap + 1;
            let usage = w.usage(SimTime::from_millis(now));
            assert!(usage.abs_diff(held) <= slack, "the window holds what arrived in it: {usage} vs {held}");
        }
    }
    group.finish();
}

/// The same through the kernel: `consume_quota` resolves the resource, finds the
/// caller's limit and window, checks and records.
fn kernel(c: &mut Criterion) {
    let file = SceneFile {
        principals: vec![PrincipalSpec {
            id: "alice".into(),
            scrip: Some(1),
            quota: [("cpu".to_string(), Some(u64::MAX / 2))].into(),
            ..Default::default()
        }],
        ..Scene::embedded_default().expect("default scene").file().clone()
    };
    let file = SceneFile { artifacts: Vec::new(), interventions: Vec::new(), ..file };
    let mut sim = Simulation::new(&Scene::from_file("bench", file), None).expect("bench scene is valid");
    assert_eq!(state::get_quota(sim.world_mut(), "alice", "cpu").expect("cpu is a rate"), Some(u64::MAX / 2));
    let mut group = c.benchmark_group("rates");
    group.throughput(Throughput::Elements(1));
    group.bench_function("kernel consume_quota (check+record)", |b| {
        let mut kernel = Kernel::as_principal(sim.world_mut(), "alice").expect("principal");
        b.iter(|| {
            // The limit is far beyond what a measurement can use up.
            black_box(kernel.consume_quota("cpu", black_box(1))).expect("fits")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = window, kernel
}
criterion_main!(benches);
