//! Property tests: whatever principals do, the ledger stays sound.

use agent_ecology::{
    kernel::{Kernel, state},
    run::audit,
};
use proptest::prelude::*;

use crate::sim;

const PRINCIPALS: [&str; 4] = ["p0", "p1", "p2", "p3"];

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: usize, to: usize, amount: i64 },
    Budget { from: usize, to: usize, amount: i64 },
    Disk { from: usize, to: usize, amount: i64 },
    Spawn { parent: usize, funding: i64 },
    Write { by: usize, artifact: usize, len: usize },
    Edit { by: usize, artifact: usize, grow: usize },
    Delete { by: usize, artifact: usize },
    Give { by: usize, artifact: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..6usize;
    let amount = -5i64..200;
    prop_oneof![
        (who.clone(), who.clone(), amount.clone()).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        (who.clone(), who.clone(), amount.clone()).prop_map(|(from, to, amount)| Op::Budget { from, to, amount }),
        (who.clone(), who.clone(), -5i64..3000).prop_map(|(from, to, amount)| Op::Disk { from, to, amount }),
        (who.clone(), -5i64..100).prop_map(|(parent, funding)| Op::Spawn { parent, funding }),
        (who.clone(), 0..8usize, 0..2000usize).prop_map(|(by, artifact, len)| Op::Write { by, artifact, len }),
        (who.clone(), 0..8usize, 0..50usize).prop_map(|(by, artifact, grow)| Op::Edit { by, artifact, grow }),
        (who.clone(), 0..8usize).prop_map(|(by, artifact)| Op::Delete { by, artifact }),
        (who.clone(), 0..8usize, who).prop_map(|(by, artifact, to)| Op::Give { by, artifact, to }),
    ]
}

/// Principal names: the four from the scene, then ones spawned during the run.
fn name(i: usize, spawned: &[String]) -> String {
    PRINCIPALS
        .get(i)
        .map(|s| (*s).to_owned())
        .or_else(|| spawned.get(i - PRINCIPALS.len()).cloned())
        .unwrap_or_else(|| "nobody".into())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ledger_invariants_hold(ops in prop::collection::vec(op(), 1..60)) {
        let mut sim = sim(r#"Scene(
            config: (defaults: (scrip: 100, disk_bytes: 3000)),
            principals: [(id: "p0"), (id: "p1"), (id: "p2"), (id: "p3")],
        )"#);
        let mut spawned: Vec<String> = Vec::new();
        let supply = sim.report().scrip_supply;
        for op in ops {
            let world = sim.world_mut();
            let actor = |i: usize| name(i, &spawned);
            let _ = match &op {
                Op::Transfer { from, to, amount } => Kernel::as_principal(world, &actor(*from)).and_then(|mut k| k.transfer_scrip(&actor(*to), *amount)),
                Op::Budget { from, to, amount } => Kernel::as_principal(world, &actor(*from)).and_then(|mut k| k.transfer_llm_budget(&actor(*to), *amount * 1000)),
                Op::Disk { from, to, amount } => Kernel::as_principal(world, &actor(*from)).and_then(|mut k| k.transfer_resource(&actor(*to), "disk", *amount)),
                Op::Spawn { parent, funding } => {
                    let id = format!("kid{}", spawned.len());
                    let json = format!(r#"{{"action":"spawn","id":"{id}","scrip":{funding},"resources":{{"disk":500}}}}"#);
                    let action = agent_ecology::kernel::Action::from_json_str(&json).unwrap();
                    let result = Kernel::as_principal(world, &actor(*parent)).map(|mut k| k.act(action));
                    if result.as_ref().is_ok_and(|r| r.success) {
                        spawned.push(id);
                    }
                    Ok(())
                }
                Op::Write { by, artifact, len } => {
                    let json = serde_json::json!({"action": "write", "id": format!("a{artifact}"), "content": "w".repeat(*len)});
                    let action = agent_ecology::kernel::Action::from_json(json).unwrap();
                    Kernel::as_principal(world, &actor(*by)).map(|mut k| { k.act(action); })
                }
                Op::Edit { by, artifact, grow } => {
                    let json = serde_json::json!({"action": "edit", "id": format!("a{artifact}"), "old": "w", "new": "e".repeat(*grow)});
                    let action = agent_ecology::kernel::Action::from_json(json).unwrap();
                    Kernel::as_principal(world, &actor(*by)).map(|mut k| { k.act(action); })
                }
                Op::Delete { by, artifact } => Kernel::as_principal(world, &actor(*by)).and_then(|mut k| k.delete(&format!("a{artifact}")).map(|_| ())),
                Op::Give { by, artifact, to } => Kernel::as_principal(world, &actor(*by)).and_then(|mut k| k.transfer_ownership(&format!("a{artifact}"), &actor(*to))),
            };
            // Scrip is neither created nor destroyed, and disk usage is exactly the
            // live content each principal owns, within its allocation.
            prop_assert_eq!(state::scrip_supply(sim.world()), supply);
            if let Err(e) = audit(sim.world()) {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
        // Balances are u64 and cannot go negative; check that no one wrapped around.
        let report = sim.report();
        for (id, p) in &report.principals {
            prop_assert!(p.scrip <= supply, "{} holds {} of {}", id, p.scrip, supply);
        }
    }
}
