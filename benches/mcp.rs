//! Outside tools: calls through an MCP gateway to the real filesystem server
//! (`mcp/node_modules`, installed by `npm ci --prefix mcp`).
//!
//! Criterion times one `read_file` of a small file through the whole path: the
//! invoke (schema check, capability, price, `mcp_calls`), the bridge (tokio, rmcp,
//! JSON-RPC over the server's stdio), the server's work, and the settlement (charge,
//! event). A caller that is not an agent waits for the result, so one iteration is
//! one round trip.

use std::path::Path;

use agent_ecology::{
    kernel::{Action, Kernel},
    run::Simulation,
    scene::Scene,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static ALLOCATOR: agent_ecology::sandbox::alloc::WorkerAllocator = agent_ecology::sandbox::alloc::WorkerAllocator;

fn world(root: &Path) -> Simulation {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/node_modules/.bin/mcp-server-filesystem");
    assert!(server.exists(), "install the servers first: npm ci --prefix mcp");
    let text = format!(
        r#"Scene(config: (mcp: (servers: {{"files": (command: {:?}, args: [{:?}], scrip_per_call: 1)}})),
              principals: [(id: "caller", scrip: 1000000000)])"#,
        server.display().to_string(),
        root.display().to_string()
    );
    Simulation::new(&Scene::from_ron_str("bench.ron", &text).unwrap(), None).unwrap()
}

fn read(sim: &mut Simulation, action: &Action) {
    let result = Kernel::as_principal(sim.world_mut(), "caller").unwrap().act(action.clone());
    assert!(result.success, "{result:?}");
}

fn bench_mcp(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("hello.txt"), "hello from outside the world").unwrap();
    let json = format!(
        r#"{{"action":"invoke","id":"mcp_files","method":"read_file","args":{{"path":{:?}}}}}"#,
        root.join("hello.txt").display().to_string()
    );
    let action = Action::from_json_str(&json).unwrap();
    let mut group = c.benchmark_group("mcp");
    group.throughput(Throughput::Elements(1));

    let mut live = world(&root);
    live.step();
    group.bench_function("read_file through the gateway (live server)", |b| b.iter(|| read(&mut live, &action)));

    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_mcp
}
criterion_main!(benches);
