//! Fault injection for client testing (`/v1/faults` on the HTTP listener,
//! `weir fault add|list|clear`): make the next matching requests fail with
//! a Kafka error, wait, close the connection, or carry a throttle time.
//!
//! A rule names an API (Kafka's name, e.g. `Produce`), optionally a topic
//! (it then matches only requests naming that topic), an optional count
//! (without one it applies until cleared) and exactly one action. Rules are
//! tried in the order they were added; the first match fires and uses up
//! one of its count. An injected error is the answer: the request is not
//! executed, so a client's retry is what writes the data, once.
//!
//! Lock: one std mutex over the rules, taken per request only while a rule
//! exists (an atomic says whether any does), never across an await.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use serde::{Deserialize, Serialize};

use crate::client::error_name;
use crate::protocol::{encode_response, ProtocolError};

/// What a rule does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with this error code instead of executing the request.
    Error(i16),
    /// Handle the request after this delay.
    Delay(Duration),
    /// Close the connection instead of answering.
    Disconnect,
    /// Handle the request; the response carries this `throttle_time_ms`.
    Throttle(i32),
}

/// A rule as the HTTP API takes it (`POST /v1/faults`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub api: String,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub disconnect: Option<bool>,
    #[serde(default)]
    pub throttle_ms: Option<i32>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub topic: Option<String>,
}

/// A rule as the HTTP API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleView {
    pub id: u64,
    pub api: String,
    pub error: Option<String>,
    pub delay_ms: Option<u64>,
    pub disconnect: bool,
    pub throttle_ms: Option<i32>,
    pub topic: Option<String>,
    pub count: Option<u64>,
    pub remaining: Option<u64>,
    pub fired: u64,
}

struct Rule {
    id: u64,
    api: ApiKey,
    topic: Option<String>,
    action: Action,
    count: Option<u64>,
    remaining: Option<u64>,
    fired: u64,
}

/// The broker's fault rules.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    /// Whether any rule exists: the request path's only cost without rules.
    any: AtomicBool,
    next_id: AtomicU64,
}

/// Kafka's name of an API key (`Produce`, `OffsetCommit`, ...).
pub fn api_by_name(name: &str) -> Option<ApiKey> {
    (0..200i16)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
}

/// An error by Kafka's name or its numeric code.
fn error_by_name(v: &serde_json::Value) -> Option<i16> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .and_then(|c| i16::try_from(c).ok())
            .filter(|c| *c != 0 && ResponseError::try_from_code(*c).is_some()),
        serde_json::Value::String(s) => (-1..200i16)
            .filter(|c| *c != 0)
            .find(|c| ResponseError::try_from_code(*c).is_some() && error_name(*c) == *s),
        _ => None,
    }
}

/// APIs whose requests name topics (what a rule's `topic` can match).
fn names_topics(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::OffsetCommit
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::TxnOffsetCommit
    )
}

impl Faults {
    /// Validates and adds a rule; the error says what is wrong with it.
    pub fn add(&self, spec: RuleSpec) -> Result<RuleView, String> {
        let api = api_by_name(&spec.api).ok_or_else(|| format!("unknown api {:?}", spec.api))?;
        let mut actions = Vec::new();
        if let Some(e) = &spec.error {
            let code = error_by_name(e).ok_or_else(|| format!("unknown error {e}"))?;
            if !can_answer_with_error(api) {
                return Err(format!(
                    "error injection is not supported for {api:?}; delay_ms, disconnect and throttle_ms are"
                ));
            }
            actions.push(Action::Error(code));
        }
        if let Some(ms) = spec.delay_ms {
            if ms > 300_000 {
                return Err("delay_ms must be <= 300000".into());
            }
            actions.push(Action::Delay(Duration::from_millis(ms)));
        }
        match spec.disconnect {
            Some(true) => actions.push(Action::Disconnect),
            Some(false) => return Err("disconnect must be true when given".into()),
            None => {}
        }
        if let Some(ms) = spec.throttle_ms {
            if ms < 0 {
                return Err("throttle_ms must be >= 0".into());
            }
            actions.push(Action::Throttle(ms));
        }
        let [action] = actions[..] else {
            return Err("exactly one of error, delay_ms, disconnect, throttle_ms".into());
        };
        if spec.count == Some(0) {
            return Err("count must be >= 1".into());
        }
        if spec.topic.is_some() && !names_topics(api) {
            return Err(format!("{api:?} requests name no topics"));
        }
        let rule = Rule {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            api,
            topic: spec.topic,
            action,
            count: spec.count,
            remaining: spec.count,
            fired: 0,
        };
        let view = view(&rule);
        let mut rules = self.lock();
        rules.push(rule);
        self.any.store(true, Ordering::Release);
        Ok(view)
    }

    /// The active rules, oldest first.
    pub fn list(&self) -> Vec<RuleView> {
        self.lock().iter().map(view).collect()
    }

    /// Removes every rule; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut rules = self.lock();
        let n = rules.len();
        rules.clear();
        self.any.store(false, Ordering::Release);
        n
    }

    /// The action for a request of `api`, using up one of the first
    /// matching rule's count. `topics` lists the topics the request names;
    /// it is called only when a rule of this API has a topic.
    pub fn take(&self, api: ApiKey, topics: impl FnOnce() -> Vec<String>) -> Option<Action> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = self.lock();
        let mut named: Option<Vec<String>> = None;
        let mut topics = Some(topics);
        let i = rules.iter().position(|r| {
            r.api == api
                && match &r.topic {
                    None => true,
                    Some(t) => named
                        .get_or_insert_with(|| topics.take().map(|f| f()).unwrap_or_default())
                        .contains(t),
                }
        })?;
        let rule = &mut rules[i];
        rule.fired += 1;
        let action = rule.action;
        if let Some(left) = rule.remaining.as_mut() {
            *left -= 1;
            if *left == 0 {
                rules.remove(i);
                self.any.store(!rules.is_empty(), Ordering::Release);
            }
        }
        Some(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn view(r: &Rule) -> RuleView {
    RuleView {
        id: r.id,
        api: format!("{:?}", r.api),
        error: match r.action {
            Action::Error(c) => Some(error_name(c)),
            _ => None,
        },
        delay_ms: match r.action {
            Action::Delay(d) => Some(d.as_millis() as u64),
            _ => None,
        },
        disconnect: r.action == Action::Disconnect,
        throttle_ms: match r.action {
            Action::Throttle(t) => Some(t),
            _ => None,
        },
        topic: r.topic.clone(),
        count: r.count,
        remaining: r.remaining,
        fired: r.fired,
    }
}

/// The topics a request names (for rules with a topic); topic ids are
/// resolved through `by_id`. Undecodable requests name none.
pub fn request_topics(
    api: ApiKey,
    version: i16,
    body: &Bytes,
    by_id: impl Fn(uuid::Uuid) -> Option<String>,
) -> Vec<String> {
    let mut b = body.clone();
    let s = |n: &TopicName| n.0.to_string();
    match api {
        ApiKey::Produce => ProduceRequest::decode(&mut b, version)
            .map(|r| {
                r.topic_data
                    .iter()
                    .filter_map(|t| {
                        if version >= 13 {
                            by_id(t.topic_id)
                        } else {
                            Some(s(&t.name))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ApiKey::Fetch => FetchRequest::decode(&mut b, version)
            .map(|r| {
                r.topics
                    .iter()
                    .filter_map(|t| {
                        if version >= 13 {
                            by_id(t.topic_id)
                        } else {
                            Some(s(&t.topic))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ApiKey::ListOffsets => ListOffsetsRequest::decode(&mut b, version)
            .map(|r| r.topics.iter().map(|t| s(&t.name)).collect())
            .unwrap_or_default(),
        ApiKey::Metadata => MetadataRequest::decode(&mut b, version)
            .map(|r| {
                r.topics
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(s).or_else(|| by_id(t.topic_id)))
                    .collect()
            })
            .unwrap_or_default(),
        ApiKey::OffsetCommit => OffsetCommitRequest::decode(&mut b, version)
            .map(|r| r.topics.iter().map(|t| s(&t.name)).collect())
            .unwrap_or_default(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::decode(&mut b, version)
            .map(|r| r.topics.iter().map(|t| s(&t.name)).collect())
            .unwrap_or_default(),
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut b, version)
            .map(|r| r.topics.iter().map(|t| s(&t.name)).collect())
            .unwrap_or_default(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::decode(&mut b, version)
            .map(|r| {
                r.topic_names
                    .iter()
                    .map(s)
                    .chain(r.topics.iter().filter_map(|t| t.name.as_ref().map(s)))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// APIs an injected error can answer (see [`error_response`]).
fn can_answer_with_error(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::SyncGroup
            | ApiKey::InitProducerId
            | ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::EndTxn
            | ApiKey::TxnOffsetCommit
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
    )
}

/// The response to a request answered with an injected error `code`, as
/// Kafka's `getErrorResponse` shapes it: the code on every partition,
/// topic or group the request names, or at the top level.
pub fn error_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Bytes,
    code: i16,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let mut b = body;
    let malformed = |what: &'static str| move |source| ProtocolError::Malformed { what, source };
    macro_rules! answer {
        ($resp:expr) => {
            encode_response(api, version, correlation_id, &$resp, out)
        };
    }
    match api {
        ApiKey::Produce => {
            let r = ProduceRequest::decode(&mut b, version).map_err(malformed("ProduceRequest"))?;
            answer!(ProduceResponse::default().with_responses(
                r.topic_data
                    .into_iter()
                    .map(|t| produce_response::TopicProduceResponse::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| produce_response::PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code)
                                    .with_base_offset(-1))
                                .collect()
                        ))
                    .collect()
            ))
        }
        ApiKey::Fetch => {
            let r = FetchRequest::decode(&mut b, version).map_err(malformed("FetchRequest"))?;
            answer!(FetchResponse::default().with_responses(
                r.topics
                    .into_iter()
                    .map(|t| fetch_response::FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| fetch_response::PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(code)
                                    .with_high_watermark(-1))
                                .collect()
                        ))
                    .collect()
            ))
        }
        ApiKey::ListOffsets => {
            let r = ListOffsetsRequest::decode(&mut b, version)
                .map_err(malformed("ListOffsetsRequest"))?;
            answer!(ListOffsetsResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| list_offsets_response::ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                                    .with_timestamp(-1)
                                    .with_offset(-1))
                                .collect()
                        ))
                    .collect()
            ))
        }
        ApiKey::Metadata => {
            let r =
                MetadataRequest::decode(&mut b, version).map_err(malformed("MetadataRequest"))?;
            answer!(MetadataResponse::default()
                .with_controller_id(BrokerId(-1))
                .with_topics(
                    r.topics
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| metadata_response::MetadataResponseTopic::default()
                            .with_name(t.name)
                            .with_topic_id(t.topic_id)
                            .with_error_code(code))
                        .collect()
                ))
        }
        ApiKey::OffsetCommit => {
            let r = OffsetCommitRequest::decode(&mut b, version)
                .map_err(malformed("OffsetCommitRequest"))?;
            answer!(OffsetCommitResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code))
                                .collect()
                        ))
                    .collect()
            ))
        }
        ApiKey::TxnOffsetCommit => {
            let r = TxnOffsetCommitRequest::decode(&mut b, version)
                .map_err(malformed("TxnOffsetCommitRequest"))?;
            answer!(TxnOffsetCommitResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code))
                                .collect()
                        ))
                    .collect()
            ))
        }
        ApiKey::OffsetFetch => {
            let r = OffsetFetchRequest::decode(&mut b, version)
                .map_err(malformed("OffsetFetchRequest"))?;
            // The top-level code until v7; per group from v8.
            let mut resp = OffsetFetchResponse::default();
            if version < 8 {
                resp.error_code = code;
            } else {
                resp.groups = r
                    .groups
                    .into_iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code)
                    })
                    .collect();
            }
            answer!(resp)
        }
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorRequest::decode(&mut b, version)
                .map_err(malformed("FindCoordinatorRequest"))?;
            // One coordinator until v3; a list of them from v4.
            let mut resp = FindCoordinatorResponse::default();
            if version < 4 {
                resp.error_code = code;
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            } else {
                resp.coordinators = r
                    .coordinator_keys
                    .into_iter()
                    .map(|k| {
                        find_coordinator_response::Coordinator::default()
                            .with_key(k)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code)
                    })
                    .collect();
            }
            answer!(resp)
        }
        ApiKey::JoinGroup => answer!(JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)),
        ApiKey::Heartbeat => answer!(HeartbeatResponse::default().with_error_code(code)),
        ApiKey::LeaveGroup => answer!(LeaveGroupResponse::default().with_error_code(code)),
        ApiKey::SyncGroup => answer!(SyncGroupResponse::default().with_error_code(code)),
        ApiKey::InitProducerId => answer!(InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)),
        ApiKey::AddPartitionsToTxn => {
            let r = AddPartitionsToTxnRequest::decode(&mut b, version)
                .map_err(malformed("AddPartitionsToTxnRequest"))?;
            let mut resp = AddPartitionsToTxnResponse::default();
            if version >= 4 {
                resp.error_code = code;
            } else {
                resp.results_by_topic_v3_and_below = r
                    .v3_and_below_topics
                    .into_iter()
                    .map(|t| add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name)
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(code))
                                .collect()
                        ))
                    .collect();
            }
            answer!(resp)
        }
        ApiKey::AddOffsetsToTxn => {
            answer!(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        ApiKey::EndTxn => answer!(EndTxnResponse::default().with_error_code(code)),
        ApiKey::CreateTopics => {
            let r = CreateTopicsRequest::decode(&mut b, version)
                .map_err(malformed("CreateTopicsRequest"))?;
            answer!(CreateTopicsResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| create_topics_response::CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(code)
                        .with_num_partitions(-1)
                        .with_replication_factor(-1))
                    .collect()
            ))
        }
        ApiKey::DeleteTopics => {
            let r = DeleteTopicsRequest::decode(&mut b, version)
                .map_err(malformed("DeleteTopicsRequest"))?;
            let names: Vec<Option<TopicName>> = r
                .topic_names
                .into_iter()
                .map(Some)
                .chain(r.topics.into_iter().map(|t| t.name))
                .collect();
            answer!(DeleteTopicsResponse::default().with_responses(
                names
                    .into_iter()
                    .map(|n| delete_topics_response::DeletableTopicResult::default()
                        .with_name(n)
                        .with_error_code(code))
                    .collect()
            ))
        }
        other => Err(ProtocolError::UnknownApi(other as i16)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> RuleSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_and_validation() {
        assert_eq!(api_by_name("Produce"), Some(ApiKey::Produce));
        assert_eq!(api_by_name("offsetcommit"), Some(ApiKey::OffsetCommit));
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(
            error_by_name(&serde_json::json!("NOT_LEADER_OR_FOLLOWER")),
            Some(6)
        );
        assert_eq!(error_by_name(&serde_json::json!(29)), Some(29));
        assert_eq!(error_by_name(&serde_json::json!("NOPE")), None);
        let f = Faults::default();
        for bad in [
            r#"{"api": "Nope", "error": "NOT_LEADER_OR_FOLLOWER"}"#,
            r#"{"api": "Produce", "error": "NOPE"}"#,
            r#"{"api": "Produce"}"#,
            r#"{"api": "Produce", "error": 6, "delay_ms": 5}"#,
            r#"{"api": "Produce", "error": 6, "count": 0}"#,
            r#"{"api": "Heartbeat", "error": 6, "topic": "t"}"#,
            r#"{"api": "DescribeAcls", "error": 6}"#,
        ] {
            assert!(f.add(spec(bad)).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<RuleSpec>(r#"{"api": "Produce", "bogus": 1}"#).is_err());
        assert!(f.list().is_empty());
    }

    #[test]
    fn counts_topics_and_order() {
        let f = Faults::default();
        assert_eq!(f.take(ApiKey::Produce, Vec::new), None);
        let a = f
            .add(spec(r#"{"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 2, "topic": "a"}"#))
            .unwrap();
        assert_eq!((a.id, a.remaining), (1, Some(2)));
        f.add(spec(r#"{"api": "Produce", "throttle_ms": 50}"#))
            .unwrap();
        let topics = |t: &'static str| move || vec![t.to_string()];
        // Topic b skips the first rule and meets the unlimited second one.
        assert_eq!(
            f.take(ApiKey::Produce, topics("b")),
            Some(Action::Throttle(50))
        );
        assert_eq!(f.take(ApiKey::Produce, topics("a")), Some(Action::Error(6)));
        assert_eq!(f.list()[0].remaining, Some(1));
        assert_eq!(f.list()[0].fired, 1);
        assert_eq!(f.take(ApiKey::Fetch, topics("a")), None);
        assert_eq!(f.take(ApiKey::Produce, topics("a")), Some(Action::Error(6)));
        // Used up: gone; the unlimited rule stays until cleared.
        assert_eq!(f.list().len(), 1);
        assert_eq!(
            f.take(ApiKey::Produce, topics("a")),
            Some(Action::Throttle(50))
        );
        assert_eq!(f.list()[0].fired, 2);
        assert_eq!(f.clear(), 1);
        assert_eq!(f.take(ApiKey::Produce, topics("a")), None);
    }
}
