//! [`LogManager`]: every topic of the broker, their persisted metadata and
//! partition logs, start-up recovery and clean shutdown.
//!
//! On disk (see `docs/storage-format.md`):
//!
//! ```text
//! <data-dir>/.lock                     flock: one broker per directory
//! <data-dir>/.clean-shutdown           present only after a clean shutdown
//! <data-dir>/meta/cluster.toml         cluster id
//! <data-dir>/meta/topics/<name>.toml   topic id, partition count, config overrides
//! <data-dir>/<topic>-<partition>/      segments of one partition
//! ```
//!
//! Metadata files are written to a temporary name, fsynced and renamed, so a
//! crash leaves the old or the new version, never a torn one.
//!
//! Locking: `topics` is a std `RwLock` held only to look up, insert or remove
//! map entries; partition work happens on the `Arc<Partition>` afterwards.
//! Topic-level changes (create, delete, partitions, configs) are serialised by
//! `admin`, so two concurrent CreateTopics for one name cannot both succeed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::log::partition::Partition;
use crate::log::topic_config::{validate_override, TopicConfig};

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
/// The group coordinator's internal log; a topic of this name is refused.
pub const INTERNAL_OFFSETS_LOG: &str = "__consumer_offsets";
pub const INTERNAL_TXN_LOG: &str = "__transaction_state";
pub const INTERNAL_SHARE_LOG: &str = "__share_group_state";
const DELETED_SUFFIX: &str = ".deleted";

/// Topic-level failures, each mapped to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("unknown topic '{0}'")]
    Unknown(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("replication factor must be 1 (or -1 for the default) on a single broker, got {0}")]
    InvalidReplicationFactor(i16),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic deletion is disabled (delete-topic-enable = false)")]
    DeletionDisabled,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException.code(),
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor.code()
            }
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            TopicError::DeletionDisabled => ResponseError::TopicDeletionDisabled.code(),
            TopicError::Io(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

/// Kafka's topic name rule: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() || name.len() > 249 {
        return Err(TopicError::InvalidName(format!(
            "'{name}' must be 1 to 249 characters"
        )));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidName(format!("'{name}' is not allowed")));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(TopicError::InvalidName(format!(
            "'{name}' contains characters other than [a-zA-Z0-9._-]"
        )));
    }
    Ok(())
}

/// The persisted form of a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: IndexMap<String, String>,
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    overrides: RwLock<IndexMap<String, String>>,
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// Record batch bytes appended and fetched, for `/metrics` (since the
    /// broker started).
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Topic {
    pub fn count_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn count_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| {
            self.partitions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(i)
                .cloned()
        })
    }
    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as i32
    }
    /// The topic's config overrides, as set by clients.
    pub fn overrides(&self) -> IndexMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id.to_string(),
            partitions: self.partition_count(),
            configs: self.overrides(),
        }
    }
}

pub struct LogManager {
    config: Arc<Config>,
    data_dir: PathBuf,
    topics: RwLock<IndexMap<String, Arc<Topic>>>,
    admin: Mutex<()>,
    /// Broker-internal logs (the group coordinator's), not topics.
    internal: Mutex<Vec<Arc<Partition>>>,
    clean_start: bool,
    cluster_id: String,
    /// Per compacted log, where the next cleaning pass starts.
    cleaner_checkpoint: Mutex<crate::log::cleaner::Checkpoint>,
    _lock: File,
}

impl LogManager {
    /// Opens (or initialises) the data directory, recovering every topic.
    pub fn open(config: Arc<Config>) -> io::Result<LogManager> {
        let data_dir = PathBuf::from(&config.data_dir);
        fs::create_dir_all(data_dir.join("meta").join("topics"))?;
        let lock = File::create(data_dir.join(".lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is in use by another broker",
                    data_dir.display()
                ),
            )
        })?;
        let clean = data_dir.join(CLEAN_SHUTDOWN).exists();
        // Removed now, so a crash from here on is seen as unclean next time.
        let _ = fs::remove_file(data_dir.join(CLEAN_SHUTDOWN));
        let cluster_id = Self::load_cluster_id(&data_dir)?;
        for entry in fs::read_dir(&data_dir)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(DELETED_SUFFIX)
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let mut topics = IndexMap::new();
        let mut metas: Vec<TopicMeta> = Vec::new();
        for entry in fs::read_dir(data_dir.join("meta").join("topics"))?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let text = fs::read_to_string(&path)?;
            let meta: TopicMeta = toml::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            metas.push(meta);
        }
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        for meta in metas {
            let id = Uuid::parse_str(&meta.id)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let tc = Arc::new(TopicConfig::resolve(&config, &meta.configs));
            let mut parts = Vec::new();
            for p in 0..meta.partitions {
                parts.push(Arc::new(Partition::open(
                    &data_dir,
                    &meta.name,
                    p,
                    tc.clone(),
                    !clean,
                )?));
            }
            let topic = Topic {
                name: meta.name.clone(),
                id,
                overrides: RwLock::new(meta.configs),
                partitions: RwLock::new(parts),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            };
            topics.insert(meta.name, Arc::new(topic));
        }
        tracing::info!(topics = topics.len(), clean_shutdown = clean, dir = %data_dir.display(), "log manager opened");
        Ok(LogManager {
            config,
            data_dir: data_dir.clone(),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            internal: Mutex::new(Vec::new()),
            clean_start: clean,
            cluster_id,
            cleaner_checkpoint: Mutex::new(crate::log::cleaner::Checkpoint::load(&data_dir)),
            _lock: lock,
        })
    }

    fn load_cluster_id(data_dir: &Path) -> io::Result<String> {
        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        struct ClusterMeta {
            cluster_id: String,
        }
        let path = data_dir.join("meta").join("cluster.toml");
        if let Ok(text) = fs::read_to_string(&path) {
            if let Ok(m) = toml::from_str::<ClusterMeta>(&text) {
                return Ok(m.cluster_id);
            }
        }
        // Kafka cluster ids are 22-character URL-safe base64 of a UUID.
        let id = base64_url(Uuid::new_v4().as_bytes());
        let text = toml::to_string(&ClusterMeta {
            cluster_id: id.clone(),
        })
        .expect("serializable");
        // A new data directory: its two fsyncs (file and directory) were
        // over half of a fresh start-up, so they run in the background and
        // readiness does not wait. Nothing depends on them: a power loss
        // within those milliseconds leaves no or an empty cluster.toml, and
        // the next start chooses a new id, as for an empty directory.
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text.as_bytes()).and_then(|()| fs::rename(&tmp, &path))?;
        let meta_dir = data_dir.join("meta");
        std::thread::spawn(move || {
            let synced = File::open(&path)
                .and_then(|f| f.sync_all())
                .and_then(|()| File::open(&meta_dir)?.sync_all());
            if let Err(e) = synced {
                tracing::warn!(error = %e, "cannot fsync the new cluster id");
            }
        });
        Ok(id)
    }

    /// Opens (or creates) a broker-internal log `<data-dir>/<name>-0`. It is
    /// not a topic: Metadata never lists it. It is recovered like any
    /// partition and closed at shutdown.
    pub fn open_internal(
        &self,
        name: &str,
        overrides: IndexMap<String, String>,
    ) -> io::Result<Arc<Partition>> {
        let tc = Arc::new(TopicConfig::resolve(&self.config, &overrides));
        let p = Arc::new(Partition::open(
            &self.data_dir,
            name,
            0,
            tc,
            !self.clean_start,
        )?);
        self.internal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.clone());
        Ok(p)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index))
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.data_dir
            .join("meta")
            .join("topics")
            .join(format!("{name}.toml"))
    }

    fn persist(&self, topic: &Topic) -> io::Result<()> {
        let text = toml::to_string(&topic.meta()).expect("TopicMeta serializes");
        write_atomic(&self.meta_path(&topic.name), text.as_bytes())
    }

    /// Checks a CreateTopics request without changing anything.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: &IndexMap<String, String>,
    ) -> Result<i32, TopicError> {
        validate_topic_name(name)?;
        if self.topic(name).is_some()
            || [INTERNAL_OFFSETS_LOG, INTERNAL_TXN_LOG, INTERNAL_SHARE_LOG].contains(&name)
        {
            return Err(TopicError::AlreadyExists(name.into()));
        }
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be larger than 0, got {partitions}"
            )));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} partitions is more than this broker allows (100000)"
            )));
        }
        if replication != 1 && replication != -1 {
            return Err(TopicError::InvalidReplicationFactor(replication));
        }
        for (k, v) in configs {
            validate_override(k, v).map_err(TopicError::InvalidConfig)?;
        }
        Ok(partitions)
    }

    /// Creates a topic synchronously: when this returns, it is listed and
    /// every partition accepts appends.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: IndexMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = self.validate_new_topic(name, partitions, replication, &configs)?;
        let tc = Arc::new(TopicConfig::resolve(&self.config, &configs));
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            parts.push(Arc::new(self.fresh_partition(name, p, tc.clone())?));
        }
        let topic = Arc::new(Topic {
            name: name.into(),
            id: Uuid::new_v4(),
            overrides: RwLock::new(configs),
            partitions: RwLock::new(parts),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        self.persist(&topic)?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// A brand-new partition directory; leftovers of a topic whose deletion
    /// was interrupted by a crash are removed first.
    fn fresh_partition(&self, name: &str, p: i32, tc: Arc<TopicConfig>) -> io::Result<Partition> {
        let dir = self.data_dir.join(Partition::dir_name(name, p));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        Partition::create(&self.data_dir, name, p, tc)
    }

    /// Deletes a topic synchronously: when this returns the name is free and
    /// a topic created under it starts empty. Files are removed in the
    /// background after their directories are renamed away.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        if !self.config.delete_topic_enable {
            return Err(TopicError::DeletionDisabled);
        }
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.into()))?;
        let mut doomed = Vec::new();
        for p in topic.partitions() {
            let dir = self.data_dir.join(Partition::dir_name(name, p.index));
            let to = self.data_dir.join(format!(
                "{}.{}{DELETED_SUFFIX}",
                Partition::dir_name(name, p.index),
                Uuid::new_v4().simple()
            ));
            fs::rename(&dir, &to)?;
            doomed.push(to);
        }
        fs::remove_file(self.meta_path(name))?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .shift_remove(name);
        std::thread::spawn(move || {
            for d in doomed {
                let _ = fs::remove_dir_all(d);
            }
        });
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// CreatePartitions: grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.into()))?;
        let current = topic.partition_count();
        if total <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {total} would not be an increase"
            )));
        }
        if total > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{total} partitions is more than this broker allows (100000)"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let tc = topic
            .partitions()
            .first()
            .map(|p| p.config())
            .unwrap_or_else(|| Arc::new(TopicConfig::resolve(&self.config, &topic.overrides())));
        let mut added = Vec::new();
        for p in current..total {
            added.push(Arc::new(self.fresh_partition(name, p, tc.clone())?));
        }
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        self.persist(&topic)?;
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs semantics: keys
    /// absent from `overrides` return to their defaults). Validates first.
    pub fn set_topic_configs(
        &self,
        name: &str,
        overrides: IndexMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.into()))?;
        for (k, v) in &overrides {
            validate_override(k, v).map_err(TopicError::InvalidConfig)?;
        }
        if validate_only {
            return Ok(());
        }
        let tc = Arc::new(TopicConfig::resolve(&self.config, &overrides));
        *topic.overrides.write().unwrap_or_else(|e| e.into_inner()) = overrides;
        for p in topic.partitions() {
            p.set_config(tc.clone());
        }
        self.persist(&topic)?;
        Ok(())
    }

    /// Retention, producer expiry and time-based flushes for every partition.
    pub async fn run_maintenance(&self, now_ms: i64, retention: bool) {
        for topic in self.topics() {
            for p in topic.partitions() {
                if retention {
                    p.expire_producers(now_ms, self.config.producer_id_expiration_ms);
                    match p.enforce_retention(now_ms) {
                        Ok(n) if n > 0 => {
                            tracing::info!(partition = %format!("{}-{}", p.topic, p.index), segments = n, "retention deleted segments")
                        }
                        Err(e) => {
                            tracing::error!(partition = %format!("{}-{}", p.topic, p.index), error = %e, "retention failed")
                        }
                        _ => {}
                    }
                }
                if let Err(e) = p.maybe_flush_by_time(now_ms).await {
                    tracing::error!(partition = %format!("{}-{}", p.topic, p.index), error = %e, "periodic flush failed");
                }
            }
        }
    }

    /// One round of the log cleaner: every compacted log that needs it gets
    /// a pass, on up to `log-cleaner-threads` threads (blocking I/O: call
    /// it from a blocking thread). Returns the passes done.
    pub fn clean_once(&self, now_ms: i64) -> usize {
        use crate::log::cleaner;
        let cfg = cleaner::CleanerConfig {
            dedupe_buffer_bytes: usize::try_from(self.config.log_cleaner_dedupe_buffer_size)
                .unwrap_or(usize::MAX),
            io_max_bytes_per_second: self.config.log_cleaner_io_max_bytes_per_second,
        };
        let internal = self
            .internal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let all: Vec<Arc<Partition>> = self
            .topics()
            .into_iter()
            .flat_map(|t| t.partitions())
            .chain(internal)
            .collect();
        {
            let mut cp = self
                .cleaner_checkpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            cp.retain(|t, i| all.iter().any(|p| p.topic == t && p.index == i));
        }
        let queue = Mutex::new(
            all.into_iter()
                .filter(|p| p.config().cleanup_compact)
                .collect::<Vec<_>>(),
        );
        let done = std::sync::atomic::AtomicUsize::new(0);
        let threads = self.config.log_cleaner_threads.max(1) as usize;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let Some(p) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        return;
                    };
                    let start = self
                        .cleaner_checkpoint
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&p.topic, p.index);
                    let name = format!("{}-{}", p.topic, p.index);
                    let began = std::time::Instant::now();
                    match cleaner::clean_partition(&p, start, &cfg, now_ms) {
                        Ok(Some(stats)) => {
                            let mut cp = self
                                .cleaner_checkpoint
                                .lock()
                                .unwrap_or_else(|e| e.into_inner());
                            cp.set(&p.topic, p.index, stats.end);
                            if let Err(e) = cp.save() {
                                tracing::warn!(error = %e, "cannot write the cleaner checkpoint");
                            }
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::info!(
                                partition = %name,
                                read = stats.bytes_read,
                                written = stats.bytes_written,
                                segments_in = stats.segments_in,
                                segments_out = stats.segments_out,
                                cleaned_to = stats.end,
                                ms = began.elapsed().as_millis() as u64,
                                "cleaned"
                            );
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // Nothing was swapped for the failed group; the
                            // next round tries again.
                            tracing::error!(partition = %name, error = %e, "cleaning failed");
                        }
                    }
                });
            }
        });
        done.into_inner()
    }

    /// Clean shutdown: fsync and seal every partition, then leave the
    /// marker that lets the next start skip recovery. An error only if
    /// data could not be fsynced; a partition that cannot be sealed (a full
    /// disk, or offline) just makes the next start recover.
    pub fn shutdown(&self) -> io::Result<()> {
        let mut first_err = None;
        let mut clean = true;
        let internal = self
            .internal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let all = self
            .topics()
            .into_iter()
            .flat_map(|t| t.partitions())
            .chain(internal);
        for p in all {
            match p.close() {
                Ok(sealed) => clean &= sealed,
                Err(e) => {
                    tracing::error!(partition = %format!("{}-{}", p.topic, p.index), error = %e, "close failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if !clean {
            tracing::warn!("not every partition could be sealed; the next start runs recovery");
            return Ok(());
        }
        if let Err(e) = write_atomic(&self.data_dir.join(CLEAN_SHUTDOWN), b"") {
            tracing::warn!(error = %e, "cannot write the clean-shutdown marker; the next start runs recovery");
        }
        Ok(())
    }

    /// Partition counts by topic name, for tests and tooling.
    pub fn summary(&self) -> BTreeMap<String, i32> {
        self.topics()
            .iter()
            .map(|t| (t.name.clone(), t.partition_count()))
            .collect()
    }
}

/// Writes `bytes` to `path` via a fsynced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::write(&tmp, bytes)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk: leave no partial temporary file behind.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &Path) -> LogManager {
        let cfg = Config {
            data_dir: dir.to_string_lossy().into(),
            ..Config::default()
        };
        LogManager::open(Arc::new(cfg)).unwrap()
    }

    #[test]
    fn names() {
        assert!(validate_topic_name("a.b_c-D9").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_id_is_22_chars_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let id = manager(dir.path()).cluster_id().to_string();
        assert_eq!(id.len(), 22);
        assert_eq!(manager(dir.path()).cluster_id(), id);
    }

    #[test]
    fn second_broker_on_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _a = manager(dir.path());
        let cfg = Config {
            data_dir: dir.path().to_string_lossy().into(),
            ..Config::default()
        };
        assert!(LogManager::open(Arc::new(cfg)).is_err());
    }

    #[tokio::test]
    async fn create_delete_recreate_is_empty_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let m = manager(dir.path());
            let mut c = IndexMap::new();
            c.insert("retention.ms".to_string(), "1000".to_string());
            let t = m.create_topic("t", 2, 1, c).unwrap();
            id = t.id;
            assert!(matches!(
                m.create_topic("t", 1, 1, IndexMap::new()),
                Err(TopicError::AlreadyExists(_))
            ));
            assert!(matches!(
                m.create_topic("u", 1, 3, IndexMap::new()),
                Err(TopicError::InvalidReplicationFactor(3))
            ));
            let mut bad = IndexMap::new();
            bad.insert("no.such".to_string(), "1".to_string());
            assert!(matches!(
                m.create_topic("u", 1, 1, bad),
                Err(TopicError::InvalidConfig(_))
            ));
            t.partition(0)
                .unwrap()
                .append(&crate::log::batch::tests::make_batch(&[b"x"], 0), 0)
                .await
                .unwrap();
            m.create_partitions("t", 3, false).unwrap();
            m.shutdown().unwrap();
        }
        let m = manager(dir.path());
        let t = m.topic("t").unwrap();
        assert_eq!((t.id, t.partition_count()), (id, 3));
        assert_eq!(
            t.overrides().get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(t.partition(0).unwrap().offsets().log_end, 1);
        m.delete_topic("t").unwrap();
        assert!(m.topic("t").is_none());
        let t2 = m.create_topic("t", 1, -1, IndexMap::new()).unwrap();
        assert_ne!(t2.id, id);
        assert_eq!(t2.partition(0).unwrap().offsets().log_end, 0);
    }
}
