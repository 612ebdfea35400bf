//! Share group membership (ShareGroupHeartbeat, KIP-932) as a pure state
//! machine with an injected clock.
//!
//! Members are identified by the id the *client* generates; they join with
//! epoch 0 (also to rejoin after being fenced, keeping their id), heartbeat
//! with their current epoch and leave with -1. The group epoch bumps on
//! every join, leave, expiry and subscription change; a member's epoch is
//! the group epoch of its last assignment.
//!
//! Assignment: delivery is per record, so every member is assigned every
//! partition of the topics it subscribes to (the notes allow this on one
//! node: it is balanced, and competing members share each partition).
//! Topics are resolved at each heartbeat, so topics created later and new
//! partitions reach the members by the next heartbeat.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

/// Topic id -> partitions.
pub type Assignment = BTreeMap<uuid::Uuid, Vec<i32>>;
/// Resolves subscribed topic names to the assignment of what exists.
pub type Resolver<'a> = dyn Fn(&[String]) -> Assignment + Sync + 'a;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub id: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    pub rack: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub last_heartbeat_ms: i64,
    /// The assignment last sent: (topic id, partitions).
    pub assignment: Assignment,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareGroup {
    pub id: String,
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
}

/// A heartbeat as the coordinator sees it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer: the member's epoch and, when it changed or the member
/// (re)joined, its full assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

impl ShareGroup {
    pub fn new(id: &str) -> ShareGroup {
        ShareGroup {
            id: id.to_string(),
            ..Default::default()
        }
    }

    /// "Empty" or "Stable" (Kafka's share group states).
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Applies a heartbeat. `resolve` maps the member's topic names to
    /// (topic id, partition count) for the topics that exist.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        now: i64,
        max_size: usize,
        resolve: &Resolver,
    ) -> Result<HeartbeatOutcome, i16> {
        if hb.member_epoch == -1 {
            if self.members.remove(&hb.member_id).is_some() {
                self.epoch += 1;
            }
            return Ok(HeartbeatOutcome {
                member_epoch: -1,
                assignment: None,
            });
        }
        let joining = hb.member_epoch == 0;
        if joining {
            if !self.members.contains_key(&hb.member_id) && self.members.len() >= max_size {
                return Err(ResponseError::GroupMaxSizeReached.code());
            }
            let subscribed = hb
                .subscribed
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or(ResponseError::InvalidRequest.code())?;
            self.epoch += 1;
            self.members.insert(
                hb.member_id.clone(),
                ShareMember {
                    id: hb.member_id.clone(),
                    epoch: self.epoch,
                    subscribed,
                    rack: hb.rack.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    last_heartbeat_ms: now,
                    assignment: BTreeMap::new(),
                },
            );
        }
        let epoch = self.epoch;
        let member = self
            .members
            .get_mut(&hb.member_id)
            .ok_or(ResponseError::UnknownMemberId.code())?;
        // The previous epoch is accepted: a response may have been lost.
        if !joining
            && hb.member_epoch != member.epoch
            && hb.member_epoch.checked_add(1) != Some(member.epoch)
        {
            return Err(ResponseError::FencedMemberEpoch.code());
        }
        member.last_heartbeat_ms = now;
        if let Some(s) = hb.subscribed.filter(|s| !s.is_empty()) {
            if s != member.subscribed {
                member.subscribed = s;
            }
        }
        let target = resolve(&member.subscribed);
        let changed = target != member.assignment;
        if changed {
            member.assignment = target;
            member.epoch = epoch.max(member.epoch + 1);
        }
        let member_epoch = member.epoch;
        if changed && !joining {
            self.epoch = self.epoch.max(member_epoch);
        }
        Ok(HeartbeatOutcome {
            member_epoch,
            assignment: (joining || changed)
                .then(|| self.members[&hb.member_id].assignment.clone()),
        })
    }

    /// Removes members silent for longer than the session timeout;
    /// returns their ids.
    pub fn expire(&mut self, now: i64, session_timeout_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now - m.last_heartbeat_ms > session_timeout_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.epoch += 1;
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: &str, epoch: i32, topics: Option<&[&str]>) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rack: None,
            subscribed: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            client_id: "c".into(),
            client_host: "h".into(),
        }
    }

    fn topic_id(n: u8) -> uuid::Uuid {
        uuid::Uuid::from_bytes([n; 16])
    }

    #[test]
    fn join_heartbeat_leave_fence_and_new_topics() {
        let mut g = ShareGroup::new("g");
        let mut parts = 1;
        let resolve = |parts: i32| {
            move |topics: &[String]| -> BTreeMap<uuid::Uuid, Vec<i32>> {
                topics
                    .iter()
                    .filter(|t| t.as_str() == "t")
                    .map(|_| (topic_id(1), (0..parts).collect()))
                    .collect()
            }
        };
        let a = g
            .heartbeat(hb("a", 0, Some(&["t"])), 0, 10, &resolve(parts))
            .unwrap();
        assert_eq!(a.assignment.unwrap()[&topic_id(1)], vec![0]);
        let b = g
            .heartbeat(hb("b", 0, Some(&["t"])), 0, 10, &resolve(parts))
            .unwrap();
        assert!(b.member_epoch > a.member_epoch);
        // Both own the partition: a share group shares it.
        assert_eq!(b.assignment.unwrap()[&topic_id(1)], vec![0]);
        // A steady heartbeat carries no assignment; a wrong epoch is fenced.
        let same = g
            .heartbeat(hb("a", a.member_epoch, None), 1, 10, &resolve(parts))
            .unwrap();
        assert_eq!(same.assignment, None);
        assert_eq!(
            g.heartbeat(hb("a", 99, None), 1, 10, &resolve(parts)),
            Err(ResponseError::FencedMemberEpoch.code())
        );
        // Hostile epochs at the edges of i32 are fenced, not overflowed.
        for epoch in [i32::MAX, i32::MIN] {
            assert_eq!(
                g.heartbeat(hb("a", epoch, None), 1, 10, &resolve(parts)),
                Err(ResponseError::FencedMemberEpoch.code())
            );
        }
        // Partitions added: the next heartbeat brings the new assignment.
        parts = 3;
        let grown = g
            .heartbeat(hb("a", a.member_epoch, None), 2, 10, &resolve(parts))
            .unwrap();
        assert_eq!(grown.assignment.unwrap()[&topic_id(1)], vec![0, 1, 2]);
        assert!(grown.member_epoch > a.member_epoch);
        // Leave, unknown member, rejoin with the same id.
        assert_eq!(
            g.heartbeat(hb("b", -1, None), 3, 10, &resolve(parts))
                .unwrap()
                .member_epoch,
            -1
        );
        assert_eq!(
            g.heartbeat(hb("b", 5, None), 3, 10, &resolve(parts)),
            Err(ResponseError::UnknownMemberId.code())
        );
        assert!(g
            .heartbeat(hb("b", 0, Some(&["t"])), 3, 10, &resolve(parts))
            .is_ok());
        assert_eq!(
            g.heartbeat(hb("c", 0, Some(&["t"])), 3, 2, &resolve(parts)),
            Err(ResponseError::GroupMaxSizeReached.code())
        );
        assert_eq!(
            g.heartbeat(hb("d", 0, None), 3, 10, &resolve(parts)),
            Err(ResponseError::InvalidRequest.code())
        );
    }

    #[test]
    fn silent_members_expire() {
        let mut g = ShareGroup::new("g");
        let none = |_: &[String]| BTreeMap::new();
        g.heartbeat(hb("a", 0, Some(&["t"])), 0, 10, &none).unwrap();
        g.heartbeat(hb("b", 0, Some(&["t"])), 900, 10, &none)
            .unwrap();
        assert_eq!(g.expire(1001, 1000), vec!["a".to_string()]);
        assert_eq!(g.state(), "Stable");
        assert_eq!(g.expire(5000, 1000), vec!["b".to_string()]);
        assert_eq!(g.state(), "Empty");
    }
}
