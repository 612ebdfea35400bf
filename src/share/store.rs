//! Share group state in an internal log (`<data-dir>/__share_group_state-0`),
//! replayed at start-up; later records win, a null value is a tombstone.
//! Field encoding as in `log::internal` (big-endian; strings i32 length +
//! UTF-8):
//!
//! ```text
//! partition key:   i16 1 | group str | topic id 16 bytes | partition i32
//! partition value: i16 0 | start offset i64 | end offset i64 | run count i32
//!                  | per run: first i64 | last i64 | state i8 (0 available,
//!                    2 acknowledged, 4 archived) | delivery count i16
//! group key:       i16 2 | group str
//! group value:     i16 0 | epoch i32 | member count i32 | per member: id str
//!                  | epoch i32 | client id str | client host str | rack str
//!                  | topic count i32 | topic str*
//! ```
//!
//! Acquired records are stored as available (acquisition is never
//! persisted, as in Kafka): after a restart they are delivered again.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::log::internal::{get_i16, get_i32, get_i64, get_i8, get_str, need, put_str};
use crate::share::group::{ShareGroup, ShareMember};
use crate::share::SharePartitionKey;

const KEY_PARTITION: i16 = 1;
const KEY_GROUP: i16 = 2;

pub use crate::share::partition::Snapshot as PartitionSnapshot;

#[derive(Debug, Clone, PartialEq)]
pub enum ShareRecord {
    Partition {
        key: SharePartitionKey,
        value: Option<PartitionSnapshot>,
    },
    Group {
        group: String,
        value: Option<ShareGroup>,
    },
}

impl ShareRecord {
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut k = BytesMut::new();
        match self {
            ShareRecord::Partition { key, value } => {
                k.put_i16(KEY_PARTITION);
                put_str(&mut k, Some(&key.0));
                k.put_slice(key.1.as_bytes());
                k.put_i32(key.2);
                let v = value.as_ref().map(|(start, end, runs)| {
                    let mut b = BytesMut::new();
                    b.put_i16(0);
                    b.put_i64(*start);
                    b.put_i64(*end);
                    b.put_i32(runs.len() as i32);
                    for (first, last, state, count) in runs {
                        b.put_i64(*first);
                        b.put_i64(*last);
                        b.put_i8(*state);
                        b.put_i16(*count);
                    }
                    b.freeze()
                });
                (k.freeze(), v)
            }
            ShareRecord::Group { group, value } => {
                k.put_i16(KEY_GROUP);
                put_str(&mut k, Some(group));
                let v = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(0);
                    b.put_i32(g.epoch);
                    b.put_i32(g.members.len() as i32);
                    for m in g.members.values() {
                        put_str(&mut b, Some(&m.id));
                        b.put_i32(m.epoch);
                        put_str(&mut b, Some(&m.client_id));
                        put_str(&mut b, Some(&m.client_host));
                        put_str(&mut b, m.rack.as_deref());
                        b.put_i32(m.subscribed.len() as i32);
                        for t in &m.subscribed {
                            put_str(&mut b, Some(t));
                        }
                    }
                    b.freeze()
                });
                (k.freeze(), v)
            }
        }
    }

    pub fn decode(mut key: Bytes, value: Option<Bytes>) -> Option<ShareRecord> {
        match get_i16(&mut key)? {
            KEY_PARTITION => {
                let group = get_str(&mut key)??;
                need(&key, 16)?;
                let topic = Uuid::from_slice(&key.split_to(16)).ok()?;
                let partition = get_i32(&mut key)?;
                let value = match value {
                    None => None,
                    Some(mut v) => {
                        let _version = get_i16(&mut v)?;
                        let start = get_i64(&mut v)?;
                        let end = get_i64(&mut v)?;
                        let n = get_i32(&mut v)?;
                        let mut runs = Vec::new();
                        for _ in 0..n.max(0) {
                            runs.push((
                                get_i64(&mut v)?,
                                get_i64(&mut v)?,
                                get_i8(&mut v)?,
                                get_i16(&mut v)?,
                            ));
                        }
                        Some((start, end, runs))
                    }
                };
                Some(ShareRecord::Partition {
                    key: (group, topic, partition),
                    value,
                })
            }
            KEY_GROUP => {
                let group = get_str(&mut key)??;
                let value = match value {
                    None => None,
                    Some(mut v) => {
                        let _version = get_i16(&mut v)?;
                        let epoch = get_i32(&mut v)?;
                        let n = get_i32(&mut v)?;
                        let mut members = BTreeMap::new();
                        for _ in 0..n.max(0) {
                            let id = get_str(&mut v)??;
                            let epoch = get_i32(&mut v)?;
                            let client_id = get_str(&mut v)?.unwrap_or_default();
                            let client_host = get_str(&mut v)?.unwrap_or_default();
                            let rack = get_str(&mut v)?;
                            let t = get_i32(&mut v)?;
                            let mut subscribed = Vec::new();
                            for _ in 0..t.max(0) {
                                subscribed.push(get_str(&mut v)??);
                            }
                            members.insert(
                                id.clone(),
                                ShareMember {
                                    id,
                                    epoch,
                                    subscribed,
                                    rack,
                                    client_id,
                                    client_host,
                                    last_heartbeat_ms: 0,
                                    assignment: BTreeMap::new(),
                                },
                            );
                        }
                        let _ = v.remaining();
                        Some(ShareGroup {
                            id: group.clone(),
                            epoch,
                            members,
                        })
                    }
                };
                Some(ShareRecord::Group { group, value })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let p = ShareRecord::Partition {
            key: ("g".into(), Uuid::from_bytes([7; 16]), 3),
            value: Some((10, 20, vec![(10, 12, 2, 1), (13, 13, 0, 4)])),
        };
        let (k, v) = p.encode();
        assert_eq!(ShareRecord::decode(k, v), Some(p));
        let mut g = ShareGroup::new("g");
        g.epoch = 4;
        g.members.insert(
            "m".into(),
            ShareMember {
                id: "m".into(),
                epoch: 4,
                subscribed: vec!["t".into()],
                rack: None,
                client_id: "c".into(),
                client_host: "h".into(),
                last_heartbeat_ms: 0,
                assignment: BTreeMap::new(),
            },
        );
        let r = ShareRecord::Group {
            group: "g".into(),
            value: Some(g),
        };
        let (k, v) = r.encode();
        assert_eq!(ShareRecord::decode(k, v), Some(r));
        let t = ShareRecord::Group {
            group: "g".into(),
            value: None,
        };
        let (k, v) = t.encode();
        assert_eq!(ShareRecord::decode(k, v), Some(t));
    }
}
