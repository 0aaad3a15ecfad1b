//! Escrow: trustless sale of artifacts.
//!
//! A seller deposits an artifact it owns with an asking price (optionally for one
//! buyer only); ownership — and the disk the artifact occupies — passes to
//! `kernel_escrow`. While listed, nobody can write, edit or delete it (whatever its
//! contract says), so what a buyer inspects is what it gets. A buyer names the price
//! it accepts; if that is the asking price, the price moves to the seller and
//! ownership to the buyer in one step, or nothing happens. The seller may cancel and
//! take the artifact back. Listings are public.
//!
//! A listed artifact keeps earning for its seller: prices paid to invoke or read it,
//! and the resources of `owner_pays` calls, go to and come from the seller.

use std::collections::BTreeMap;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::services::{self, ESCROW_ID};
use crate::kernel::Standing;
use crate::{
    kernel::{ErrorCode, EventKind, Kernel, KernelError, journal, state},
    world::{
        ids::{self, ArtifactId},
        time::SimTime,
    },
};

/// What is for sale, by artifact.
#[derive(Resource, Debug, Clone, Default, Serialize, Deserialize)]
pub struct Escrow {
    listings: BTreeMap<ArtifactId, Listing>,
}

/// One artifact for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub seller: ArtifactId,
    pub price: u64,
    /// The only principal that may buy, if the seller named one.
    pub buyer: Option<ArtifactId>,
    pub listed_at: SimTime,
}

impl Escrow {
    pub fn listing(&self, artifact: &str) -> Option<&Listing> {
        self.listings.get(artifact)
    }

    pub fn listings(&self) -> impl Iterator<Item = (&ArtifactId, &Listing)> {
        self.listings.iter()
    }
}

/// Who an artifact's earnings belong to: its owner, or its seller while it is listed.
pub(crate) fn beneficiary(world: &World, artifact: &ArtifactId, owner: &ArtifactId) -> ArtifactId {
    if owner.as_str() == ESCROW_ID
        && let Some(listing) = world.resource::<Escrow>().listings.get(artifact)
    {
        return listing.seller.clone();
    }
    owner.clone()
}

pub(crate) fn serve(kernel: &mut Kernel, method: &str, input: &Value) -> Result<Value, KernelError> {
    #[derive(Deserialize)]
    struct Deposit {
        artifact: String,
        price: u64,
        buyer: Option<String>,
    }
    #[derive(Deserialize)]
    struct Buy {
        artifact: String,
        price: u64,
    }
    #[derive(Deserialize)]
    struct Cancel {
        artifact: String,
    }
    #[derive(Deserialize)]
    struct Listings {
        seller: Option<String>,
        cursor: Option<u64>,
        limit: Option<u64>,
    }
    match method {
        "deposit" => {
            let a: Deposit = services::args(method, input)?;
            kernel.escrow_deposit(&a.artifact, a.price, a.buyer.as_deref())
        }
        "buy" => {
            let a: Buy = services::args(method, input)?;
            kernel.escrow_buy(&a.artifact, a.price)
        }
        "cancel" => {
            let a: Cancel = services::args(method, input)?;
            kernel.escrow_cancel(&a.artifact)
        }
        "listings" => {
            let a: Listings = services::args(method, input)?;
            Ok(listings_json(kernel.world(), a.seller.as_deref(), a.cursor.unwrap_or(0), a.limit.unwrap_or(50)))
        }
        _ => Err(services::no_such_method(ESCROW_ID, method)),
    }
}

fn listings_json(world: &World, seller: Option<&str>, cursor: u64, limit: u64) -> Value {
    let escrow = world.resource::<Escrow>();
    let mut items = Vec::new();
    let mut next_cursor = None;
    let matching = escrow.listings.iter().filter(|(_, l)| seller.is_none_or(|s| l.seller == s));
    for (position, (artifact, listing)) in matching.enumerate().skip(cursor as usize) {
        if items.len() as u64 == limit {
            next_cursor = Some(position as u64);
            break;
        }
        let entity = ids::lookup(world, artifact.as_str());
        let about = entity.map(|e| crate::kernel::query::metadata(world, e)).unwrap_or(Value::Null);
        items.push(json!({
            "artifact": artifact,
            "seller": listing.seller,
            "price": listing.price,
            "buyer": listing.buyer,
            "listed_at": listing.listed_at.as_secs_f64(),
            "kind": about.get("kind"),
            "description": about.get("description"),
            "bytes": entity.map(|e| state::artifact_bytes(world, e)),
            "code_hash": about.get("code_hash"),
            "invocations": about.get("invocations"),
        }));
    }
    json!({ "items": items, "next_cursor": next_cursor })
}

impl Kernel<'_> {
    fn escrow_entity(&self) -> Result<Entity, KernelError> {
        ids::lookup(self.world, ESCROW_ID).ok_or_else(|| KernelError::not_found(ESCROW_ID))
    }

    /// Puts (or with `None` takes down) the listing of `artifact`, journaling the one
    /// it replaces.
    fn set_listing(&mut self, artifact: &ArtifactId, listing: Option<Listing>) {
        let key = artifact.clone();
        journal::save_with::<Escrow, _>(
            self.world,
            |escrow| escrow.listings.get(artifact).cloned(),
            move |escrow, before| match before {
                Some(listing) => {
                    escrow.listings.insert(key, listing);
                }
                None => {
                    escrow.listings.remove(&key);
                }
            },
        );
        let mut escrow = self.world.resource_mut::<Escrow>();
        match listing {
            Some(listing) => escrow.listings.insert(artifact.clone(), listing),
            None => escrow.listings.remove(artifact),
        };
    }

    /// Lists `artifact` at `price`; ownership passes to escrow.
    pub fn escrow_deposit(&mut self, artifact: &str, price: u64, buyer: Option<&str>) -> Result<Value, KernelError> {
        let (entity, artifact_id) = self.own_artifact(artifact, "listed")?;
        if entity == self.caller_entity {
            return Err(KernelError::invalid(format!("{artifact} cannot sell itself")));
        }
        let buyer = match buyer {
            Some(buyer) => {
                let (buyer_id, _) = self.principal_with_id(buyer)?;
                if buyer_id == self.caller {
                    return Err(KernelError::invalid("a seller cannot be its own buyer"));
                }
                Some(buyer_id)
            }
            None => None,
        };
        self.require_standing_for("list an artifact")?;
        let escrow = self.escrow_entity()?;
        let escrow_id = ArtifactId::trusted(ESCROW_ID);
        self.move_ownership(entity, self.caller_entity, escrow, &escrow_id)?;
        let listing = Listing { seller: self.caller.clone(), price, buyer: buyer.clone(), listed_at: self.now };
        self.set_listing(&artifact_id, Some(listing));
        self.emit(EventKind::EscrowListed { artifact: artifact_id.clone(), price, buyer: buyer.clone() });
        Ok(json!({ "artifact": artifact_id, "price": price, "buyer": buyer }))
    }

    /// Buys a listed artifact at `price`, which must be the asking price.
    pub fn escrow_buy(&mut self, artifact: &str, price: u64) -> Result<Value, KernelError> {
        let Some(listing) = self.world.resource::<Escrow>().listings.get(artifact).cloned() else {
            return Err(
                KernelError::new(ErrorCode::NotFound, format!("{artifact} is not for sale")).with("id", artifact)
            );
        };
        if price != listing.price {
            return Err(KernelError::invalid(format!(
                "{artifact} is listed at {}; the purchase names {price}",
                listing.price
            ))
            .with("price", listing.price));
        }
        if listing.seller == self.caller {
            return Err(KernelError::invalid(format!("{} is the seller; cancel the listing instead", self.caller)));
        }
        if let Some(buyer) = &listing.buyer
            && *buyer != self.caller
        {
            return Err(KernelError::new(ErrorCode::AccessDenied, format!("{artifact} is for sale to {buyer} only"))
                .with("id", artifact));
        }
        self.require_standing_for("buy")?;
        let entity = self.live(artifact)?;
        let artifact_id =
            self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(artifact))?;
        let (_, seller) = self.principal_with_id(listing.seller.as_str())?;
        // Everything that could refuse is checked before anything moves.
        let held = self.standing(self.caller_entity)?.scrip();
        if held < price {
            return Err(KernelError::new(
                ErrorCode::InsufficientFunds,
                format!("{artifact} costs {price} scrip; {} holds {held}", self.caller),
            )
            .with("needed", price)
            .with("available", held));
        }
        if self.standing(seller)?.scrip().checked_add(price).is_none() {
            return Err(KernelError::invalid(format!("paying {} would overflow", listing.seller)));
        }
        let escrow = self.escrow_entity()?;
        let buyer_id = self.caller.clone();
        self.move_ownership(entity, escrow, self.caller_entity, &buyer_id)?;
        self.set_listing(&artifact_id, None);
        let sold = EventKind::EscrowSold { artifact: artifact_id.clone(), seller: listing.seller.clone(), price };
        self.move_scrip(self.caller_entity, seller, price, Some(sold))?;
        Ok(json!({ "artifact": artifact_id, "seller": listing.seller, "price": price }))
    }

    /// The seller takes its listing back.
    pub fn escrow_cancel(&mut self, artifact: &str) -> Result<Value, KernelError> {
        let Some(listing) = self.world.resource::<Escrow>().listings.get(artifact).cloned() else {
            return Err(
                KernelError::new(ErrorCode::NotFound, format!("{artifact} is not for sale")).with("id", artifact)
            );
        };
        if listing.seller != self.caller {
            return Err(KernelError::new(
                ErrorCode::NotOwner,
                format!("only the seller, {}, may cancel the listing of {artifact}", listing.seller),
            )
            .with("id", artifact));
        }
        let entity = self.live(artifact)?;
        let artifact_id =
            self.world.get::<ArtifactId>(entity).cloned().ok_or_else(|| KernelError::not_found(artifact))?;
        let escrow = self.escrow_entity()?;
        let seller = self.caller.clone();
        self.move_ownership(entity, escrow, self.caller_entity, &seller)?;
        self.set_listing(&artifact_id, None);
        self.emit(EventKind::EscrowCancelled { artifact: artifact_id.clone() });
        Ok(json!({ "artifact": artifact_id }))
    }

    /// Code without standing (a tool invoked by others) holds nothing to sell or pay.
    fn require_standing_for(&self, what: &str) -> Result<(), KernelError> {
        if self.world.get::<Standing>(self.caller_entity).is_none() {
            return Err(
                KernelError::not_a_principal(self.caller.as_str()).with("hint", format!("only principals can {what}"))
            );
        }
        Ok(())
    }
}
