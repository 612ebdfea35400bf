//! The state shared by every connection: configuration, the log manager and
//! the broker's identity. Handlers receive it through [`RequestContext`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::connection::RequestBudget;
use crate::group::configs::GroupConfigStore;
use crate::group::GroupCoordinator;
use crate::log::manager::{INTERNAL_OFFSETS_LOG, INTERNAL_SHARE_LOG, INTERNAL_TXN_LOG};
use crate::log::LogManager;
use crate::security::acl::{Authorizer, Caller, Operation, ResourceType};
use crate::security::scram::ScramStore;
use crate::security::{Listener, Principal};
use crate::share::{ShareConfig, ShareCoordinator};
use crate::txn::{Participants, ProducerIdAllocator, TxnCoordinator};

pub struct Broker {
    pub config: Arc<Config>,
    pub logs: LogManager,
    pub producer_ids: ProducerIdAllocator,
    pub groups: GroupCoordinator,
    /// Per-group config overrides (the GROUP config resource).
    pub group_configs: GroupConfigStore,
    pub txns: TxnCoordinator,
    /// Share groups (queues).
    pub share: ShareCoordinator,
    /// Bytes of requests held at once (`queued-max-request-bytes`).
    pub request_budget: RequestBudget,
    /// Per-request counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Injected faults (`/v1/faults`).
    pub faults: crate::faults::Faults,
    /// The APIs and versions advertised and served
    /// ([`crate::protocol::api_table`]: `emulate-kafka-version`).
    pub apis: Vec<crate::protocol::ApiSupport>,
    /// The port clients reach us on (the bound port, not the configured one,
    /// so port 0 works in tests).
    pub port: u16,
    /// True when listening on 0.0.0.0 / [::]: advertise each connection's
    /// local address instead.
    pub wildcard: bool,
    pub listen_host: String,
    /// SCRAM credentials (Describe/AlterUserScramCredentials).
    pub scram: ScramStore,
    /// The ACL authorizer when `authorizer = "acl"`; `None` allows all.
    pub authorizer: Option<Authorizer>,
    /// Nonces of SCRAM exchanges.
    pub rng: ring::rand::SystemRandom,
}

impl Broker {
    /// Opens the data directory and the coordinators for a broker whose
    /// PLAINTEXT listener is bound to `bound`.
    pub fn open(config: Arc<Config>, bound: SocketAddr) -> std::io::Result<Broker> {
        let mut broker = Broker::open_unbound(config)?;
        broker.bound_to(bound);
        Ok(broker)
    }

    /// The listener's address, once bound: what Metadata advertises.
    pub fn bound_to(&mut self, bound: SocketAddr) {
        self.wildcard = bound.ip().is_unspecified();
        self.port = bound.port();
    }

    /// [`Self::open`] before the listener is bound (the binary opens the
    /// data directory while the runtime starts); [`Self::bound_to`] must
    /// follow before clients are served.
    pub fn open_unbound(config: Arc<Config>) -> std::io::Result<Broker> {
        let logs = LogManager::open(config.clone())?;
        // Compacted, never deleted: they hold the only copy of committed
        // offsets and coordinator state; every key's latest record (a
        // tombstone when deleted) is what the coordinators replay.
        let overrides = |segment_bytes: u64| -> indexmap::IndexMap<String, String> {
            [
                ("cleanup.policy", "compact".to_string()),
                ("retention.ms", "-1".to_string()),
                ("retention.bytes", "-1".to_string()),
                ("segment.bytes", segment_bytes.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        };
        let offsets_log = overrides(config.offsets_topic_segment_bytes);
        let groups = GroupCoordinator::open(
            logs.open_internal(INTERNAL_OFFSETS_LOG, offsets_log.clone())?,
            config.group_config(),
        )?;
        let share = ShareCoordinator::open(
            logs.open_internal(INTERNAL_SHARE_LOG, offsets_log)?,
            ShareConfig {
                max_group_size: config.group_share_max_size as usize,
            },
        )?;
        let txns = TxnCoordinator::open(
            logs.open_internal(
                INTERNAL_TXN_LOG,
                overrides(config.transaction_state_log_segment_bytes),
            )?,
            &logs,
            config.txn_config(),
        )?;
        let meta = std::path::Path::new(&config.data_dir).join("meta");
        let producer_ids = ProducerIdAllocator::open(&meta)?;
        let group_configs = GroupConfigStore::open(&meta, config.clone())?;
        let scram = ScramStore::open(&meta)?;
        let authorizer = if config.authorizer == "acl" {
            Some(Authorizer::open(&meta, &config)?)
        } else {
            None
        };
        let listen_host = config
            .listen
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            .unwrap_or_default();
        Ok(Broker {
            request_budget: RequestBudget::new(
                usize::try_from(config.queued_max_request_bytes).unwrap_or(usize::MAX),
            ),
            metrics: Default::default(),
            faults: Default::default(),
            apis: crate::protocol::api_table(&config.emulate_kafka_version)
                .map_err(std::io::Error::other)?,
            producer_ids,
            group_configs,
            groups,
            share,
            txns,
            wildcard: false,
            port: 0,
            listen_host,
            scram,
            authorizer,
            rng: ring::rand::SystemRandom::new(),
            logs,
            config,
        })
    }

    /// What the transaction coordinator writes markers into.
    pub fn participants(&self) -> Participants<'_> {
        Participants {
            logs: &self.logs,
            groups: &self.groups,
            producer_ids: &self.producer_ids,
        }
    }

    /// The broker's row of the API table for `key`.
    pub fn find_api(&self, key: i16) -> Option<&crate::protocol::ApiSupport> {
        self.apis.iter().find(|a| a.key as i16 == key)
    }

    /// (key, max version) of SaslHandshake and SaslAuthenticate as
    /// advertised: Weir's (1 and 2), or an emulated release's.
    pub fn sasl_versions(&self) -> Vec<(i16, i16)> {
        use crate::security::sasl::{SASL_AUTHENTICATE, SASL_HANDSHAKE};
        let ours = [(SASL_HANDSHAKE, 1), (SASL_AUTHENTICATE, 2)];
        match crate::protocol::emulation_release(&self.config.emulate_kafka_version) {
            Err(_) => ours.to_vec(),
            Ok(release) => ours
                .iter()
                .filter_map(|&(key, max)| {
                    let &(_, _, hi) = release.iter().find(|(k, ..)| *k == key)?;
                    Some((key, max.min(hi)))
                })
                .collect(),
        }
    }

    /// What SASL authentication checks against.
    pub fn sasl_credentials(&self) -> crate::security::sasl::Credentials<'_> {
        crate::security::sasl::Credentials {
            plain_users: &self.config.sasl_plain_users,
            scram: &self.scram,
            rng: &self.rng,
            reauth_ms: self.config.connections_max_reauth_ms,
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The host to advertise to a client connected via `local`.
    pub fn advertised_host(&self, local: SocketAddr) -> String {
        if !self.config.advertised_host.is_empty() {
            self.config.advertised_host.clone()
        } else if self.wildcard {
            local.ip().to_string()
        } else {
            self.listen_host.clone()
        }
    }
}

/// What a handler knows about the request it serves.
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub local_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub connection_id: u64,
    pub api_version: i16,
    pub client_id: Option<String>,
    /// Who sent the request (TLS subject or SASL user, else ANONYMOUS).
    pub principal: Principal,
    /// The listener the connection arrived on.
    pub listener: Arc<Listener>,
}

impl RequestContext {
    pub fn advertised_host(&self) -> String {
        self.broker.advertised_host(self.local_addr)
    }

    /// The port advertised to this client: its own listener's.
    pub fn advertised_port(&self) -> i32 {
        self.listener.port as i32
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            principal: &self.principal,
            // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d;
            // host ACLs name them as a.b.c.d (as Java's InetAddress does).
            host: self.peer_addr.ip().to_canonical(),
        }
    }

    /// Whether the caller may perform `op` on a resource (always, without
    /// an authorizer).
    pub fn authorize(&self, op: Operation, kind: ResourceType, name: &str) -> bool {
        match &self.broker.authorizer {
            None => true,
            Some(a) => a.authorize(&self.caller(), op, kind, name),
        }
    }

    /// `op` on the cluster resource.
    pub fn authorize_cluster(&self, op: Operation) -> bool {
        self.authorize(
            op,
            ResourceType::Cluster,
            crate::security::acl::CLUSTER_NAME,
        )
    }

    /// Whether `op` is allowed on some resource of `kind` (KIP-679).
    pub fn authorize_any(&self, op: Operation, kind: ResourceType) -> bool {
        match &self.broker.authorizer {
            None => true,
            Some(a) => a.authorize_any(&self.caller(), op, kind),
        }
    }

    /// The `*_authorized_operations` bit field for a resource. Without an
    /// authorizer: every operation Kafka supports on the type, as Kafka
    /// answers.
    pub fn authorized_operations(&self, kind: ResourceType, name: &str) -> i32 {
        match &self.broker.authorizer {
            None => kind
                .operations()
                .iter()
                .fold(0, |bits, op| bits | 1 << op.code()),
            Some(a) => a.authorized_operations(&self.caller(), kind, name),
        }
    }
}
