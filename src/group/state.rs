//! The classic group state machine, with time passed in (milliseconds) so it
//! can be driven by tests without sleeping.
//!
//! A member's JoinGroup and SyncGroup responses are delivered through
//! oneshot channels stored on the member while the request waits for the
//! rebalance to progress; the caller awaits the receiver without any lock.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

/// Classic group states, as in Kafka's `ClassicGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members. Offsets may be committed by anyone (standalone commits)
    /// and expire after `offsets-retention-minutes`. A JoinGroup moves the
    /// group to PreparingRebalance; DeleteGroups to Dead.
    Empty,
    /// Waiting for every member to (re)join. Heartbeats get
    /// REBALANCE_IN_PROGRESS; commits from the current generation are still
    /// accepted. When all members have joined (or the rebalance timeout
    /// evicts the rest) -> CompletingRebalance, or Empty if none are left.
    PreparingRebalance,
    /// Join responses sent; waiting for the leader's SyncGroup with the
    /// assignment. Heartbeats get REBALANCE_IN_PROGRESS. The leader's sync
    /// -> Stable; a member joining, leaving or timing out -> PreparingRebalance.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat. A new member, a metadata
    /// change, the leader rejoining, a leave or a session timeout ->
    /// PreparingRebalance.
    Stable,
    /// Deleted: no transitions out; requests are answered as if the group
    /// did not exist.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Timeouts and limits of the coordinator.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_group_size: usize,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    fn error(member_id: &str, code: i16) -> JoinOutcome {
        JoinOutcome {
            error: code,
            generation: -1,
            member_id: member_id.into(),
            ..Default::default()
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// A SyncGroup from one member; the leader's carries the assignments.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat_ms: i64,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// A member restored from the log: alive as of `now`, with the chosen
    /// protocol's metadata only.
    pub fn restored(m: crate::group::store::MemberSnapshot, protocol: &str, now: i64) -> Member {
        Member {
            id: m.id,
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: vec![(protocol.to_string(), m.subscription)],
            assignment: m.assignment,
            last_heartbeat_ms: now,
            join_waiter: None,
            sync_waiter: None,
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending: HashMap<String, i64>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    rebalance_deadline_ms: i64,
    /// Earliest completion of the current join phase (initial delay).
    complete_not_before_ms: i64,
    /// The current join phase started from Empty (the group's first members).
    joining_from_empty: bool,
    /// Recent FindCoordinator lookups of this group, and until when they
    /// count (see [`Group::expect_joiners`]).
    recent_lookups: usize,
    expect_until_ms: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// When the group last became Empty (for offset retention).
    pub empty_since_ms: i64,
    /// Group metadata changed and must be persisted.
    pub dirty: bool,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.into(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            complete_not_before_ms: 0,
            joining_from_empty: false,
            recent_lookups: 0,
            expect_until_ms: 0,
            offsets: BTreeMap::new(),
            empty_since_ms: now,
            dirty: false,
        }
    }

    /// Rebuilds a group's membership from its persisted form.
    pub fn restore(
        &mut self,
        generation: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader: Option<String>,
        members: Vec<Member>,
        now: i64,
    ) {
        self.generation = generation;
        self.protocol_type = protocol_type;
        self.protocol_name = protocol_name;
        self.leader = leader;
        self.members.clear();
        self.static_members.clear();
        for m in members {
            if let Some(i) = &m.instance_id {
                self.static_members.insert(i.clone(), m.id.clone());
            }
            self.members.insert(m.id.clone(), m);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.empty_since_ms = now;
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// JoinGroup. The outcome is sent on `tx`, now or when the rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        cfg: &GroupConfig,
        now: i64,
    ) {
        if self.state == GroupState::Dead {
            let _ = tx.send(JoinOutcome::error(
                &req.member_id,
                code(ResponseError::CoordinatorNotAvailable),
            ));
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = tx.send(JoinOutcome::error(
                &req.member_id,
                code(ResponseError::InconsistentGroupProtocol),
            ));
            return;
        }
        if req.member_id.is_empty() {
            let new_id = format!(
                "{}-{}",
                if req.client_id.is_empty() {
                    "member"
                } else {
                    &req.client_id
                },
                uuid::Uuid::new_v4()
            );
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old_id) = self.static_members.get(&instance).cloned() {
                    return self.replace_static_member(old_id, new_id, req, tx, now);
                }
            } else if req.require_known_member_id {
                // The member must come back with this id: until then it
                // counts as pending, and the join phase waits for it.
                self.pending
                    .insert(new_id.clone(), now + req.session_timeout_ms as i64);
                let _ = tx.send(JoinOutcome::error(
                    &new_id,
                    code(ResponseError::MemberIdRequired),
                ));
                return;
            }
            if self.members.len() >= cfg.max_group_size {
                let _ = tx.send(JoinOutcome::error(
                    "",
                    code(ResponseError::GroupMaxSizeReached),
                ));
                return;
            }
            return self.add_member_and_rebalance(new_id, req, tx, cfg, now);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, tx, cfg, now);
        }
        if let Some(err) = self.check_member(&req.member_id, req.instance_id.as_deref()) {
            let _ = tx.send(JoinOutcome::error(&req.member_id, err));
            return;
        }
        let id = req.member_id.clone();
        let member = self.members.get_mut(&id).expect("checked");
        let unchanged = member.protocols == req.protocols;
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&id, req, tx);
                self.maybe_complete_join(now);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && !(self.state == GroupState::Stable
                        && self.leader.as_deref() == Some(&id)) =>
            {
                // Nothing changed for this member: repeat the current generation.
                let outcome = self.join_outcome_for(&id);
                let _ = tx.send(outcome);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // New metadata, or the leader rejoining: rebalance.
                self.update_member(&id, req, tx);
                self.prepare_rebalance(cfg, now);
                self.maybe_complete_join(now);
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(JoinOutcome::error(
                    &id,
                    code(ResponseError::UnknownMemberId),
                ));
            }
        }
    }

    /// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by all member requests.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => {
                    return Some(code(ResponseError::FencedInstanceId))
                }
                None if !self.members.contains_key(member_id) => {
                    return Some(code(ResponseError::UnknownMemberId))
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(code(ResponseError::UnknownMemberId));
        }
        None
    }

    fn update_member(&mut self, id: &str, req: JoinRequest, tx: oneshot::Sender<JoinOutcome>) {
        let m = self.members.get_mut(id).expect("member exists");
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.join_waiter = Some(tx);
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        cfg: &GroupConfig,
        now: i64,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat_ms: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        self.prepare_rebalance(cfg, now);
        self.maybe_complete_join(now);
    }

    /// A static member restarted (new member id, same group.instance.id):
    /// it takes over the old member's place; the old id is fenced. With
    /// unchanged metadata in a Stable group, no rebalance happens.
    fn replace_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinOutcome>,
        now: i64,
    ) {
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            let _ = tx.send(JoinOutcome::error(
                &new_id,
                code(ResponseError::UnknownMemberId),
            ));
            return;
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(
                &old_id,
                code(ResponseError::FencedInstanceId),
            ));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome {
                error: code(ResponseError::FencedInstanceId),
                ..Default::default()
            });
        }
        let unchanged = member.protocols == req.protocols;
        member.id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.last_heartbeat_ms = now;
        let instance = req.instance_id.clone().expect("static member");
        self.static_members.insert(instance, new_id.clone());
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if unchanged => {
                self.members.insert(new_id.clone(), member);
                self.dirty = true;
                let mut outcome = self.join_outcome_for(&new_id);
                // The assignment is unchanged; a leader need not compute it again.
                outcome.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
                let _ = tx.send(outcome);
            }
            _ => {
                member.protocols = req.protocols;
                member.join_waiter = Some(tx);
                self.members.insert(new_id, member);
                self.prepare_rebalance_with(self.max_rebalance_timeout(), 0, now);
                self.maybe_complete_join(now);
            }
        }
    }

    /// The current generation as seen by `member_id`.
    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.into(),
            skip_assignment: false,
            members: if is_leader {
                self.member_list()
            } else {
                Vec::new()
            },
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let proto = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&proto)))
            .collect()
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now: i64) {
        let delay = if self.state == GroupState::Empty {
            cfg.initial_rebalance_delay_ms as i64
        } else {
            0
        };
        self.prepare_rebalance_with(self.max_rebalance_timeout().max(delay), delay, now);
    }

    fn prepare_rebalance_with(&mut self, timeout_ms: i64, delay_ms: i64, now: i64) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment must rejoin instead.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome {
                        error: code(ResponseError::RebalanceInProgress),
                        ..Default::default()
                    });
                }
            }
        }
        self.joining_from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline_ms = now + timeout_ms;
        self.complete_not_before_ms = now + delay_ms;
    }

    /// Tells the group how many FindCoordinator lookups of it were seen
    /// recently (the first step of every join) and until when they count.
    /// A client looks its group up at most about twice before joining
    /// (librdkafka: once per connection), so more than two lookups per
    /// joined or pending member means another consumer is on its way.
    pub fn expect_joiners(&mut self, lookups: usize, until_ms: i64) {
        self.recent_lookups = lookups;
        self.expect_until_ms = until_ms;
    }

    /// Completes the join phase once every member (and every member that
    /// was just handed an id) has joined: no fixed delay. Only the first
    /// rebalance of an empty group also waits, briefly, for consumers that
    /// have just looked the group up and whose JoinGroup is in flight, so
    /// consumers started together settle in one generation; a lone consumer
    /// never waits.
    fn maybe_complete_join(&mut self, now: i64) {
        let announced_missing = self.joining_from_empty
            && self.recent_lookups > 2 * (self.members.len() + self.pending.len())
            && now < self.expect_until_ms;
        if self.state == GroupState::PreparingRebalance
            && self.pending.is_empty()
            && !announced_missing
            && now >= self.complete_not_before_ms
            && self.members.values().all(|m| m.join_waiter.is_some())
        {
            self.complete_join(now);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, a new
    /// generation starts, the protocol is chosen and join responses go out.
    fn complete_join(&mut self, now: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member_silently(&id);
        }
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.become_empty(now);
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            let m = self.members.get_mut(&id).expect("member");
            m.last_heartbeat_ms = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(outcome);
            }
        }
    }

    fn become_empty(&mut self, now: i64) {
        self.state = GroupState::Empty;
        // Kafka keeps the protocol type of a group whose members left (it
        // is what tells a consumer group from a "simple" one that only
        // ever had offsets committed); the next member may bring another.
        self.protocol_name = None;
        self.leader = None;
        self.empty_since_ms = now;
        self.dirty = true;
    }

    /// The protocol every member supports with the most first-preference
    /// votes (ties: the leader's preference order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = candidates
            .iter()
            .map(|c| votes.get(c).copied().unwrap_or(0))
            .max()?;
        candidates
            .into_iter()
            .find(|c| votes.get(c).copied().unwrap_or(0) == best)
            .cloned()
    }

    /// SyncGroup. The outcome is sent on `tx`, now or when the leader syncs.
    pub fn sync(&mut self, req: SyncRequest, tx: oneshot::Sender<SyncOutcome>, now: i64) {
        let SyncRequest {
            member_id,
            instance_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
        } = req;
        let (member_id, instance_id) = (member_id.as_str(), instance_id.as_deref());
        let (protocol_type, protocol_name) = (protocol_type.as_deref(), protocol_name.as_deref());
        let fail = |tx: oneshot::Sender<SyncOutcome>, e: ResponseError| {
            let _ = tx.send(SyncOutcome {
                error: code(e),
                ..Default::default()
            });
        };
        if matches!(self.state, GroupState::Dead | GroupState::Empty) {
            return fail(tx, ResponseError::UnknownMemberId);
        }
        if let Some(err) = self.check_member(member_id, instance_id) {
            let _ = tx.send(SyncOutcome {
                error: err,
                ..Default::default()
            });
            return;
        }
        if generation != self.generation {
            return fail(tx, ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol_name.as_deref())
        {
            return fail(tx, ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::PreparingRebalance => fail(tx, ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                        m.last_heartbeat_ms = now;
                    }
                    self.state = GroupState::Stable;
                    self.dirty = true;
                    let (pt, pn) = (self.protocol_type.clone(), self.protocol_name.clone());
                    for m in self.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncOutcome {
                                error: 0,
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
            }
            GroupState::Stable => {
                let m = &self.members[member_id];
                let _ = tx.send(SyncOutcome {
                    error: 0,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
            }
            GroupState::Empty | GroupState::Dead => unreachable!("handled above"),
        }
    }

    /// Heartbeat: keeps a member alive; tells it to rejoin during rebalances.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> i16 {
        match self.state {
            GroupState::Dead => return code(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty => return code(ResponseError::UnknownMemberId),
            _ => {}
        }
        if let Some(err) = self.check_member(member_id, instance_id) {
            return err;
        }
        self.members
            .get_mut(member_id)
            .expect("checked")
            .last_heartbeat_ms = now;
        match self.state {
            GroupState::PreparingRebalance | GroupState::CompletingRebalance => {
                code(ResponseError::RebalanceInProgress)
            }
            _ if generation != self.generation => code(ResponseError::IllegalGeneration),
            _ => 0,
        }
    }

    /// LeaveGroup for one member identity; returns its error code.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
        now: i64,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return code(ResponseError::UnknownMemberId),
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return code(ResponseError::FencedInstanceId)
                }
                Some(current) => current.clone(),
            },
            None => {
                if self.pending.remove(member_id).is_some() {
                    self.maybe_complete_join(now);
                    return 0;
                }
                if !self.members.contains_key(member_id) {
                    return code(ResponseError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        self.remove_member(&id, cfg, now);
        0
    }

    fn remove_member_silently(&mut self, id: &str) -> Option<Member> {
        let mut m = self.members.shift_remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(id) {
                self.static_members.remove(i);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(id, code(ResponseError::UnknownMemberId)));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome {
                error: code(ResponseError::UnknownMemberId),
                ..Default::default()
            });
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(m)
    }

    /// Removes a member and rebalances the rest.
    fn remove_member(&mut self, id: &str, cfg: &GroupConfig, now: i64) {
        if self.remove_member_silently(id).is_none() {
            return;
        }
        self.dirty = true;
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(cfg, now);
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires sessions, pending members and rebalance deadlines.
    pub fn tick(&mut self, cfg: &GroupConfig, now: i64) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !(self.state == GroupState::PreparingRebalance && m.join_waiter.is_some()))
            .filter(|m| m.last_heartbeat_ms + m.session_timeout_ms as i64 <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired; removing it");
            self.remove_member(&id, cfg, now);
        }
        if self.state == GroupState::PreparingRebalance {
            if now >= self.rebalance_deadline_ms {
                self.complete_join(now);
            } else {
                // Pending members expired, the initial delay or the wait for
                // announced joiners ended: maybe everyone is in now.
                self.maybe_complete_join(now);
            }
        }
    }

    /// Whether OffsetCommit from this member and generation is allowed;
    /// `Err` carries the error code for every partition.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        if generation < 0 && self.members.is_empty() {
            // Not a group member (admin, manual assignment): allowed while
            // the group is empty, whatever member id it sends (librdkafka's
            // KIP-848 consumer sends its own id with generation -1).
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() {
            // A standalone (manual assignment) commit: only without members.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(code(ResponseError::UnknownMemberId))
            };
        }
        if let Some(err) = self.check_member(member_id, instance_id) {
            return Err(err);
        }
        // Kafka's order: a commit from an older generation is
        // ILLEGAL_GENERATION even while the next one completes (clients
        // handle it without losing their assignment); only a member of the
        // current generation gets REBALANCE_IN_PROGRESS, until its
        // SyncGroup. PreparingRebalance accepts the current generation.
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        Ok(())
    }

    /// Topics the members of a "consumer" group subscribe to, from their
    /// subscription metadata; `None` if it cannot be read.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let proto = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&proto);
            if meta.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 100_000,
            initial_rebalance_delay_ms: 0,
            max_group_size: 100,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 1000,
        }
    }

    fn req(member: &str, proto: &str, meta: &'static [u8]) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 5000,
            protocol_type: "consumer".into(),
            protocols: vec![(proto.into(), Bytes::from_static(meta))],
            require_known_member_id: true,
        }
    }

    fn join(g: &mut Group, r: JoinRequest, now: i64) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        g.join(r, tx, &cfg(), now);
        rx
    }

    fn sync(
        g: &mut Group,
        id: &str,
        gen: i32,
        assign: Vec<(String, Bytes)>,
        now: i64,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        let req = SyncRequest {
            member_id: id.into(),
            generation: gen,
            assignments: assign,
            ..Default::default()
        };
        g.sync(req, tx, now);
        rx
    }

    /// Two-step join of a new dynamic member: MEMBER_ID_REQUIRED, then rejoin.
    fn new_member_id(g: &mut Group, now: i64) -> String {
        let out = join(g, req("", "range", b"m"), now).try_recv().unwrap();
        assert_eq!(out.error, code(ResponseError::MemberIdRequired));
        out.member_id
    }

    #[test]
    fn lone_member_completes_at_once() {
        let mut g = Group::new("g", 0);
        let id = new_member_id(&mut g, 0);
        let out = join(&mut g, req(&id, "range", b"m"), 1).try_recv().unwrap();
        assert_eq!(
            (out.error, out.generation, out.leader.as_str()),
            (0, 1, id.as_str())
        );
        assert_eq!(out.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let s = sync(
            &mut g,
            &id,
            1,
            vec![(id.clone(), Bytes::from_static(b"A"))],
            2,
        )
        .try_recv()
        .unwrap();
        assert_eq!((s.error, &s.assignment[..]), (0, &b"A"[..]));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, 3), 0);
        assert_eq!(
            g.heartbeat(&id, None, 0, 3),
            code(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("who", None, 1, 3),
            code(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn simultaneous_joiners_settle_in_one_generation() {
        let mut g = Group::new("g", 0);
        let a = new_member_id(&mut g, 0);
        let b = new_member_id(&mut g, 0);
        let mut ra = join(&mut g, req(&a, "range", b"m"), 1);
        assert!(ra.try_recv().is_err(), "waits for the pending member");
        let rb = join(&mut g, req(&b, "range", b"m"), 2).try_recv().unwrap();
        let ra = ra.try_recv().unwrap();
        assert_eq!((ra.generation, rb.generation), (1, 1));
        assert_eq!(
            ra.members.len() + rb.members.len(),
            2,
            "only the leader gets the member list"
        );
    }

    #[test]
    fn first_join_waits_briefly_for_announced_consumers_only() {
        // Three consumers looked the group up; the first to join waits for
        // the others instead of completing alone.
        let mut g = Group::new("g", 0);
        g.expect_joiners(6, 250);
        let a = new_member_id(&mut g, 0);
        let mut ra = join(&mut g, req(&a, "range", b"m"), 1);
        assert!(ra.try_recv().is_err());
        let b = new_member_id(&mut g, 5);
        let mut rb = join(&mut g, req(&b, "range", b"m"), 6);
        assert!(rb.try_recv().is_err());
        let c = new_member_id(&mut g, 8);
        let rc = join(&mut g, req(&c, "range", b"m"), 9).try_recv().unwrap();
        assert_eq!(
            (
                ra.try_recv().unwrap().generation,
                rb.try_recv().unwrap().generation,
                rc.generation
            ),
            (1, 1, 1)
        );
        // An announced consumer that never joins delays the others only
        // until the announcement window ends.
        let mut g = Group::new("h", 0);
        g.expect_joiners(4, 250);
        let a = new_member_id(&mut g, 0);
        let mut ra = join(&mut g, req(&a, "range", b"m"), 1);
        g.tick(&cfg(), 100);
        assert!(ra.try_recv().is_err());
        g.tick(&cfg(), 250);
        assert_eq!(ra.try_recv().unwrap().generation, 1);
        // A lone consumer (its own one or two lookups) never waits.
        let mut g = Group::new("i", 0);
        g.expect_joiners(2, 250);
        let a = new_member_id(&mut g, 0);
        assert_eq!(
            join(&mut g, req(&a, "range", b"m"), 1)
                .try_recv()
                .unwrap()
                .generation,
            1
        );
    }

    #[test]
    fn follower_learns_of_rebalance_by_heartbeat_and_timeouts_evict() {
        let mut g = Group::new("g", 0);
        let a = new_member_id(&mut g, 0);
        join(&mut g, req(&a, "range", b"m"), 0);
        sync(&mut g, &a, 1, vec![], 0);
        let b = new_member_id(&mut g, 10);
        let mut rb = join(&mut g, req(&b, "range", b"m"), 10);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&a, None, 1, 20),
            code(ResponseError::RebalanceInProgress)
        );
        // `a` keeps heartbeating but never rejoins: the rebalance timeout
        // (5 s), not its session, evicts it.
        for t in (500..5000).step_by(500) {
            assert_eq!(
                g.heartbeat(&a, None, 1, t),
                code(ResponseError::RebalanceInProgress)
            );
            g.tick(&cfg(), t);
        }
        assert!(rb.try_recv().is_err());
        g.tick(&cfg(), 5010);
        let out = rb.try_recv().unwrap();
        assert_eq!((out.generation, out.leader.as_str()), (2, b.as_str()));
        assert!(!g.members.contains_key(&a));
        // `b` stops heartbeating: its 1 s session expires, the group empties.
        sync(&mut g, &b, 2, vec![], 5010);
        g.tick(&cfg(), 6020);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, 3);
    }

    #[test]
    fn protocol_selection_and_inconsistency() {
        let mut g = Group::new("g", 0);
        let a = new_member_id(&mut g, 0);
        let mut r = req(&a, "range", b"m");
        r.protocols = vec![
            ("cooperative-sticky".into(), Bytes::new()),
            ("range".into(), Bytes::new()),
        ];
        let mut ra = join(&mut g, r, 0);
        let out = ra.try_recv().unwrap();
        assert_eq!(out.protocol_name.as_deref(), Some("cooperative-sticky"));
        let mut bad = req("", "roundrobin", b"m");
        bad.require_known_member_id = false;
        assert_eq!(
            join(&mut g, bad, 1).try_recv().unwrap().error,
            code(ResponseError::InconsistentGroupProtocol)
        );
        let mut other_type = req("", "range", b"m");
        other_type.protocol_type = "connect".into();
        assert_eq!(
            join(&mut g, other_type, 1).try_recv().unwrap().error,
            code(ResponseError::InconsistentGroupProtocol)
        );
    }

    #[test]
    fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
        let mut g = Group::new("g", 0);
        let mut r = req("", "range", b"m");
        r.instance_id = Some("i1".into());
        let out = join(&mut g, r.clone(), 0).try_recv().unwrap();
        assert_eq!(out.error, 0, "static members skip MEMBER_ID_REQUIRED");
        let old = out.member_id;
        sync(
            &mut g,
            &old,
            1,
            vec![(old.clone(), Bytes::from_static(b"A"))],
            0,
        );
        // Restart: same instance id, empty member id, same metadata.
        let out = join(&mut g, r, 100).try_recv().unwrap();
        assert_eq!((out.error, out.generation), (0, 1));
        assert_ne!(out.member_id, old);
        assert_eq!(g.state, GroupState::Stable);
        let s = sync(&mut g, &out.member_id, 1, vec![], 101)
            .try_recv()
            .unwrap();
        assert_eq!(&s.assignment[..], b"A");
        assert_eq!(
            g.heartbeat(&old, Some("i1"), 1, 102),
            code(ResponseError::FencedInstanceId)
        );
        // Static members leave only with their instance id.
        assert_eq!(g.leave("", Some("i1"), &cfg(), 103), 0);
        assert_eq!(g.state, GroupState::Empty);
    }

    #[test]
    fn commit_validation() {
        let mut g = Group::new("g", 0);
        assert_eq!(g.validate_commit("", None, -1), Ok(()));
        let a = new_member_id(&mut g, 0);
        join(&mut g, req(&a, "range", b"m"), 0);
        assert_eq!(
            g.validate_commit("", None, -1),
            Err(code(ResponseError::UnknownMemberId))
        );
        assert_eq!(
            g.validate_commit(&a, None, 1),
            Err(code(ResponseError::RebalanceInProgress))
        );
        sync(&mut g, &a, 1, vec![], 0);
        assert_eq!(g.validate_commit(&a, None, 1), Ok(()));
        assert_eq!(
            g.validate_commit(&a, None, 0),
            Err(code(ResponseError::IllegalGeneration))
        );
        // A rejoin completes generation 2, which waits for SyncGroup: a
        // commit of generation 1 (sent by a client still finishing the
        // old assignment) is ILLEGAL_GENERATION, as in Kafka, which
        // clients handle without losing their assignment; generation 2
        // gets REBALANCE_IN_PROGRESS until it syncs.
        join(&mut g, req(&a, "range", b"m"), 0);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(
            g.validate_commit(&a, None, 1),
            Err(code(ResponseError::IllegalGeneration))
        );
        assert_eq!(
            g.validate_commit(&a, None, 2),
            Err(code(ResponseError::RebalanceInProgress))
        );
    }
}
