//! Consumer-protocol groups (KIP-848): the broker computes the target
//! assignment and every member reconciles towards it, heartbeat by
//! heartbeat. A pure state machine: time (ms) and the topic image are passed
//! in, so tests drive it without sockets or sleeping.
//!
//! Epochs: the group epoch counts changes of membership, subscriptions and
//! subscribed topics' metadata; the assignment epoch is the group epoch the
//! current target was computed at; a member's epoch is the target epoch it
//! has reconciled to.
//!
//! The safety rule (Kafka's `CurrentAssignmentBuilder`): a partition is
//! given to a member only when no other member holds it, either assigned
//! or pending revocation. A member that must give partitions up stays at
//! its epoch (UNREVOKED_PARTITIONS) until a heartbeat's owned partitions
//! show them gone; a member whose new partitions are still held elsewhere
//! advances its epoch and gets them on a later heartbeat
//! (UNRELEASED_PARTITIONS).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignment, AssignorMember};

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub fn from_code(c: i8) -> MemberState {
        match c {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    /// Literal topic names subscribed to (a set).
    pub topic_names: BTreeSet<String>,
    /// RE2-style pattern matched against whole topic names.
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    /// -2: a static member that left temporarily.
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member may own now.
    pub assigned: Assignment,
    /// What it must give up before it moves on.
    pub pending_revocation: Assignment,
    pub session_timeout_ms: i64,
    pub session_deadline_ms: i64,
    /// Armed while partitions are pending revocation: the member is fenced
    /// if it has not revoked them by then.
    pub rebalance_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    /// A member that has just joined: no subscription, nothing assigned,
    /// epoch 0, its session running from `now`.
    pub fn new(
        id: String,
        instance_id: Option<String>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i64,
        now: i64,
    ) -> ConsumerMember {
        ConsumerMember {
            id,
            instance_id,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms,
            topic_names: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_timeout_ms,
            session_deadline_ms: now + session_timeout_ms,
            rebalance_deadline_ms: None,
        }
    }
}

/// The rebalance timeout of a member that joined without one (librdkafka's
/// and the Java client's `max.poll.interval.ms` default).
const DEFAULT_REBALANCE_TIMEOUT_MS: i32 = 300_000;

/// A ConsumerGroupHeartbeat as the group sees it (nulls are `None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topic_names: Option<Vec<String>>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's full assignment, when the request was a full one or the
    /// assignment changed.
    pub assignment: Option<Assignment>,
}

/// An error answer: code and message.
pub type HbError = (i16, String);

fn err(e: ResponseError, msg: impl Into<String>) -> HbError {
    (e.code(), msg.into())
}

/// Settings that apply to one heartbeat (per-group configs resolved by the caller).
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_timeout_ms: i64,
    /// Assignors in preference order; the first is the default.
    pub assignors: Vec<String>,
    pub max_size: usize,
}

/// The topics a group can subscribe to: name -> (id, partition count).
pub type TopicImage = BTreeMap<String, (Uuid, i32)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: IndexMap<String, ConsumerMember>,
    /// Member id -> target assignment at `assignment_epoch`.
    pub target: BTreeMap<String, Assignment>,
    /// The assignor that computed the target.
    pub assignor: String,
    /// Regex -> matching topic names, as last resolved.
    pub resolved: BTreeMap<String, BTreeSet<String>>,
    /// Regexes introduced by a heartbeat and not resolved yet (resolution
    /// happens after the heartbeat that brings them, as in Kafka).
    pub unresolved: BTreeSet<String>,
    /// Name -> (id, partitions) of every subscribed topic at the last check;
    /// a difference bumps the group epoch.
    pub subscribed_metadata: BTreeMap<String, (Uuid, i32)>,
    /// The topic image's fingerprint at the last regex resolution.
    image_fingerprint: u64,
    /// A changed topic image seen since (fingerprint, first seen at ms):
    /// regexes are re-resolved once it has been quiet for
    /// [`REGEX_REFRESH_QUIET_MS`].
    image_pending: Option<(u64, i64)>,
    /// Membership or assignments changed and must be persisted.
    pub dirty: bool,
}

/// Topics created or deleted together (a test setup, a deployment) are
/// picked up by one re-resolution: the topic set must be unchanged this
/// long first. Kafka batches its refreshes too.
const REGEX_REFRESH_QUIET_MS: i64 = 500;

/// The full-match form of a subscription regex (Kafka uses RE2/J's `matches()`).
pub fn compile_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
}

fn fingerprint(image: &TopicImage) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, (id, n)) in image {
        (name, id, n).hash(&mut h);
    }
    h.finish()
}

fn contains(a: &Assignment, t: &Uuid, p: i32) -> bool {
    a.get(t).is_some_and(|ps| ps.contains(&p))
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    small
        .iter()
        .all(|(t, ps)| ps.iter().all(|p| contains(big, t, *p)))
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| ps.iter().any(|p| contains(b, t, *p)))
}

fn partitions_in(a: &Assignment) -> usize {
    a.values().map(|p| p.len()).sum()
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.into(),
            assignor: assignor::ASSIGNORS[0].into(),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's group states: Empty, Assigning (target behind the group
    /// epoch), Reconciling (members behind the target), Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
        self.dirty = true;
    }

    fn member_by_instance(&self, instance: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Topic names the group subscribes to: literal names and resolved regexes.
    fn subscribed_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.topic_names.iter().cloned());
            if let Some(topics) = m.regex.as_ref().and_then(|r| self.resolved.get(r)) {
                names.extend(topics.iter().cloned());
            }
        }
        names
    }

    fn member_topics(&self, m: &ConsumerMember, image: &TopicImage) -> BTreeSet<Uuid> {
        let mut out = BTreeSet::new();
        let regex_topics = m.regex.as_ref().and_then(|r| self.resolved.get(r));
        for name in m
            .topic_names
            .iter()
            .chain(regex_topics.into_iter().flatten())
        {
            if let Some((id, _)) = image.get(name) {
                out.insert(*id);
            }
        }
        out
    }

    /// Resolves regexes introduced by earlier heartbeats, and re-resolves
    /// all when topics changed. Bumps the group epoch when a regex's
    /// topics change. Returns whether anything changed.
    pub fn resolve_regexes(&mut self, image: &TopicImage, now: i64) -> bool {
        let fp = fingerprint(image);
        let refresh = fp != self.image_fingerprint
            && match self.image_pending {
                Some((pending, since)) if pending == fp => now - since >= REGEX_REFRESH_QUIET_MS,
                _ => {
                    self.image_pending = Some((fp, now));
                    // Nothing resolved yet: nothing to keep stable.
                    self.resolved.is_empty()
                }
            };
        let in_use: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.regex.clone())
            .collect();
        let before = self.resolved.len();
        self.resolved.retain(|r, _| in_use.contains(r));
        self.unresolved.retain(|r| in_use.contains(r));
        let mut changed = self.resolved.len() != before;
        let todo: Vec<String> = if refresh {
            self.image_fingerprint = fp;
            self.image_pending = None;
            in_use.iter().cloned().collect()
        } else {
            self.unresolved.iter().cloned().collect()
        };
        for re in todo {
            let Ok(compiled) = compile_regex(&re) else {
                continue; // validated when introduced; cannot happen
            };
            let topics: BTreeSet<String> = image
                .keys()
                .filter(|n| compiled.is_match(n))
                .cloned()
                .collect();
            self.unresolved.remove(&re);
            if self.resolved.get(&re) != Some(&topics) {
                self.resolved.insert(re, topics);
                changed = true;
            }
        }
        if changed {
            self.bump();
        }
        changed
    }

    /// Bumps the group epoch when a subscribed topic was created, deleted
    /// or grew partitions.
    fn check_metadata(&mut self, image: &TopicImage) {
        let now: BTreeMap<String, (Uuid, i32)> = self
            .subscribed_names()
            .into_iter()
            .filter_map(|n| image.get(&n).map(|v| (n, *v)))
            .collect();
        if now != self.subscribed_metadata {
            self.subscribed_metadata = now;
            self.bump();
        }
    }

    /// The assignor most members asked for, else the default.
    fn choose_assignor(&self, settings: &Settings) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(name, _)| name.to_string())
            .or_else(|| settings.assignors.first().cloned())
            .unwrap_or_else(|| assignor::ASSIGNORS[0].into())
    }

    /// Recomputes the target when the group epoch moved past it.
    fn maybe_compute_target(&mut self, image: &TopicImage, settings: &Settings) {
        if self.group_epoch <= self.assignment_epoch && self.target.len() == self.members.len() {
            return;
        }
        let name = self.choose_assignor(settings);
        let topics: Vec<(Uuid, i32)> = self.subscribed_metadata.values().copied().collect();
        let empty = Assignment::new();
        let member_topics: Vec<BTreeSet<Uuid>> = self
            .members
            .values()
            .map(|m| self.member_topics(m, image))
            .collect();
        let specs: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .zip(member_topics)
            .map(|(m, topics)| AssignorMember {
                id: &m.id,
                instance_id: m.instance_id.as_deref(),
                topics,
                current: self.target.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        let result = assignor::assign(&name, &specs, &topics);
        self.target = self.members.keys().cloned().zip(result).collect();
        self.assignor = name;
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// Partitions held by members other than `except` (assigned or pending
    /// revocation).
    fn held_elsewhere(&self, except: &str) -> HashSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.id != except)
            .flat_map(|m| m.assigned.iter().chain(m.pending_revocation.iter()))
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect()
    }

    /// Moves one member towards the target (`CurrentAssignmentBuilder`).
    /// `owned`: what the member reported owning (`None`: not reported,
    /// which counts as still owning everything).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let held = self.held_elsewhere(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if m.epoch < 0 {
            return;
        }
        let still_owns = |pending: &Assignment| match owned {
            None => !pending.is_empty(),
            Some(o) => overlaps(o, pending),
        };
        let base_epoch = match m.state {
            MemberState::Stable if m.epoch == target_epoch => return,
            MemberState::UnrevokedPartitions => {
                if still_owns(&m.pending_revocation) {
                    return;
                }
                m.epoch + 1
            }
            _ => m.epoch,
        };
        let before = (m.epoch, m.assigned.clone());
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut add = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
        for t in topics {
            let want = target.get(&t).cloned().unwrap_or_default();
            let have = m.assigned.get(&t).cloned().unwrap_or_default();
            let keep: BTreeSet<i32> = have.intersection(&want).copied().collect();
            let gone: BTreeSet<i32> = have.difference(&keep).copied().collect();
            let mut new: BTreeSet<i32> = want.difference(&keep).copied().collect();
            let before_len = new.len();
            new.retain(|p| !held.contains(&(t, *p)));
            unreleased |= new.len() != before_len;
            if !keep.is_empty() {
                assigned.insert(t, keep);
            }
            if !gone.is_empty() {
                revoke.insert(t, gone);
            }
            if !new.is_empty() {
                add.insert(t, new);
            }
        }
        if !revoke.is_empty() && still_owns(&revoke) {
            m.state = MemberState::UnrevokedPartitions;
            if m.epoch != base_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = base_epoch;
            }
            m.assigned = assigned;
            m.pending_revocation = revoke;
            m.rebalance_deadline_ms = Some(now + i64::from(m.rebalance_timeout_ms.max(0)));
        } else {
            for (t, ps) in add {
                assigned.entry(t).or_default().extend(ps);
            }
            m.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
            if m.epoch != target_epoch {
                m.previous_epoch = m.epoch;
                m.epoch = target_epoch;
            }
            m.assigned = assigned;
            m.pending_revocation = Assignment::new();
            m.rebalance_deadline_ms = None;
        }
        if (m.epoch, &m.assigned) != (before.0, &before.1) {
            self.dirty = true;
        }
    }

    /// Removes a member (leave, fencing, expiry) and bumps the group epoch.
    pub fn remove_member(&mut self, member_id: &str) {
        if self.members.shift_remove(member_id).is_some() {
            self.target.remove(member_id);
            self.bump();
        }
    }

    /// Validates a heartbeat against the group without changing anything,
    /// and finds the member it is about (`None`: a new member).
    fn check(&self, hb: &Heartbeat, settings: &Settings) -> Result<Option<String>, HbError> {
        if hb.member_epoch < 0 {
            // Leave: -1 (dynamic or static) or -2 (static, temporary).
            let found = match &hb.instance_id {
                Some(i) => {
                    let m = self.member_by_instance(i).ok_or_else(|| {
                        err(
                            ResponseError::UnknownMemberId,
                            format!("instance {i} is not a member of group {}", self.id),
                        )
                    })?;
                    if m.id != hb.member_id {
                        return Err(err(
                            ResponseError::FencedInstanceId,
                            format!("instance {i} belongs to another member"),
                        ));
                    }
                    m.id.clone()
                }
                None => self
                    .members
                    .get(&hb.member_id)
                    .map(|m| m.id.clone())
                    .ok_or_else(|| {
                        err(
                            ResponseError::UnknownMemberId,
                            format!("{} is not a member of group {}", hb.member_id, self.id),
                        )
                    })?,
            };
            return Ok(Some(found));
        }
        if hb.member_epoch == 0 {
            if let Some(i) = &hb.instance_id {
                if let Some(m) = self.member_by_instance(i) {
                    if m.epoch != -2 && m.id != hb.member_id {
                        return Err(err(
                            ResponseError::UnreleasedInstanceId,
                            format!(
                                "static member {i} is still in use by member {} of group {}",
                                m.id, self.id
                            ),
                        ));
                    }
                    // A static member coming back (new member id) or rejoining.
                    return Ok(Some(m.id.clone()));
                }
            }
            if self.members.contains_key(&hb.member_id) {
                return Ok(Some(hb.member_id.clone()));
            }
            if self.members.len() >= settings.max_size {
                return Err(err(
                    ResponseError::GroupMaxSizeReached,
                    format!("group {} reached its maximum size", self.id),
                ));
            }
            return Ok(None);
        }
        let m = self.members.get(&hb.member_id).ok_or_else(|| {
            err(
                ResponseError::UnknownMemberId,
                format!("{} is not a member of group {}", hb.member_id, self.id),
            )
        })?;
        if let Some(i) = &hb.instance_id {
            if m.instance_id.as_deref() != Some(i.as_str()) {
                return Err(err(
                    ResponseError::FencedInstanceId,
                    format!("instance {i} belongs to another member"),
                ));
            }
        }
        let fenced = || {
            err(
                ResponseError::FencedMemberEpoch,
                format!(
                    "member epoch {} is fenced; current epoch is {}",
                    hb.member_epoch, m.epoch
                ),
            )
        };
        if hb.member_epoch > m.epoch {
            return Err(fenced());
        }
        if hb.member_epoch < m.epoch {
            // A lost response: the member may still be at its previous
            // epoch, owning a subset of what it has now.
            let ok = hb.member_epoch == m.previous_epoch
                && hb.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
            if !ok {
                return Err(fenced());
            }
        }
        Ok(Some(m.id.clone()))
    }

    /// ConsumerGroupHeartbeat. The request was validated on its own
    /// (fields required per epoch, the regex compiles, the assignor exists).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        image: &TopicImage,
        settings: &Settings,
        now: i64,
    ) -> Result<HeartbeatReply, HbError> {
        let found = self.check(&hb, settings)?;
        // Several changes in one heartbeat (a member joining with a new
        // subscription, say) make one new group epoch.
        let start_epoch = self.group_epoch;
        // Regexes brought by earlier heartbeats are resolved before this
        // one changes anything; one this heartbeat brings waits.
        self.resolve_regexes(image, now);
        if hb.member_epoch < 0 {
            let id = found.expect("checked");
            if hb.member_epoch == -2 {
                // A static member leaving temporarily keeps its assignment
                // (and session) for when it comes back; no rebalance.
                let m = self.members.get_mut(&id).expect("checked");
                m.epoch = -2;
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                m.rebalance_deadline_ms = None;
                self.dirty = true;
            } else {
                self.remove_member(&id);
            }
            return Ok(HeartbeatReply {
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                assignment: None,
            });
        }
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1 && hb.topic_names.is_some() && hb.owned.is_some());
        let id = match found {
            Some(old) if old != hb.member_id => {
                // A static member returns with a new member id: it takes over
                // the old one's assignment, without a rebalance.
                let mut m = self.members.shift_remove(&old).expect("checked");
                let target = self.target.remove(&old);
                m.id = hb.member_id.clone();
                m.epoch = 0;
                m.previous_epoch = 0;
                m.state = MemberState::Stable;
                self.members.insert(m.id.clone(), m);
                if let Some(t) = target {
                    self.target.insert(hb.member_id.clone(), t);
                }
                self.dirty = true;
                hb.member_id.clone()
            }
            Some(id) => {
                if hb.member_epoch == 0 {
                    // A rejoin (after FENCED or UNKNOWN): the client dropped
                    // its partitions; start it over from nothing owned.
                    let m = self.members.get_mut(&id).expect("checked");
                    m.assigned.clear();
                    m.pending_revocation.clear();
                    m.state = MemberState::Stable;
                    m.epoch = 0;
                    m.previous_epoch = 0;
                    self.dirty = true;
                }
                id
            }
            None => {
                self.members.insert(
                    hb.member_id.clone(),
                    ConsumerMember::new(
                        hb.member_id.clone(),
                        hb.instance_id.clone(),
                        if hb.rebalance_timeout_ms < 0 {
                            DEFAULT_REBALANCE_TIMEOUT_MS
                        } else {
                            hb.rebalance_timeout_ms
                        },
                        settings.session_timeout_ms,
                        now,
                    ),
                );
                self.bump();
                hb.member_id.clone()
            }
        };
        let mut resubscribed = false;
        {
            let m = self.members.get_mut(&id).expect("present");
            m.session_timeout_ms = settings.session_timeout_ms;
            m.session_deadline_ms = now + settings.session_timeout_ms;
            m.client_id = hb.client_id;
            m.client_host = hb.client_host;
            if hb.rebalance_timeout_ms != -1 {
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
            }
            if hb.rack_id.is_some() {
                m.rack_id = hb.rack_id;
            }
            if let Some(names) = hb.topic_names {
                let names: BTreeSet<String> = names.into_iter().collect();
                if names != m.topic_names {
                    m.topic_names = names;
                    resubscribed = true;
                }
            }
            if let Some(re) = hb.regex {
                // "" means no regex (librdkafka sends it with names).
                let re = Some(re).filter(|r| !r.is_empty());
                if re != m.regex {
                    m.regex = re;
                    resubscribed = true;
                }
            }
            if let Some(a) = hb.server_assignor {
                if m.server_assignor.as_deref() != Some(a.as_str()) {
                    m.server_assignor = Some(a);
                    resubscribed = true;
                }
            }
        }
        if resubscribed {
            let re = self.members[&id].regex.clone();
            if let Some(re) = re {
                if !self.resolved.contains_key(&re) {
                    self.unresolved.insert(re);
                }
            }
            self.bump();
        }
        self.check_metadata(image);
        if self.group_epoch > start_epoch {
            self.group_epoch = start_epoch + 1;
        }
        self.maybe_compute_target(image, settings);
        let before = self.members[&id].assigned.clone();
        // A (re)joining member owns nothing, whatever it sent.
        let owned = if hb.member_epoch == 0 {
            Some(Assignment::new())
        } else {
            hb.owned
        };
        self.reconcile(&id, owned.as_ref(), now);
        let m = &self.members[&id];
        let changed = m.assigned != before;
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: m.epoch,
            assignment: (full || changed).then(|| m.assigned.clone()),
        })
    }

    /// Session and rebalance timeouts. Returns the ids of removed members.
    pub fn tick(&mut self, now: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now >= m.session_deadline_ms || m.rebalance_deadline_ms.is_some_and(|d| now >= d)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        expired
    }

    /// Whether regexes wait for resolution: new ones, or a changed topic set.
    pub fn has_unresolved(&self) -> bool {
        !self.unresolved.is_empty() || self.image_pending.is_some()
    }

    /// After a restart: sessions start over from `now`.
    pub fn restart_sessions(&mut self, now: i64) {
        for m in self.members.values_mut() {
            m.session_deadline_ms = now + m.session_timeout_ms;
            m.rebalance_deadline_ms = m
                .rebalance_deadline_ms
                .map(|_| now + i64::from(m.rebalance_timeout_ms.max(0)));
        }
    }

    /// OffsetCommit from a consumer-protocol member (v9+: the epoch field
    /// carries the member epoch). Standalone commits (negative epoch) only
    /// while the group has no members.
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), i16> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        if epoch != m.epoch {
            return Err(ResponseError::StaleMemberEpoch.code());
        }
        Ok(())
    }

    /// Topics the members subscribe to (names and resolved regexes).
    pub fn subscribed_topic_names(&self) -> Vec<String> {
        self.subscribed_names().into_iter().collect()
    }

    /// Number of partitions a member holds (for descriptions and tests).
    pub fn assigned_count(&self, member_id: &str) -> usize {
        self.members
            .get(member_id)
            .map(|m| partitions_in(&m.assigned))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(7);

    fn image(partitions: i32) -> TopicImage {
        [("t".to_string(), (T, partitions))].into()
    }

    fn settings() -> Settings {
        Settings {
            session_timeout_ms: 10_000,
            assignors: vec!["uniform".into(), "range".into()],
            max_size: 100,
        }
    }

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 5_000,
            topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Default::default()
        }
    }

    fn parts(a: &Option<Assignment>) -> Vec<i32> {
        a.as_ref()
            .and_then(|a| a.get(&T))
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }

    fn of(ps: &[i32]) -> Assignment {
        if ps.is_empty() {
            return Assignment::new();
        }
        [(T, ps.iter().copied().collect())].into()
    }

    #[test]
    fn partitions_move_only_after_the_previous_owner_revoked_them() {
        let mut g = ConsumerGroup::new("g");
        let (img, s) = (image(4), settings());
        let r = g.heartbeat(join("a"), &img, &s, 0).unwrap();
        assert_eq!(
            (r.member_epoch, parts(&r.assignment)),
            (1, vec![0, 1, 2, 3])
        );
        let a_epoch = r.member_epoch;
        // b joins: the target splits, but a still owns 2 and 3.
        let r = g.heartbeat(join("b"), &img, &s, 10).unwrap();
        assert_eq!(r.member_epoch, 2);
        assert_eq!(parts(&r.assignment), Vec::<i32>::new());
        assert_eq!(g.state(), "Reconciling");
        // a is told to keep 0,1 (revocation) and stays at its epoch.
        let r = g
            .heartbeat(beat("a", a_epoch, &of(&[0, 1, 2, 3])), &img, &s, 20)
            .unwrap();
        assert_eq!((r.member_epoch, parts(&r.assignment)), (1, vec![0, 1]));
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        // b's heartbeat cannot get 2,3 yet: a has not acknowledged.
        let r = g.heartbeat(beat("b", 2, &of(&[])), &img, &s, 30).unwrap();
        assert_eq!((r.member_epoch, r.assignment), (2, None));
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        // a acknowledges; it moves to epoch 2 with 0,1.
        let r = g
            .heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 40)
            .unwrap();
        assert_eq!(r.member_epoch, 2);
        // Now b gets them.
        let r = g.heartbeat(beat("b", 2, &of(&[])), &img, &s, 50).unwrap();
        assert_eq!((r.member_epoch, parts(&r.assignment)), (2, vec![2, 3]));
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn epochs_are_checked_and_a_lost_response_is_tolerated() {
        let mut g = ConsumerGroup::new("g");
        let (img, s) = (image(2), settings());
        g.heartbeat(join("a"), &img, &s, 0).unwrap();
        let fenced = ResponseError::FencedMemberEpoch.code();
        assert_eq!(
            g.heartbeat(beat("a", 5, &of(&[])), &img, &s, 1)
                .unwrap_err()
                .0,
            fenced
        );
        assert_eq!(
            g.heartbeat(beat("x", 1, &of(&[])), &img, &s, 1)
                .unwrap_err()
                .0,
            ResponseError::UnknownMemberId.code()
        );
        // a is at epoch 1 (previous 0); a heartbeat at epoch 0 that is not
        // a join (owned partitions are a subset) is the lost-response case.
        g.heartbeat(join("b"), &img, &s, 2).unwrap();
        g.heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 3)
            .unwrap();
        g.heartbeat(beat("a", 1, &of(&[0])), &img, &s, 4).unwrap();
        assert_eq!(g.members["a"].epoch, 2);
        assert_eq!(g.members["a"].previous_epoch, 1);
        assert!(g.heartbeat(beat("a", 1, &of(&[0])), &img, &s, 5).is_ok());
        assert_eq!(
            g.heartbeat(beat("a", 1, &of(&[1])), &img, &s, 5)
                .unwrap_err()
                .0,
            fenced
        );
        // A rejoin with the same id starts over from nothing owned.
        let r = g.heartbeat(join("a"), &img, &s, 6).unwrap();
        assert_eq!(r.member_epoch, 2);
        assert_eq!(parts(&r.assignment), vec![0]);
    }

    #[test]
    fn leave_and_session_timeout_hand_partitions_over() {
        let mut g = ConsumerGroup::new("g");
        let (img, s) = (image(2), settings());
        g.heartbeat(join("a"), &img, &s, 0).unwrap();
        g.heartbeat(join("b"), &img, &s, 0).unwrap();
        g.heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 1)
            .unwrap();
        g.heartbeat(beat("a", 1, &of(&[0])), &img, &s, 2).unwrap();
        g.heartbeat(beat("b", 2, &of(&[])), &img, &s, 3).unwrap();
        assert_eq!(g.assigned_count("b"), 1);
        let mut leave = beat("a", -1, &of(&[]));
        leave.owned = None;
        let r = g.heartbeat(leave, &img, &s, 4).unwrap();
        assert_eq!(r.member_epoch, -1);
        let r = g.heartbeat(beat("b", 2, &of(&[1])), &img, &s, 5).unwrap();
        assert_eq!(parts(&r.assignment), vec![0, 1]);
        // b stops heartbeating: the session expires and the group empties.
        assert!(g.tick(5 + 9_999).is_empty());
        assert_eq!(g.tick(5 + 10_000), vec!["b".to_string()]);
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn an_unrevoking_member_is_fenced_at_its_rebalance_timeout() {
        let mut g = ConsumerGroup::new("g");
        let (img, s) = (image(2), settings());
        g.heartbeat(join("a"), &img, &s, 0).unwrap();
        g.heartbeat(join("b"), &img, &s, 0).unwrap();
        g.heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 100)
            .unwrap();
        // a keeps heartbeating without revoking; 5 s rebalance timeout.
        g.heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 4_000)
            .unwrap();
        assert!(g.tick(5_099).is_empty());
        assert_eq!(g.tick(5_100), vec!["a".to_string()]);
        let r = g
            .heartbeat(beat("b", 2, &of(&[])), &img, &s, 5_200)
            .unwrap();
        assert_eq!(parts(&r.assignment), vec![0, 1]);
    }

    #[test]
    fn static_members_leave_temporarily_and_come_back_without_a_rebalance() {
        let mut g = ConsumerGroup::new("g");
        let (img, s) = (image(2), settings());
        let mut j = join("a");
        j.instance_id = Some("i1".into());
        g.heartbeat(j.clone(), &img, &s, 0).unwrap();
        g.heartbeat(join("b"), &img, &s, 0).unwrap();
        g.heartbeat(beat("a", 1, &of(&[0, 1])), &img, &s, 1)
            .unwrap();
        g.heartbeat(beat("a", 1, &of(&[0])), &img, &s, 2).unwrap();
        g.heartbeat(beat("b", 2, &of(&[])), &img, &s, 3).unwrap();
        let epoch = g.group_epoch;
        // Another process with the same instance id while a is active.
        let mut dup = join("c");
        dup.instance_id = Some("i1".into());
        assert_eq!(
            g.heartbeat(dup.clone(), &img, &s, 4).unwrap_err().0,
            ResponseError::UnreleasedInstanceId.code()
        );
        assert_eq!(g.group_epoch, epoch, "a refused join changes nothing");
        let mut leave = beat("a", -2, &of(&[]));
        leave.instance_id = Some("i1".into());
        assert_eq!(g.heartbeat(leave, &img, &s, 5).unwrap().member_epoch, -2);
        assert_eq!(g.group_epoch, epoch);
        // It comes back under a new member id with its partition, b untouched.
        let r = g.heartbeat(dup, &img, &s, 6).unwrap();
        assert_eq!((r.member_id.as_str(), parts(&r.assignment)), ("c", vec![0]));
        assert_eq!(g.group_epoch, epoch);
        assert_eq!(g.assigned_count("b"), 1);
        assert!(!g.members.contains_key("a"));
    }

    #[test]
    fn regex_is_resolved_after_the_heartbeat_that_brings_it() {
        let mut g = ConsumerGroup::new("g");
        let s = settings();
        let u = Uuid::from_u128(9);
        let mut img = image(2);
        img.insert("other-1".into(), (u, 1));
        let mut j = join("a");
        j.regex = Some("other-.*".into());
        let r = g.heartbeat(j, &img, &s, 0).unwrap();
        // Literal topics only at first.
        assert_eq!(r.assignment.as_ref().map(|a| a.len()), Some(1));
        let r = g
            .heartbeat(beat("a", r.member_epoch, &of(&[0, 1])), &img, &s, 1)
            .unwrap();
        let a = r.assignment.expect("changed");
        assert_eq!(a.get(&u).map(|p| p.len()), Some(1));
        // A topic created later is picked up; a prefix-only match is not.
        img.insert("other-2".into(), (Uuid::from_u128(10), 2));
        img.insert("xother-3".into(), (Uuid::from_u128(11), 2));
        // Picked up once the topic set has been quiet for a while, so
        // topics created together arrive together.
        let r = g
            .heartbeat(beat("a", r.member_epoch, &a), &img, &s, 2)
            .unwrap();
        assert_eq!(r.assignment, None);
        let r = g
            .heartbeat(beat("a", r.member_epoch, &a), &img, &s, 502)
            .unwrap();
        let a = r.assignment.expect("changed");
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn deleted_topic_and_new_partitions_change_the_target() {
        let mut g = ConsumerGroup::new("g");
        let s = settings();
        let r = g.heartbeat(join("a"), &image(2), &s, 0).unwrap();
        let r = g
            .heartbeat(beat("a", r.member_epoch, &of(&[0, 1])), &image(3), &s, 1)
            .unwrap();
        assert_eq!(parts(&r.assignment), vec![0, 1, 2]);
        let r = g
            .heartbeat(
                beat("a", r.member_epoch, &of(&[0, 1, 2])),
                &TopicImage::new(),
                &s,
                2,
            )
            .unwrap();
        // Revocation first (the topic is gone), then the empty assignment.
        assert_eq!(parts(&r.assignment), Vec::<i32>::new());
    }
}
