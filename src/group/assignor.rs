//! Server-side assignors of consumer-protocol groups (KIP-848): `uniform`
//! (the default) and `range`, with the layouts Kafka's group coordinator
//! computes (`UniformHomogeneousAssignmentBuilder`, `RangeAssignor`);
//! librdkafka's tests assert those layouts.
//!
//! Pure functions: members with their subscriptions and current target in,
//! the new target out. Topics are identified by id; `topics` gives each
//! subscribed topic's partition count.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions per topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub instance_id: Option<&'a str>,
    /// Topic ids the member subscribes to (existing topics only).
    pub topics: BTreeSet<Uuid>,
    /// The member's current target (stickiness input).
    pub current: &'a Assignment,
}

/// Assignor names Weir implements, in Kafka's default preference order.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Computes the target assignment of every member (same order as `members`).
/// `topics` maps topic id -> partition count, in the order partitions are
/// handed out (Weir passes topics sorted by name).
pub fn assign(
    assignor: &str,
    members: &[AssignorMember<'_>],
    topics: &[(Uuid, i32)],
) -> Vec<Assignment> {
    if members.is_empty() {
        return Vec::new();
    }
    match assignor {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn homogeneous(members: &[AssignorMember<'_>]) -> bool {
    members.windows(2).all(|w| w[0].topics == w[1].topics)
}

/// Kafka's uniform assignor. Homogeneous subscriptions: every member gets
/// `P / N` partitions and the first `P % N` members one more; members keep
/// what they had up to that quota (ascending partition ids), and the rest
/// (never-owned partitions in topic order first, then the dropped ones) go
/// to members with quota left, in member order. Heterogeneous
/// subscriptions: sticky, then each free partition to the least-loaded
/// subscriber, then moves from the most to the least loaded subscriber
/// until no move improves balance.
fn uniform(members: &[AssignorMember<'_>], topics: &[(Uuid, i32)]) -> Vec<Assignment> {
    if !homogeneous(members) {
        return uniform_heterogeneous(members, topics);
    }
    let subscribed = &members[0].topics;
    let topics: Vec<(Uuid, i32)> = topics
        .iter()
        .filter(|(id, _)| subscribed.contains(id))
        .copied()
        .collect();
    let total: i32 = topics.iter().map(|(_, n)| n).sum();
    let owned: BTreeSet<(Uuid, i32)> = members
        .iter()
        .flat_map(|m| m.current.iter())
        .filter(|(t, _)| subscribed.contains(*t))
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect();
    let partition_count: BTreeMap<Uuid, i32> = topics.iter().copied().collect();
    let mut unassigned: Vec<(Uuid, i32)> = topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .filter(|tp| !owned.contains(tp))
        .collect();
    let n = members.len() as i32;
    let min_quota = total / n;
    let mut extra = total % n;
    let mut out = Vec::with_capacity(members.len());
    let mut remaining = Vec::with_capacity(members.len());
    for m in members {
        let mut quota = min_quota;
        if extra > 0 {
            quota += 1;
            extra -= 1;
        }
        let mut kept = Assignment::new();
        for (t, parts) in m.current {
            let Some(&count) = partition_count.get(t) else {
                continue; // unsubscribed or deleted topic: dropped
            };
            for &p in parts {
                if p >= count {
                    continue; // a partition that no longer exists
                }
                if quota > 0 {
                    quota -= 1;
                    kept.entry(*t).or_default().insert(p);
                } else {
                    unassigned.push((*t, p));
                }
            }
        }
        out.push(kept);
        remaining.push(quota);
    }
    let mut next = unassigned.into_iter();
    for (a, quota) in out.iter_mut().zip(remaining) {
        for _ in 0..quota {
            match next.next() {
                Some((t, p)) => {
                    a.entry(t).or_default().insert(p);
                }
                None => break,
            }
        }
    }
    out
}

fn uniform_heterogeneous(
    members: &[AssignorMember<'_>],
    topics: &[(Uuid, i32)],
) -> Vec<Assignment> {
    let mut out: Vec<Assignment> = vec![Assignment::new(); members.len()];
    let mut load: Vec<usize> = vec![0; members.len()];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let partition_count: BTreeMap<Uuid, i32> = topics.iter().copied().collect();
    // Stickiness: a partition stays with its current holder while the
    // holder still subscribes to its topic.
    for (i, m) in members.iter().enumerate() {
        for (t, parts) in m.current {
            if !m.topics.contains(t) {
                continue;
            }
            let Some(&count) = partition_count.get(t) else {
                continue;
            };
            for &p in parts {
                if p < count && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), i);
                    out[i].entry(*t).or_default().insert(p);
                    load[i] += 1;
                }
            }
        }
    }
    // Free partitions to the least-loaded subscriber (first in member
    // order on ties).
    for (t, n) in topics {
        let subscribers: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].topics.contains(t))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        for p in 0..*n {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            let i = *subscribers
                .iter()
                .min_by_key(|&&i| (load[i], i))
                .expect("non-empty");
            owner.insert((*t, p), i);
            out[i].entry(*t).or_default().insert(p);
            load[i] += 1;
        }
    }
    // Balance: move a partition from a member to a less-loaded subscriber
    // of its topic while that narrows the gap by at least two. Each move
    // lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        for ((t, p), from) in owner.clone() {
            let to = (0..members.len())
                .filter(|&i| members[i].topics.contains(&t) && load[i] + 1 < load[from])
                .min_by_key(|&i| (load[i], i));
            if let Some(to) = to {
                if let Some(ps) = out[from].get_mut(&t) {
                    ps.remove(&p);
                    if ps.is_empty() {
                        out[from].remove(&t);
                    }
                }
                out[to].entry(t).or_default().insert(p);
                load[from] -= 1;
                load[to] += 1;
                owner.insert((t, p), to);
                moved = true;
            }
        }
        if !moved {
            return out;
        }
    }
}

/// Kafka's KIP-848 range assignor: members sorted (static members by
/// instance id first, then the rest by member id); per topic, contiguous
/// ranges of `P / N` partitions, the first `P % N` members one more. With
/// equal subscriptions and partition counts the result is co-partitioned.
fn range(members: &[AssignorMember<'_>], topics: &[(Uuid, i32)]) -> Vec<Assignment> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (ma, mb) = (&members[a], &members[b]);
        match (ma.instance_id, mb.instance_id) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ma.id.cmp(mb.id),
        }
    });
    let mut out: Vec<Assignment> = vec![Assignment::new(); members.len()];
    for (t, n) in topics {
        let subscribers: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| members[i].topics.contains(t))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let quota = n / subscribers.len() as i32;
        let mut extra = n % subscribers.len() as i32;
        let mut start = 0;
        for i in subscribers {
            let mut q = quota;
            if extra > 0 {
                q += 1;
                extra -= 1;
            }
            let end = (start + q).min(*n);
            if start < end {
                out[i].insert(*t, (start..end).collect());
            }
            start = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(a: &Assignment, t: Uuid) -> Vec<i32> {
        a.get(&t)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }

    fn member<'a>(id: &'a str, topics: &[Uuid], current: &'a Assignment) -> AssignorMember<'a> {
        AssignorMember {
            id,
            instance_id: None,
            topics: topics.iter().copied().collect(),
            current,
        }
    }

    /// librdkafka 0113 `x_incremental_rebalances` asserts this layout.
    #[test]
    fn uniform_keeps_lowest_partitions_and_hands_out_the_rest() {
        let t = Uuid::from_u128(1);
        let topics = [(t, 6)];
        let empty = Assignment::new();
        let one = assign("uniform", &[member("c0", &[t], &empty)], &topics);
        assert_eq!(parts(&one[0], t), vec![0, 1, 2, 3, 4, 5]);
        let two = assign(
            "uniform",
            &[member("c0", &[t], &one[0]), member("c1", &[t], &empty)],
            &topics,
        );
        assert_eq!(parts(&two[0], t), vec![0, 1, 2]);
        assert_eq!(parts(&two[1], t), vec![3, 4, 5]);
        let three = assign(
            "uniform",
            &[
                member("c0", &[t], &two[0]),
                member("c1", &[t], &two[1]),
                member("c2", &[t], &empty),
            ],
            &topics,
        );
        assert_eq!(parts(&three[0], t), vec![0, 1]);
        assert_eq!(parts(&three[1], t), vec![3, 4]);
        assert_eq!(parts(&three[2], t), vec![2, 5]);
        // A member leaving: its partitions go to the others, nothing else moves.
        let after = assign(
            "uniform",
            &[member("c0", &[t], &three[0]), member("c2", &[t], &three[2])],
            &topics,
        );
        assert_eq!(parts(&after[0], t), vec![0, 1, 3]);
        assert_eq!(parts(&after[1], t), vec![2, 4, 5]);
    }

    #[test]
    fn uniform_with_remainder_and_unsubscribed_topics() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let empty = Assignment::new();
        let mut stale = Assignment::new();
        stale.insert(b, [0].into());
        let out = assign(
            "uniform",
            &[
                member("m1", &[a], &stale),
                member("m2", &[a], &empty),
                member("m3", &[a], &empty),
            ],
            &[(a, 7), (b, 1)],
        );
        let sizes: Vec<usize> = out
            .iter()
            .map(|x| x.values().map(|p| p.len()).sum())
            .collect();
        assert_eq!(sizes, vec![3, 2, 2]);
        assert!(out.iter().all(|x| !x.contains_key(&b)));
        let all: BTreeSet<i32> = out.iter().flat_map(|x| parts(x, a)).collect();
        assert_eq!(all, (0..7).collect());
    }

    #[test]
    fn uniform_heterogeneous_balances_within_subscriptions() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let empty = Assignment::new();
        let out = assign(
            "uniform",
            &[member("m1", &[a], &empty), member("m2", &[a, b], &empty)],
            &[(a, 4), (b, 2)],
        );
        // m1 can only take topic a; balance 3/3.
        assert_eq!(parts(&out[0], a).len(), 3);
        assert_eq!(parts(&out[1], b), vec![0, 1]);
        assert_eq!(parts(&out[1], a).len(), 1);
        // Sticky: the same input with the result as current changes nothing.
        let again = assign(
            "uniform",
            &[member("m1", &[a], &out[0]), member("m2", &[a, b], &out[1])],
            &[(a, 4), (b, 2)],
        );
        assert_eq!(again, out);
    }

    /// Kafka's RangeAssignor javadoc example: co-partitioned ranges.
    #[test]
    fn range_is_co_partitioned_and_orders_static_members_first() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let empty = Assignment::new();
        let out = assign(
            "range",
            &[
                member("M1", &[t1, t2], &empty),
                member("M0", &[t1, t2], &empty),
            ],
            &[(t1, 3), (t2, 3)],
        );
        assert_eq!(
            (parts(&out[1], t1), parts(&out[1], t2)),
            (vec![0, 1], vec![0, 1])
        );
        assert_eq!((parts(&out[0], t1), parts(&out[0], t2)), (vec![2], vec![2]));
        let mut s = member("zz", &[t1, t2], &empty);
        s.instance_id = Some("i0");
        let out = assign(
            "range",
            &[member("M0", &[t1, t2], &empty), s],
            &[(t1, 3), (t2, 3)],
        );
        assert_eq!(parts(&out[1], t1), vec![0, 1]);
        assert_eq!(parts(&out[0], t1), vec![2]);
    }
}
