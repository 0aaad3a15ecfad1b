//! Kernel throughput: scrip transfers with the event log on, and 100-byte writes.
//!
//! Reference (the original Python system, same machine): ~62 000 transfers/s and
//! ~11 000 writes/s. Floors for this implementation: 2 000 000 transfers/s and
//! 500 000 writes/s.

use std::hint::black_box;

use agent_ecology::{
    kernel::{
        Action, Kernel,
        actions::{Amount, TransferSpec},
        artifacts::WriteSpec,
    },
    run::Simulation,
    scene::{
        Scene,
        raw::{PrincipalSpec, SceneFile},
    },
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PRINCIPALS: usize = 1_000;

fn world(principals: usize, disk_bytes: u64) -> (Simulation, Vec<String>) {
    let ids: Vec<String> = (0..principals).map(|i| format!("p{i:06}")).collect();
    let file = SceneFile {
        principals: ids
            .iter()
            .map(|id| PrincipalSpec {
                id: id.clone(),
                scrip: Some(1_000_000),
                disk_bytes: Some(disk_bytes),
                ..Default::default()
            })
            .collect(),
        ..Scene::embedded_default().expect("default scene").file().clone()
    };
    let file = SceneFile { artifacts: Vec::new(), interventions: Vec::new(), ..file };
    let sim = Simulation::new(&Scene::from_file("bench", file), None).expect("bench scene is valid");
    (sim, ids)
}

/// Transfers of 1 scrip between rotating pairs of principals.
fn bench_transfers(c: &mut Criterion, name: &str, mut sim: Simulation, ids: &[String]) {
    let mut group = c.benchmark_group("kernel");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let from = &ids[n % PRINCIPALS];
            let to = &ids[(n * 7 + 1) % PRINCIPALS];
            let mut kernel = Kernel::as_principal(sim.world_mut(), from).expect("principal");
            black_box(kernel.transfer_scrip(to, 1)).expect("funded");
        })
    });
    group.finish();
}

fn transfers(c: &mut Criterion) {
    let (sim, ids) = world(PRINCIPALS, 100_000);
    bench_transfers(c, "transfer_scrip (event log on)", sim, &ids);
    // The same through the action pipeline agents use (frozen, rate, the transaction,
    // the result).
    let (mut sim, ids) = world(PRINCIPALS, 100_000);
    let mut group = c.benchmark_group("kernel");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function("transfer action (act)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let from = &ids[n % PRINCIPALS];
            let to = ids[(n * 7 + 1) % PRINCIPALS].clone();
            let mut kernel = Kernel::as_principal(sim.world_mut(), from).expect("principal");
            let action = Action::Transfer(TransferSpec { to, amount: Some(Amount(1)), resource: None, artifact: None });
            assert!(black_box(kernel.act(action)).success);
        })
    });
    group.finish();
    // The same, also streaming every event as a JSON line (to a sink that discards).
    let (mut sim, ids) = world(PRINCIPALS, 100_000);
    sim.stream_events_to(Box::new(std::io::BufWriter::new(std::io::sink())));
    bench_transfers(c, "transfer_scrip (event log on, JSONL stream)", sim, &ids);
}

fn writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel");
    group.throughput(Throughput::Elements(1));
    let content = "x".repeat(100);
    // Creating: every measurement gets a fresh world and fresh ids, built untimed.
    group.bench_function("write 100-byte artifact (create)", |b| {
        b.iter_custom(|iters| {
            let (mut sim, _) = world(1, 200 * iters + 1_000);
            let specs: Vec<WriteSpec> = (0..iters)
                .map(|i| WriteSpec { id: format!("doc{i:08}"), content: Some(content.clone()), ..Default::default() })
                .collect();
            let started = std::time::Instant::now();
            for spec in specs {
                let mut kernel = Kernel::as_principal(sim.world_mut(), "p000000").expect("principal");
                black_box(kernel.write(spec)).expect("room on disk");
            }
            started.elapsed()
        })
    });
    const BATCH: usize = 10_000;
    let names: Vec<String> = (0..BATCH).map(|i| format!("doc{i:06}")).collect();
    let (mut sim, _) = world(1, 10_000_000);
    for name in &names {
        let mut kernel = Kernel::as_principal(sim.world_mut(), "p000000").expect("principal");
        kernel
            .write(WriteSpec { id: name.clone(), content: Some(content.clone()), ..Default::default() })
            .expect("room");
    }
    let mut n = 0usize;
    group.bench_function("write 100-byte artifact (replace)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let mut kernel = Kernel::as_principal(sim.world_mut(), "p000000").expect("principal");
            let spec = WriteSpec { id: names[n % BATCH].clone(), content: Some(content.clone()), ..Default::default() };
            black_box(kernel.write(spec)).expect("room on disk");
        })
    });
    group.bench_function("write action, 100-byte artifact (replace, act)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let mut kernel = Kernel::as_principal(sim.world_mut(), "p000000").expect("principal");
            let spec = WriteSpec { id: names[n % BATCH].clone(), content: Some(content.clone()), ..Default::default() };
            assert!(black_box(kernel.act(Action::Write(spec))).success);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = transfers, writes
}
criterion_main!(benches);
