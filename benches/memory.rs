//! Memory per principal: 100 000 principals, each owning one 1 KB artifact.
//!
//! Reference (the original Python system): ~2.2 KiB per principal plus a 217 MiB
//! baseline. Target: ≤ 1.5 KiB per principal (1 KiB of it is the artifact's content)
//! with a baseline under 30 MiB.
//!
//! Two measures: heap bytes live (a counting allocator: what the program asked for)
//! and resident memory (`/proc/self/statm`: what the process really costs, allocator
//! overhead included). The baseline is the resident size of the process holding an
//! empty world.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, Ordering},
};

use agent_ecology::{
    run::Simulation,
    scene::{
        Scene,
        raw::{ArtifactSpec, PrincipalSpec, SceneFile},
    },
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn scene(principals: usize) -> Scene {
    let file = SceneFile {
        principals: (0..principals).map(|i| PrincipalSpec { id: format!("p{i:06}"), ..Default::default() }).collect(),
        artifacts: (0..principals)
            .map(|i| {
                let mut a = ArtifactSpec { id: format!("a{i:06}"), owner: format!("p{i:06}"), ..Default::default() };
                a.content = Some(format!("{i:06}").repeat(171)[..1024].to_owned());
                a
            })
            .collect(),
        ..SceneFile {
            version: 1,
            name: String::new(),
            description: String::new(),
            config: Default::default(),
            principals: vec![],
            populations: vec![],
            artifacts: vec![],
            interventions: vec![],
            history: None,
        }
    };
    Scene::from_file("memory", file)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let principals = if quick { 1_000 } else { 100_000 };

    let empty = Simulation::new(&scene(0), None).expect("valid");
    let baseline_rss = rss_bytes();
    let heap_before = LIVE.load(Ordering::Relaxed);
    drop(empty);

    let valid = scene(principals).validate().expect("valid");
    let mut sim = Simulation::from_valid(valid);
    sim.step();
    // Only the world stays: the scene file it came from is gone, and its pages go
    // back to the system, so the resident size is the world's (plus whatever
    // fragmentation building it left behind).
    // SAFETY: malloc_trim only releases free memory of the C allocator.
    unsafe { libc::malloc_trim(0) };
    let heap_after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss_bytes();
    let rss_before = baseline_rss;

    let heap_per = (heap_after - heap_before) as f64 / principals as f64;
    let rss_per = rss_after.saturating_sub(rss_before) as f64 / principals as f64;
    println!("memory/{principals} principals each owning one 1 KiB artifact");
    println!("  heap per principal:     {:>8.0} B  ({:.2} KiB)", heap_per, heap_per / 1024.0);
    println!("  resident per principal: {:>8.0} B  ({:.2} KiB)", rss_per, rss_per / 1024.0);
    println!("  baseline (empty world): {:>8.1} MiB resident", baseline_rss as f64 / (1024.0 * 1024.0));
    assert_eq!(sim.report().principals.len(), principals);
}
