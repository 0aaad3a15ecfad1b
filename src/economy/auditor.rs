//! The auditor: a readable account of a run, told from its events.
//!
//! [`Story`] reads events one at a time (so a long event stream never has to fit in
//! memory) and [`Story::render`] writes plain text: who earned what and how, which
//! artifacts became capital that others built on, what the mint did, trade and
//! credit, who froze and who rescued them, commons and their votes, and how the
//! health indicators moved. The same story is told by `ecology report EVENTS.jsonl`
//! and by the `system_auditor` service (over the events still in memory). The text
//! comes from templates; a language model may retell it when the world has one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    kpis::{self, KpiSample},
    mint::Winner,
    services::{self, AUDITOR_ID},
};
use crate::{
    kernel::{Event, EventKind, EventLog, Kernel, KernelError},
    world::{
        components::{Interface, Service, created_by},
        ids::{ArtifactId, Ids},
    },
};

/// How many entries each list of the story shows at most.
const TOP: usize = 8;

/// Where scrip came from, or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flow {
    Calls,
    Reads,
    Transfers,
    Sales,
    Minted,
    MintPrices,
    Loans,
    Repayments,
    Collections,
}

impl Flow {
    fn earned(self) -> &'static str {
        match self {
            Flow::Calls => "selling calls",
            Flow::Reads => "selling reads",
            Flow::Transfers => "in transfers",
            Flow::Sales => "selling artifacts",
            Flow::Minted => "minted",
            Flow::MintPrices => "(mint prices)",
            Flow::Loans => "borrowed",
            Flow::Repayments => "repaid to it",
            Flow::Collections => "collected from debtors",
        }
    }

    fn spent(self) -> &'static str {
        match self {
            Flow::Calls => "on calls",
            Flow::Reads => "on reads",
            Flow::Transfers => "in transfers",
            Flow::Sales => "buying artifacts",
            Flow::Minted => "(minted)",
            Flow::MintPrices => "winning auctions",
            Flow::Loans => "lending",
            Flow::Repayments => "repaying",
            Flow::Collections => "to collectors",
        }
    }
}

#[derive(Debug, Default)]
struct Purse {
    earned: BTreeMap<Flow, u64>,
    spent: BTreeMap<Flow, u64>,
}

impl Purse {
    fn earned_total(&self) -> u64 {
        self.earned.values().sum()
    }
    fn spent_total(&self) -> u64 {
        self.spent.values().sum()
    }
}

#[derive(Debug, Default)]
struct Use {
    by_others: u64,
    by_creator: u64,
    failures: u64,
    earned: u64,
    callers: BTreeSet<ArtifactId>,
}

#[derive(Debug)]
struct Freeze {
    who: ArtifactId,
    at: f64,
    reason: String,
    rescued: Option<(Option<ArtifactId>, f64)>,
}

/// A run's events, digested for telling.
#[derive(Debug, Default)]
pub struct Story {
    first: Option<f64>,
    last: f64,
    events: u64,
    /// Events a failure undid (left out of every count below), and refusals.
    undone: u64,
    refused: u64,
    creators: BTreeMap<ArtifactId, ArtifactId>,
    purses: BTreeMap<ArtifactId, Purse>,
    uses: BTreeMap<ArtifactId, Use>,
    builds_on: BTreeSet<(ArtifactId, ArtifactId)>,
    freezes: Vec<Freeze>,
    auctions: u64,
    bids: u64,
    winners: Vec<(f64, Winner)>,
    minted: u64,
    ubi: u64,
    ubi_payouts: u64,
    sales: Vec<(f64, ArtifactId, ArtifactId, ArtifactId, u64)>,
    listings: u64,
    loans: Vec<String>,
    defaults: Vec<String>,
    commons: Vec<String>,
    proposals: u64,
    passed: u64,
    samples: Vec<KpiSample>,
}

impl Story {
    fn purse(&mut self, who: &ArtifactId) -> &mut Purse {
        self.purses.entry(who.clone()).or_default()
    }

    fn earn(&mut self, who: &ArtifactId, flow: Flow, amount: u64) {
        if amount > 0 {
            *self.purse(who).earned.entry(flow).or_default() += amount;
        }
    }

    fn spend(&mut self, who: &ArtifactId, flow: Flow, amount: u64) {
        if amount > 0 {
            *self.purse(who).spent.entry(flow).or_default() += amount;
        }
    }

    fn pay(&mut self, from: &ArtifactId, to: &ArtifactId, flow: Flow, amount: u64) {
        self.spend(from, flow, amount);
        self.earn(to, flow, amount);
    }

    /// Takes in one event.
    pub fn read(&mut self, event: &Event) {
        let at = event.time.as_secs_f64();
        self.first.get_or_insert(at);
        self.last = at;
        self.events += 1;
        if event.reverted {
            // Undone with the action it was part of: the ledger never saw it.
            self.undone += 1;
            return;
        }
        if matches!(event.kind, EventKind::ActionFailed { .. } | EventKind::IntentRefused { .. }) {
            self.refused += 1;
        }
        let actor = &event.actor;
        match &event.kind {
            EventKind::ArtifactWritten { id, created: true, .. } | EventKind::PrincipalSpawned { id } => {
                self.creators.entry(id.clone()).or_insert_with(|| actor.clone());
            }
            EventKind::ScripTransfer { to, amount } => self.pay(actor, to, Flow::Transfers, *amount),
            EventKind::ArtifactRead { price, paid_to: Some(to), .. } => self.pay(actor, to, Flow::Reads, *price),
            EventKind::InvokeSuccess { artifact, price, paid_to, depth, .. } => {
                if let Some(to) = paid_to {
                    self.pay(actor, to, Flow::Calls, *price);
                }
                if *depth > 0 {
                    self.builds_on.insert((actor.clone(), artifact.clone()));
                }
                let by_creator = self.creators.get(artifact) == Some(actor);
                let entry = self.uses.entry(artifact.clone()).or_default();
                if by_creator {
                    entry.by_creator += 1;
                } else {
                    entry.by_others += 1;
                    entry.callers.insert(actor.clone());
                }
                entry.earned += *price;
            }
            EventKind::InvokeFailure { artifact, .. } => self.uses.entry(artifact.clone()).or_default().failures += 1,
            EventKind::AgentFrozen { principal, reason, .. } => {
                self.freezes.push(Freeze { who: principal.clone(), at, reason: reason.clone(), rescued: None });
            }
            EventKind::AgentUnfrozen { principal, rescuer } => {
                if let Some(freeze) = self.freezes.iter_mut().rev().find(|f| &f.who == principal && f.rescued.is_none())
                {
                    freeze.rescued = Some((rescuer.clone(), at));
                }
            }
            EventKind::MintResolved { bids, winners, .. } => {
                self.auctions += 1;
                self.bids += bids;
                for winner in winners {
                    self.minted += winner.minted;
                    self.earn(&winner.bidder, Flow::Minted, winner.minted);
                    self.spend(&winner.bidder, Flow::MintPrices, winner.price);
                    self.winners.push((at, winner.clone()));
                }
            }
            EventKind::UbiPaid { amount, recipients, .. } => {
                self.ubi += amount;
                self.ubi_payouts += recipients;
            }
            EventKind::EscrowListed { .. } => self.listings += 1,
            EventKind::EscrowSold { artifact, seller, price } => {
                self.pay(actor, seller, Flow::Sales, *price);
                self.sales.push((at, artifact.clone(), seller.clone(), actor.clone(), *price));
            }
            EventKind::DebtAccepted { id, holder, principal, due_at } => {
                self.pay(holder, actor, Flow::Loans, *principal);
                self.loans.push(format!("{holder} lent {actor} {principal} at {at} s ({id}, due at {due_at} s)"));
            }
            EventKind::DebtRepaid { holder, amount, .. } => self.pay(actor, holder, Flow::Repayments, *amount),
            EventKind::DebtCollected { debtor, amount, .. } => self.pay(debtor, actor, Flow::Collections, *amount),
            EventKind::DebtDefaulted { id, debtor, holder, outstanding } => {
                self.defaults.push(format!("{debtor} defaulted at {at} s on {outstanding} owed to {holder} ({id})"));
            }
            EventKind::CommonsCreated { id, members, .. } => {
                let members: Vec<&str> = members.iter().map(ArtifactId::as_str).collect();
                self.commons.push(format!("{actor} created {id} for {} at {at} s", members.join(", ")));
            }
            EventKind::ProposalOpened { .. } => self.proposals += 1,
            EventKind::ProposalClosed { passed: true, .. } => self.passed += 1,
            EventKind::KpiSampled { kpis } => self.samples.push((**kpis).clone()),
            _ => {}
        }
    }

    /// The story, as plain text.
    pub fn render(&self, title: &str) -> String {
        let mut out = String::new();
        let (from, to) = (self.first.unwrap_or(0.0), self.last);
        let _ = writeln!(out, "{title}: {from}–{to} s of simulated time, {} events.", self.events);
        if self.undone + self.refused > 0 {
            let _ = writeln!(
                out,
                "{} actions or intents were refused or failed; {} events were undone with them (left out below).",
                self.refused, self.undone
            );
        }
        self.render_earnings(&mut out);
        self.render_capital(&mut out);
        self.render_mint(&mut out);
        self.render_trade(&mut out);
        self.render_freezes(&mut out);
        self.render_commons(&mut out);
        self.render_health(&mut out);
        out
    }

    fn render_earnings(&self, out: &mut String) {
        let _ = writeln!(out, "\nWho earned what, and how");
        let mut ranked: Vec<(&ArtifactId, &Purse)> = self.purses.iter().filter(|(_, p)| p.earned_total() > 0).collect();
        ranked.sort_by(|a, b| b.1.earned_total().cmp(&a.1.earned_total()).then(a.0.cmp(b.0)));
        if ranked.is_empty() {
            let _ = writeln!(out, "  Nobody earned anything: no scrip changed hands.");
        }
        for (who, purse) in ranked.iter().take(TOP) {
            let parts = |flows: &BTreeMap<Flow, u64>, label: fn(Flow) -> &'static str| {
                let mut parts: Vec<(u64, String)> =
                    flows.iter().map(|(flow, amount)| (*amount, format!("{amount} {}", label(*flow)))).collect();
                parts.sort_by_key(|part| std::cmp::Reverse(part.0));
                parts.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(", ")
            };
            let _ = write!(out, "  {who} took in {}: {}", purse.earned_total(), parts(&purse.earned, Flow::earned));
            if purse.spent_total() > 0 {
                let _ = write!(out, "; paid out {}: {}", purse.spent_total(), parts(&purse.spent, Flow::spent));
            }
            let _ = writeln!(out, ".");
        }
        if ranked.len() > TOP {
            let _ = writeln!(out, "  … and {} more.", ranked.len() - TOP);
        }
        if self.ubi > 0 {
            let _ = writeln!(
                out,
                "  UBI: {} scrip of auction prices shared out in {} payouts (not counted above).",
                self.ubi, self.ubi_payouts
            );
        }
    }

    fn render_capital(&self, out: &mut String) {
        let _ = writeln!(out, "\nCapital: artifacts others used");
        // The world's own services are machinery, not capital anyone built.
        let mut ranked: Vec<(&ArtifactId, &Use)> =
            self.uses.iter().filter(|(id, u)| u.by_others > 0 && Service::from_id(id.as_str()).is_none()).collect();
        ranked.sort_by(|a, b| b.1.by_others.cmp(&a.1.by_others).then(a.0.cmp(b.0)));
        if ranked.is_empty() {
            let _ = writeln!(out, "  No artifact was used by anyone but its creator.");
        }
        for (artifact, usage) in ranked.iter().take(TOP) {
            // A stream that starts with a scene's artifacts does not say who made them.
            let creator = self.creators.get(*artifact).map_or_else(String::new, |c| format!(" (made by {c})"));
            let _ = write!(out, "  {artifact}{creator}: {} calls by {} others", usage.by_others, usage.callers.len());
            if usage.earned > 0 {
                let _ = write!(out, ", earning {}", usage.earned);
            }
            if usage.failures > 0 {
                let calls = if usage.failures == 1 { "call" } else { "calls" };
                let _ = write!(out, "; {} {calls} failed", usage.failures);
            }
            let _ = writeln!(out, ".");
        }
        if !self.builds_on.is_empty() {
            let edges: Vec<String> = self.builds_on.iter().take(TOP).map(|(a, b)| format!("{a} → {b}")).collect();
            let _ = writeln!(out, "  Code building on code: {}.", edges.join(", "));
        }
    }

    fn render_mint(&self, out: &mut String) {
        let _ = writeln!(out, "\nThe mint");
        if self.auctions == 0 {
            let _ = writeln!(out, "  No auction resolved.");
            return;
        }
        let _ = writeln!(
            out,
            "  {} auctions, {} bids; {} scrip minted; {} scrip of prices shared as UBI.",
            self.auctions, self.bids, self.minted, self.ubi
        );
        for (at, w) in self.winners.iter().take(TOP) {
            let score = match (&w.score, &w.scoring_error) {
                (Some(score), _) if w.duplicate => format!("a duplicate, scored {score}"),
                (Some(score), _) => format!("scored {score}"),
                (None, Some(error)) => format!("could not be scored ({error}); refunded"),
                (None, None) => "not scored".to_owned(),
            };
            let _ = writeln!(
                out,
                "  At {at} s {} won with {} (bid {}, paid {}), {score}, minted {}.",
                w.bidder, w.artifact, w.bid, w.price, w.minted
            );
        }
        if self.winners.len() > TOP {
            let _ = writeln!(out, "  … and {} more winners.", self.winners.len() - TOP);
        }
    }

    fn render_trade(&self, out: &mut String) {
        if self.listings == 0 && self.loans.is_empty() && self.defaults.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nTrade and credit");
        if self.listings > 0 {
            let _ = writeln!(out, "  {} listings in escrow, {} sold.", self.listings, self.sales.len());
        }
        for (at, artifact, seller, buyer, price) in self.sales.iter().take(TOP) {
            let _ = writeln!(out, "  At {at} s {buyer} bought {artifact} from {seller} for {price}.");
        }
        for line in self.loans.iter().take(TOP) {
            let _ = writeln!(out, "  {line}.");
        }
        for line in self.defaults.iter().take(TOP) {
            let _ = writeln!(out, "  {line}.");
        }
    }

    fn render_freezes(&self, out: &mut String) {
        let _ = writeln!(out, "\nFreezes and rescues");
        if self.freezes.is_empty() {
            let _ = writeln!(out, "  Nobody froze.");
            return;
        }
        let mut by_who: BTreeMap<&ArtifactId, Vec<&Freeze>> = BTreeMap::new();
        for freeze in &self.freezes {
            by_who.entry(&freeze.who).or_default().push(freeze);
        }
        for (who, freezes) in by_who.iter().take(TOP) {
            let first = freezes[0];
            let mut rescuers: BTreeMap<&str, u64> = BTreeMap::new();
            for freeze in freezes {
                if let Some((rescuer, _)) = &freeze.rescued {
                    // The kernel thaws by UBI and grants; no rescuer at all is the experimenter's
                    // `Unfreeze`.
                    let by = match rescuer.as_ref().map(ArtifactId::as_str) {
                        None => "the experimenter",
                        Some("kernel") => "UBI or a grant",
                        Some(who) => who,
                    };
                    *rescuers.entry(by).or_default() += 1;
                }
            }
            let rescued: u64 = rescuers.values().sum();
            let by: Vec<String> = rescuers.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let times = if freezes.len() == 1 { "once".to_owned() } else { format!("{} times", freezes.len()) };
            let _ = write!(out, "  {who} froze {times}, first at {} s ({})", first.at, first.reason);
            if rescued > 0 {
                let times = if rescued == 1 { "once".to_owned() } else { format!("{rescued} times") };
                let _ = write!(out, "; thawed {times} (by {})", by.join(", "));
            }
            if freezes.last().is_some_and(|f| f.rescued.is_none()) {
                let _ = write!(out, "; still frozen at the end");
            }
            let _ = writeln!(out, ".");
        }
        if by_who.len() > TOP {
            let _ = writeln!(out, "  … and {} more.", by_who.len() - TOP);
        }
    }

    fn render_commons(&self, out: &mut String) {
        if self.commons.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nCommons");
        for line in self.commons.iter().take(TOP) {
            let _ = writeln!(out, "  {line}.");
        }
        let _ = writeln!(out, "  {} proposals, {} passed.", self.proposals, self.passed);
    }

    fn render_health(&self, out: &mut String) {
        let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) else { return };
        let _ = writeln!(out, "\nHealth over the run ({} samples)", self.samples.len());
        let trend = |name: &str, get: fn(&KpiSample) -> Option<f64>| {
            let values: Vec<f64> = self.samples.iter().filter_map(get).collect();
            let (Some(a), Some(b)) = (get(first).or(values.first().copied()), get(last).or(values.last().copied()))
            else {
                return None;
            };
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            Some(format!("{name} {a:.2} → {b:.2} (max {max:.2})"))
        };
        let lines: Vec<String> = [
            trend("Gini", |k| Some(k.gini)),
            trend("velocity", |k| Some(k.velocity)),
            trend("reuse", |k| Some(k.reuse)),
            trend("capital density", |k| Some(k.capital_density)),
            trend("capital depth", |k| Some(k.capital_depth as f64)),
            trend("frozen share", |k| Some(k.frozen_share)),
            trend("recovery rate", |k| k.recovery_rate),
            trend("specialisation", |k| k.specialisation),
            trend("coordination density", |k| k.coordination_density),
        ]
        .into_iter()
        .flatten()
        .collect();
        for line in lines {
            let _ = writeln!(out, "  {line}.");
        }
        let _ = writeln!(
            out,
            "  Scrip supply {} → {} ({} minted).",
            first.scrip_supply, last.scrip_supply, last.minted_total
        );
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Report {
        since_secs: Option<f64>,
    }
    match method {
        "report" => {
            let since = services::args::<Report>(method, input)?.since_secs.unwrap_or(0.0);
            let log = kernel.world().resource::<EventLog>();
            let mut story = Story::default();
            // Artifacts a scene (or a saved world) put in place were never written by
            // anyone, and older writes may have left the ring or precede `since_secs`:
            // the events alone do not say who made them, and a creator's calls to its
            // own tool would count as use by others. The world knows; ask it for
            // everything that can be invoked.
            let world = kernel.world();
            for &entity in world.resource::<Ids>().in_creation_order() {
                if world.get::<Interface>(entity).is_some()
                    && let (Some(id), Some(creator)) = (world.get::<ArtifactId>(entity), created_by(world, entity))
                {
                    story.creators.insert(id.clone(), creator.clone());
                }
            }
            for event in log.recent().filter(|e| e.time.as_secs_f64() >= since) {
                story.read(event);
            }
            Ok(json!({ "text": story.render("The story so far"), "events": story.events }))
        }
        "kpis" => {
            let series = kernel.world().get_resource::<kpis::Kpis>().map(|k| k.series().to_vec()).unwrap_or_default();
            let recent: Vec<&KpiSample> = series.iter().rev().take(10).rev().collect();
            Ok(json!({ "now": kpis::compute(kernel.world()), "recent": recent }))
        }
        _ => Err(services::no_such_method(AUDITOR_ID, method)),
    }
}
