//! Producer state: producer id allocation and, per partition, the sequence
//! bookkeeping that makes idempotent produce exactly-once per partition.
//! (Transactions will live here too.)

pub mod producer_ids;
pub mod producer_state;

pub use producer_ids::ProducerIdAllocator;
pub use producer_state::{ProducerStateTable, SequenceCheck};
