//! The mint (SPEC §7): the only place scrip is created.
//!
//! Owners bid scrip on their artifacts at any time. A bid is sealed — nobody else
//! sees its amount before the auction resolves — and held by the mint at once; its
//! bidder may raise it or cancel it. On a fixed simulated schedule the mint resolves:
//!
//! 1. Bids whose bidder no longer owns the artifact (or whose artifact is gone) are
//!    void and refunded.
//! 2. The rest rank by amount, ties going to the earlier bid (a raise counts from
//!    when it was made). The top `slots` win and each pays the next bid below the
//!    winners — a lone bid pays the minimum, 1. Losers, and winners' excess, are
//!    refunded.
//! 3. Each winner's artifact is scored 0–100 ([`super::scorer`]); a duplicate of an
//!    artifact the mint already scored (same normalised content and code) scores 0.
//!    A scoring failure refunds the winner in full.
//! 4. A winner's price is shared out as UBI over every other principal: `price / n`
//!    each, and the remainder one scrip each to the first principals in id order. The
//!    winner is minted `score / mint_ratio` new scrip.
//!
//! `MINT_RESOLVED` reveals every bid of the auction, so the event log accounts for
//! every scrip that moved.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    scorer::{self, MintScorer},
    services::{self, MINT_ID},
};
use crate::kernel::Standing;
use crate::{
    kernel::{
        ErrorCode, EventKind, Kernel, KernelError, Supply, journal,
        ledger::{self, Holder},
        positive,
    },
    world::{
        components::{Artifact, Frozen, System, Tombstone},
        config::{Config, MintConfig},
        ids::{self, ArtifactId},
        time::{SimClock, SimTime},
    },
};

/// Results of past resolutions kept for `status`.
const HISTORY: usize = 20;

/// The mint's state: sealed bids and what it has scored.
#[derive(Resource, Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mint {
    /// When the next auction resolves; `None` until the first (the scene's
    /// `first_at`).
    next_at: Option<SimTime>,
    /// By (artifact, bidder).
    #[serde(with = "crate::world::pairs")]
    bids: BTreeMap<(ArtifactId, ArtifactId), Bid>,
    /// Orders bids for ties: a lower number was placed (or last raised) earlier.
    next_seq: u64,
    /// Fingerprints of every artifact the mint has scored.
    scored: BTreeSet<u128>,
    resolutions: u64,
    recent: VecDeque<Resolution>,
    /// Who shares UBI, in id order (derived from the world; not state).
    #[serde(skip)]
    ubi_order: UbiOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Bid {
    amount: u64,
    seq: u64,
    placed_at: SimTime,
}

/// One bid, revealed when its auction resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedBid {
    pub bidder: ArtifactId,
    pub artifact: ArtifactId,
    pub amount: u64,
    /// Void: the bidder no longer owned the artifact, or it was deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub void: bool,
}

/// What one winner paid and got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winner {
    pub bidder: ArtifactId,
    pub artifact: ArtifactId,
    pub bid: u64,
    /// Paid (0 if scoring failed: the bid was refunded).
    pub price: u64,
    pub score: Option<u64>,
    /// Same content as an artifact scored before: score 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    pub minted: u64,
    /// UBI each other principal received from this price.
    pub ubi_per_head: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring_error: Option<String>,
}

/// The outcome of one auction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub at: f64,
    pub bids: u64,
    pub winners: Vec<Winner>,
}

impl Mint {
    /// When the next auction resolves.
    pub fn next_at(&self, config: &MintConfig) -> SimTime {
        self.next_at.unwrap_or(config.first_at)
    }

    /// Sealed bids waiting for the next resolution.
    pub fn open_bids(&self) -> usize {
        self.bids.len()
    }

    /// Auctions resolved so far.
    pub fn resolutions(&self) -> u64 {
        self.resolutions
    }

    pub fn recent(&self) -> impl Iterator<Item = &Resolution> {
        self.recent.iter()
    }

    /// Every open bid (bidder, artifact, amount), in the order placed.
    pub(crate) fn bids_in_order(&self) -> impl Iterator<Item = (&ArtifactId, &ArtifactId, u64)> {
        let mut bids: Vec<(&(ArtifactId, ArtifactId), &Bid)> = self.bids.iter().collect();
        bids.sort_by_key(|(_, bid)| bid.seq);
        bids.into_iter().map(|((artifact, bidder), bid)| (bidder, artifact, bid.amount))
    }

    /// Fingerprints of what it has scored, in hex.
    pub(crate) fn scored_hex(&self) -> Vec<String> {
        self.scored.iter().map(|f| format!("{f:032x}")).collect()
    }

    /// A mint carried over from a saved world: its bids (bidder, artifact, amount,
    /// in the order placed, their scrip already held) and what it scored.
    pub(crate) fn carried(bids: Vec<(ArtifactId, ArtifactId, u64)>, scored: BTreeSet<u128>, now: SimTime) -> Self {
        let mut mint = Self { scored, ..Self::default() };
        for (bidder, artifact, amount) in bids {
            let seq = mint.next_seq;
            mint.next_seq += 1;
            mint.bids.insert((artifact, bidder), Bid { amount, seq, placed_at: now });
        }
        mint
    }

    /// Each open bid's bidder and amount.
    pub(crate) fn held_by(&self) -> BTreeMap<&ArtifactId, u64> {
        let mut out: BTreeMap<&ArtifactId, u64> = BTreeMap::new();
        for ((_, bidder), bid) in &self.bids {
            *out.entry(bidder).or_default() += bid.amount;
        }
        out
    }
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct BidArgs {
        artifact: String,
        amount: i64,
    }
    #[derive(Deserialize)]
    struct CancelArgs {
        artifact: String,
    }
    match method {
        "bid" => {
            let a: BidArgs = services::args(method, input)?;
            kernel.bid(&a.artifact, a.amount)
        }
        "cancel" => {
            let a: CancelArgs = services::args(method, input)?;
            kernel.cancel_bid(&a.artifact)
        }
        "status" => Ok(kernel.mint_status()),
        _ => Err(services::no_such_method(MINT_ID, method)),
    }
}

impl Kernel<'_> {
    /// Bids `amount` on `artifact`, which the caller must own; bidding again raises
    /// the bid (never lowers it: cancel and bid again for that). The amount — or for
    /// a raise, the difference — is held by the mint at once.
    pub fn bid(&mut self, artifact: &str, amount: i64) -> Result<Value, KernelError> {
        let amount = positive(amount, "amount")?;
        let (_, artifact_id) = self.own_artifact(artifact, "bid on")?;
        let key = (artifact_id.clone(), self.caller.clone());
        let previous = self.world.resource::<Mint>().bids.get(&key).copied();
        let extra = match previous {
            Some(old) if amount <= old.amount => {
                return Err(KernelError::invalid(format!(
                    "the bid on {artifact} is {}; a bid can only be raised (cancel it to bid less)",
                    old.amount
                ))
                .with("current", old.amount));
            }
            Some(old) => amount - old.amount,
            None => amount,
        };
        let held = self.world.get::<Standing>(self.caller_entity).map(Standing::scrip);
        match held {
            Some(held) if held >= extra => {}
            held => {
                return Err(KernelError::new(
                    ErrorCode::InsufficientFunds,
                    format!("bidding {amount} needs {extra} more scrip; {} holds {}", self.caller, held.unwrap_or(0)),
                )
                .with("needed", extra)
                .with("available", held.unwrap_or(0)));
            }
        }
        self.hold_scrip(self.caller_entity, Holder::Mint, extra)?;
        let now = self.now;
        let seq = self.world.resource::<Mint>().next_seq;
        self.set_bid(&key, Some(Bid { amount, seq, placed_at: now }));
        let config = self.world.resource::<Config>().mint;
        let resolves_at = self.world.resource::<Mint>().next_at(&config);
        self.emit(EventKind::MintBid { artifact: artifact_id.clone(), raised: previous.is_some() });
        Ok(json!({ "artifact": artifact_id, "amount": amount, "resolves_at": resolves_at.as_secs_f64() }))
    }

    /// Withdraws the caller's bid on `artifact` and returns its amount.
    pub fn cancel_bid(&mut self, artifact: &str) -> Result<Value, KernelError> {
        let artifact_id = ids::lookup(self.world, artifact)
            .and_then(|e| self.world.get::<ArtifactId>(e).cloned())
            .ok_or_else(|| KernelError::not_found(artifact))?;
        let key = (artifact_id.clone(), self.caller.clone());
        let Some(bid) = self.world.resource::<Mint>().bids.get(&key).copied() else {
            return Err(KernelError::new(ErrorCode::NotFound, format!("{} has no bid on {artifact}", self.caller))
                .with("id", artifact));
        };
        if self.standing(self.caller_entity)?.scrip().checked_add(bid.amount).is_none() {
            return Err(KernelError::invalid("refunding the bid would overflow"));
        }
        self.set_bid(&key, None);
        self.release_scrip(Holder::Mint, self.caller_entity, bid.amount);
        self.emit(EventKind::MintBidCancelled { artifact: artifact_id.clone(), refunded: bid.amount });
        Ok(json!({ "artifact": artifact_id, "refunded": bid.amount }))
    }

    /// Puts (or with `None` withdraws) the bid of `key`, journaling the one it replaces
    /// and the tie order. A new bid takes the next place in the tie order.
    fn set_bid(&mut self, key: &(ArtifactId, ArtifactId), bid: Option<Bid>) {
        let saved = key.clone();
        journal::save_with::<Mint, _>(
            self.world,
            |mint| (mint.bids.get(key).copied(), mint.next_seq),
            move |mint, (before, next_seq)| {
                match before {
                    Some(bid) => mint.bids.insert(saved, bid),
                    None => mint.bids.remove(&saved),
                };
                mint.next_seq = next_seq;
            },
        );
        let mut mint = self.world.resource_mut::<Mint>();
        match bid {
            Some(bid) => {
                mint.next_seq = mint.next_seq.max(bid.seq + 1);
                mint.bids.insert(key.clone(), bid);
            }
            None => {
                mint.bids.remove(key);
            }
        }
    }

    /// What anyone may know of the mint: when it resolves, how many sealed bids wait
    /// (not their amounts), recent results — and the caller's own bids.
    pub fn mint_status(&self) -> Value {
        let config = self.world.resource::<Config>().mint;
        let mint = self.world.resource::<Mint>();
        let own: Vec<Value> = mint
            .bids
            .iter()
            .filter(|((_, bidder), _)| *bidder == self.caller)
            .map(|((artifact, _), bid)| json!({ "artifact": artifact, "amount": bid.amount }))
            .collect();
        json!({
            "next_resolution_at": mint.next_at(&config).as_secs_f64(),
            "period_secs": config.period.as_secs_f64(),
            "slots": config.slots,
            "mint_ratio": config.mint_ratio,
            "sealed_bids": mint.bids.len(),
            "your_bids": own,
            "resolutions": mint.resolutions,
            "minted_total": self.world.resource::<Supply>().minted(),
            "recent": mint.recent.iter().rev().take(5).collect::<Vec<_>>(),
        })
    }
}

/// A winner's score: from the scene's LLM scorer if it has one (a duplicate is not
/// worth a call: it scores 0 anyway), else from the [`MintScorer`].
fn score_winner(world: &mut World, artifact: Entity) -> Result<u64, String> {
    match world.resource::<Config>().llm.scorer_model.clone() {
        Some(model) if !world.resource::<Mint>().scored.contains(&scorer::fingerprint(world, artifact)) => {
            scorer::llm_score(world, artifact, &model)
        }
        Some(_) => Ok(0),
        None => world.resource::<MintScorer>().score(world, artifact),
    }
}

/// Settle phase: resolves the auction when its time has come.
pub(crate) fn resolve_due_auction(world: &mut World) {
    let config = world.resource::<Config>().mint;
    let now = world.resource::<SimClock>().now();
    let due = world.resource::<Mint>().next_at(&config);
    if now < due {
        return;
    }
    // The next resolution is the first scheduled time after now (a long step may
    // pass over several; they resolve as one).
    let periods = (now.millis() - due.millis()) / config.period.millis() + 1;
    let next = SimTime::from_millis(due.millis() + periods * config.period.millis());
    world.resource_mut::<Mint>().next_at = Some(next);
    resolve(world, &config, next);
}

/// Resolves the auction over every open bid.
pub fn resolve(world: &mut World, config: &MintConfig, next: SimTime) {
    let now = world.resource::<SimClock>().now();
    let bids = std::mem::take(&mut world.resource_mut::<Mint>().bids);
    let count = bids.len() as u64;
    // Who still owns what they bid on.
    let mut valid = Vec::with_capacity(bids.len());
    let mut revealed = Vec::with_capacity(bids.len());
    let mut refunds: Vec<(Entity, u64)> = Vec::new();
    for ((artifact, bidder), bid) in bids {
        let bidder_entity = ids::lookup(world, bidder.as_str()).filter(|&e| world.get::<Standing>(e).is_some());
        let artifact_entity = ids::lookup(world, artifact.as_str()).filter(|&e| world.get::<Tombstone>(e).is_none());
        let owns = artifact_entity.and_then(|e| world.get::<Artifact>(e)).is_some_and(|a| a.owner == bidder);
        let void = !owns;
        revealed.push(RevealedBid { bidder: bidder.clone(), artifact: artifact.clone(), amount: bid.amount, void });
        match (bidder_entity, artifact_entity) {
            (Some(b), Some(a)) if owns => valid.push((bid, bidder, b, artifact, a)),
            (Some(b), _) => refunds.push((b, bid.amount)),
            // A bidder that is gone cannot be refunded; principals are never
            // despawned, so this does not happen.
            (None, _) => {}
        }
    }
    // Sequence numbers are unique: the order is total.
    valid.sort_unstable_by(|a, b| b.0.amount.cmp(&a.0.amount).then(a.0.seq.cmp(&b.0.seq)));
    let slots = config.slots as usize;
    let price = valid.get(slots).map_or(1, |next| next.0.amount);
    let losers = valid.split_off(slots.min(valid.len()));
    refunds.extend(losers.iter().map(|(bid, _, entity, _, _)| (*entity, bid.amount)));
    for (entity, amount) in refunds {
        ledger::release_scrip(world, Holder::Mint, entity, amount);
    }

    let mut winners = Vec::with_capacity(valid.len());
    let mut payouts = Vec::new();
    for (bid, bidder, bidder_entity, artifact, artifact_entity) in valid {
        let scored = score_winner(world, artifact_entity);
        let mut winner = Winner {
            bidder: bidder.clone(),
            artifact,
            bid: bid.amount,
            price: 0,
            score: None,
            duplicate: false,
            minted: 0,
            ubi_per_head: 0,
            scoring_error: None,
        };
        match scored {
            Err(error) => {
                ledger::release_scrip(world, Holder::Mint, bidder_entity, bid.amount);
                winner.scoring_error = Some(error);
            }
            Ok(score) => {
                let fingerprint = scorer::fingerprint(world, artifact_entity);
                let fresh = world.resource_mut::<Mint>().scored.insert(fingerprint);
                let score = if fresh { score } else { 0 };
                ledger::release_scrip(world, Holder::Mint, bidder_entity, bid.amount - price);
                let minted = score / config.mint_ratio;
                ledger::mint_scrip(world, bidder_entity, minted);
                winner.price = price;
                winner.score = Some(score);
                winner.duplicate = !fresh;
                winner.minted = minted;
                payouts.push((winners.len(), bidder_entity, bidder));
            }
        }
        winners.push(winner);
    }
    let mut ubi_events = Vec::with_capacity(payouts.len());
    for (index, winner_entity, winner_id) in payouts {
        let price = winners[index].price;
        let shared = share_out(world, winner_entity, price);
        winners[index].ubi_per_head = shared.per_head;
        if shared.recipients == 0 {
            // Nobody else to share with: the price goes back.
            ledger::release_scrip(world, Holder::Mint, winner_entity, price);
            winners[index].price = 0;
            continue;
        }
        ubi_events.push(EventKind::UbiPaid {
            from: winner_id,
            amount: price,
            recipients: shared.recipients,
            per_head: shared.per_head,
            remainder_to: shared.remainder_to,
        });
    }
    let resolution = Resolution { at: now.as_secs_f64(), bids: count, winners };
    let Ok(mut kernel) = Kernel::as_system(world) else { return };
    kernel.emit(EventKind::MintResolved {
        bids: count,
        winners: resolution.winners.clone(),
        revealed,
        next_at: next.as_secs_f64(),
    });
    for event in ubi_events {
        kernel.emit(event);
    }
    kernel.thaw_all_rescued();
    let mut mint = world.resource_mut::<Mint>();
    mint.resolutions += 1;
    mint.recent.push_back(resolution);
    if mint.recent.len() > HISTORY {
        mint.recent.pop_front();
    }
}

struct Shared {
    recipients: u64,
    per_head: u64,
    remainder_to: Vec<ArtifactId>,
}

/// Shares `amount` over every principal except `winner` and the world's own: `amount
/// / n` each, and one more each to the first `amount % n` in id order.
///
/// The id order comes from the mint's [`UbiOrder`], so a resolution costs two passes
/// over the principals and no sorting unless principals were added.
fn share_out(world: &mut World, winner: Entity, amount: u64) -> Shared {
    let mut order = std::mem::take(&mut world.resource_mut::<Mint>().ubi_order);
    let mut everyone = world.query_filtered::<(Entity, &ArtifactId), (With<Standing>, Without<System>)>();
    order.update(world, &mut everyone);
    let winner_rank = order.rank_of(winner);
    let n = (order.sorted.len() - usize::from(winner_rank.is_some())) as u64;
    if n == 0 {
        world.resource_mut::<Mint>().ubi_order = order;
        return Shared { recipients: 0, per_head: 0, remainder_to: Vec::new() };
    }
    let (per_head, remainder) = (amount / n, (amount % n) as usize);
    // The first `remainder` other than the winner are those ranked below `cutoff`.
    let cutoff = match winner_rank {
        Some(rank) if rank < remainder => remainder + 1,
        _ => remainder,
    };
    let first = &order.sorted[..cutoff];
    if per_head > 0 {
        // The same principals as `everyone`.
        ledger::release_shares(world, Holder::Mint, winner, per_head, |entity| {
            order.rank_of(entity).is_some_and(|rank| rank < cutoff)
        });
    } else {
        for &(entity, _) in first {
            if entity != winner {
                ledger::release_scrip(world, Holder::Mint, entity, 1);
            }
        }
    }
    let mut remainder_to = Vec::with_capacity(remainder);
    remainder_to.extend(first.iter().filter(|(entity, _)| *entity != winner).map(|(_, id)| id.clone()));
    world.resource_mut::<Mint>().ubi_order = order;
    Shared { recipients: n, per_head, remainder_to }
}

/// The principals that share UBI (every principal but the world's own), in id order,
/// kept from one resolution to the next: sorting them was most of the cost of a
/// resolution, and the set seldom changes. It is checked against the world before
/// every use and brought up to date, so it is never stale; it is not part of the
/// world's state (not saved, not in the checksum).
#[derive(Clone, Default)]
struct UbiOrder {
    /// In id order.
    sorted: Vec<(Entity, ArtifactId)>,
    /// Position in `sorted`, by entity index (`u32::MAX`: none).
    rank: Vec<u32>,
}

impl std::fmt::Debug for UbiOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UbiOrder").field("principals", &self.sorted.len()).finish_non_exhaustive()
    }
}

type Principals = QueryState<(Entity, &'static ArtifactId), (With<Standing>, Without<System>)>;

impl UbiOrder {
    /// Where `entity` is in `sorted`.
    fn rank_of(&self, entity: Entity) -> Option<usize> {
        let rank = *self.rank.get(entity.index_u32() as usize)? as usize;
        self.sorted.get(rank).is_some_and(|(e, _)| *e == entity).then_some(rank)
    }

    /// Makes `sorted` hold exactly the principals `principals` finds now: unchanged if
    /// they are the same, merged if some were added, rebuilt otherwise.
    fn update(&mut self, world: &World, principals: &mut Principals) {
        let mut kept = 0;
        let mut added: Vec<(Entity, ArtifactId)> = Vec::new();
        for (entity, id) in principals.iter(world) {
            match self.rank_of(entity) {
                Some(rank) if self.sorted[rank].1 == *id => kept += 1,
                _ => added.push((entity, id.clone())),
            }
        }
        if kept == self.sorted.len() && added.is_empty() {
            return;
        }
        if kept == self.sorted.len() {
            added.sort_unstable_by(|a, b| a.1.cmp(&b.1));
            let old = std::mem::take(&mut self.sorted);
            self.sorted.reserve(old.len() + added.len());
            let (mut old, mut added) = (old.into_iter().peekable(), added.into_iter().peekable());
            loop {
                let next = match (old.peek(), added.peek()) {
                    (Some(a), Some(b)) if a.1 < b.1 => old.next(),
                    (Some(_), Some(_)) => added.next(),
                    (Some(_), None) => old.next(),
                    (None, _) => added.next(),
                };
                let Some(next) = next else { break };
                self.sorted.push(next);
            }
        } else {
            self.sorted = principals.iter(world).map(|(e, id)| (e, id.clone())).collect();
            self.sorted.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        }
        self.rank.clear();
        for (rank, (entity, _)) in self.sorted.iter().enumerate() {
            let index = entity.index_u32() as usize;
            if self.rank.len() <= index {
                self.rank.resize(index + 1, u32::MAX);
            }
            self.rank[index] = rank as u32;
        }
    }
}

impl Kernel<'_> {
    /// Thaws every principal frozen for running dry that no longer does (after the
    /// mint paid out).
    fn thaw_all_rescued(&mut self) {
        let mut frozen = self.world.query_filtered::<(Entity, &ArtifactId), With<Frozen>>();
        let mut candidates: Vec<(ArtifactId, Entity)> =
            frozen.iter(self.world).map(|(e, id)| (id.clone(), e)).collect();
        candidates.sort();
        for (id, entity) in candidates {
            self.thaw_if_rescued(entity, &id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Held, activity::Activity};

    fn principal(world: &mut World, id: &str, scrip: u64) -> Entity {
        world.spawn((ArtifactId::parse(id).unwrap(), Standing::new(scrip, 0, 0))).id()
    }

    /// The rule of [`share_out`], computed plainly: (balance changes, `remainder_to`).
    fn expected(world: &mut World, winner: Entity, amount: u64) -> (Vec<(Entity, u64)>, Vec<ArtifactId>) {
        let mut everyone = world.query_filtered::<(Entity, &ArtifactId), (With<Standing>, Without<System>)>();
        let mut others: Vec<(ArtifactId, Entity)> =
            everyone.iter(world).filter(|(e, _)| *e != winner).map(|(e, id)| (id.clone(), e)).collect();
        others.sort();
        let n = others.len() as u64;
        let (per_head, remainder) = (amount / n, (amount % n) as usize);
        let paid = others.iter().enumerate().map(|(i, (_, e))| (*e, per_head + u64::from(i < remainder))).collect();
        (paid, others[..remainder].iter().map(|(id, _)| id.clone()).collect())
    }

    fn check(world: &mut World, winner: Entity, amount: u64) {
        let (paid, remainder_to) = expected(world, winner, amount);
        let before: Vec<u64> = paid.iter().map(|(e, _)| world.get::<Standing>(*e).unwrap().scrip()).collect();
        let winner_before = world.get::<Standing>(winner).map(|s| s.scrip());
        let shared = share_out(world, winner, amount);
        assert_eq!(shared.recipients, paid.len() as u64);
        assert_eq!(shared.remainder_to, remainder_to, "sharing {amount}");
        for ((entity, got), was) in paid.iter().zip(before) {
            assert_eq!(world.get::<Standing>(*entity).unwrap().scrip(), was + got, "sharing {amount}");
        }
        assert_eq!(world.get::<Standing>(winner).map(|s| s.scrip()), winner_before);
        let order = &world.resource::<Mint>().ubi_order;
        assert!(order.sorted.is_sorted_by(|a, b| a.1 < b.1));
        for (rank, (entity, _)) in order.sorted.iter().enumerate() {
            assert_eq!(order.rank_of(*entity), Some(rank));
        }
    }

    #[test]
    fn ubi_goes_by_id_order_as_principals_come_and_go() {
        let mut world = World::new();
        world.init_resource::<Mint>();
        world.init_resource::<Activity>();
        world.insert_resource(Held::holding(Holder::Mint, 1_000_000));
        // Ids whose creation order is not their id order.
        let mut entities: Vec<Entity> =
            (0..40).map(|i| principal(&mut world, &format!("p{}", (i * 17) % 40), 10)).collect();
        world.spawn((ArtifactId::parse("kernel").unwrap(), Standing::default(), System));
        let plain = world.spawn(ArtifactId::parse("a_document").unwrap()).id();
        for amount in [0, 1, 7, 38, 39, 40, 41, 100, 117] {
            check(&mut world, entities[3], amount);
            check(&mut world, entities[amount as usize % 40], amount);
        }
        // Added: merged into the order.
        entities.extend((0..5).map(|i| principal(&mut world, &format!("p{}x", i * 7), 0)));
        entities.push(principal(&mut world, "a", 0));
        check(&mut world, entities[0], 45);
        check(&mut world, entities[40], 91);
        // One gone and one new: rebuilt.
        world.entity_mut(entities[5]).remove::<Standing>();
        world.despawn(entities[6]);
        principal(&mut world, "q", 0);
        check(&mut world, entities[0], 44);
        assert_eq!(world.resource::<Mint>().ubi_order.rank_of(entities[6]), None);
        assert_eq!(world.resource::<Mint>().ubi_order.rank_of(plain), None);
        // A lone principal has nobody to share with.
        let mut alone = World::new();
        alone.init_resource::<Mint>();
        alone.init_resource::<Activity>();
        alone.insert_resource(Held::holding(Holder::Mint, 1_000_000));
        let only = principal(&mut alone, "solo", 5);
        assert_eq!(share_out(&mut alone, only, 10).recipients, 0);
        assert_eq!(alone.get::<Standing>(only).unwrap().scrip(), 5);
    }
}
