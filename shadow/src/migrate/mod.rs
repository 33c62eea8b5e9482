//! Online schema changes, shadow-table strategy: the parts that move and check data.
//!
//! The recipe (see shadow/docs/online-migrations.md) is: create the
//! shadow table ([`expand`], through a [`guard`]ed control connection), enable dual-writes at the
//! proxy, wait until every transaction older than that has ended ([`old_transactions`]), copy the
//! existing rows in keyset chunks ([`copier`]), sweep tombstones ([`sweep`]), compare both shapes
//! from one snapshot ([`verify`]) and repair what differs ([`repair`]). Everything a restarted proxy
//! needs to resume is kept in the backend database by the [`state`] store, written in the same
//! transaction as the step it records.
//!
//! Why this is race-free with the application's dual-writes: the copier only ever inserts with
//! `ON CONFLICT DO NOTHING`, so it loses to any dual-write (which always upserts, and records a
//! delete as a tombstone that occupies the key); a dual-write that meets a copied row overwrites it
//! because `ON CONFLICT` arbitration sees the latest committed row even when the statement snapshot
//! does not. A stale copied row can only land on a key no dual-write has touched since the copier
//! may start, and such a key's source row has not changed since then either.

pub mod backfill;
pub mod copier;
pub mod error;
pub mod expand;
pub mod guard;
pub mod key;
pub mod keyset;
pub mod latency;
pub mod old_transactions;
pub mod phase;
pub mod progress;
pub mod repair;
pub mod state;
pub mod sweep;
pub mod target;
pub mod throttle;
pub mod verify;

pub use error::{DbErrorText, MigrateError};
pub use key::KeyValue;
pub use phase::Phase;
pub use target::{ColumnMapping, CopyTarget};
