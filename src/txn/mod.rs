//! Exactly-once: producer id allocation, per-partition producer state
//! (idempotence and open transactions) and the transaction coordinator.

pub mod coordinator;
pub mod producer_ids;
pub mod producer_state;

pub use coordinator::{Participants, TxnConfig, TxnCoordinator};
pub use producer_ids::ProducerIdAllocator;
pub use producer_state::{ProducerStateTable, SequenceCheck};
