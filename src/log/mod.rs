//! The storage engine, in Kafka's vocabulary.
//!
//! ```text
//! LogManager            every topic, its metadata file and partition logs
//!   Topic               id, configs, partitions
//!     Partition         one Log behind a mutex + an append notification
//!       Log             segments by base offset, log start/end offset, high watermark
//!         Segment       <base>.log + <base>.index + <base>.timeindex
//!   internal            the coordinators' key/value logs (groups, transactions)
//! ```
//!
//! See `docs/storage-format.md` for the on-disk layout.

pub mod batch;
pub mod cleaner;
pub mod compression;
pub mod disk;
pub mod index;
pub mod internal;
pub mod manager;
pub mod partition;
pub mod records;
pub mod segment;
pub mod topic_config;

pub use manager::LogManager;
pub use partition::Partition;

use kafka_protocol::error::ResponseError;

/// Errors of the storage layer. Each maps to exactly one Kafka error code in
/// [`LogError::code`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    #[error("compacted topic cannot accept records without a key")]
    KeylessRecords {
        /// Indexes of the key-less records within the batch (KIP-467).
        indexes: Vec<i32>,
    },
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("offset {offset} outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("out of order sequence number from producer {producer_id}")]
    OutOfOrderSequence { producer_id: i64 },
    #[error("producer {producer_id} epoch {epoch} is older than the current one")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16 },
    #[error("producer {producer_id}: batch outside a transaction registered for this partition, or a non-transactional batch inside one")]
    InvalidTxnState { producer_id: i64 },
    #[error("partition is offline after an I/O failure")]
    Offline,
    #[error("out of space: {0}")]
    DiskFull(std::io::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl LogError {
    pub fn code(&self) -> i16 {
        match self {
            LogError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            LogError::InvalidRecord(_) | LogError::KeylessRecords { .. } => {
                ResponseError::InvalidRecord.code()
            }
            LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
            LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            LogError::InvalidTxnState { .. } => ResponseError::InvalidTxnState.code(),
            LogError::Offline => ResponseError::KafkaStorageError.code(),
            // Retriable: clients retry until space is freed.
            LogError::DiskFull(_) => ResponseError::KafkaStorageError.code(),
            LogError::Io(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
