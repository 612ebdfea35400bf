//! Length-prefixed Kafka frames over a byte stream, and the broker-wide
//! memory budget for requests.
//!
//! A frame is a big-endian i32 size followed by that many bytes. The size is
//! checked against `socket-request-max-bytes` *before* anything is allocated;
//! an oversized or negative size is a protocol violation that closes the
//! connection. Then the frame's bytes are taken from the [`RequestBudget`]
//! (`queued-max-request-bytes`): while the budget is exhausted the
//! connection stops reading (back-pressure), and a frame larger than the
//! whole budget closes it. The bytes return to the budget when the request
//! has been handled and the [`Frame`] dropped. End of stream between frames
//! is a clean close (`Ok(None)`); in the middle of a frame it is an error.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket-request-max-bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("frame of {size} bytes exceeds the whole request budget (queued-max-request-bytes {budget})")]
    OverBudget { size: usize, budget: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of request frames that may be held at once, broker-wide: being
/// read, queued or handled. Kafka's `queued.max.request.bytes`, on by
/// default here, so a flood of large or slow requests makes connections
/// wait instead of growing the broker's memory.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    permits: Arc<Semaphore>,
    total: usize,
}

impl RequestBudget {
    pub fn new(bytes: usize) -> RequestBudget {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        RequestBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes currently held by requests.
    pub fn in_use(&self) -> usize {
        self.total - self.permits.available_permits()
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

/// One request frame and its share of the [`RequestBudget`].
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    pub budget: BudgetShare,
}

/// Bytes taken from the [`RequestBudget`], returned when dropped.
#[derive(Debug)]
pub struct BudgetShare(#[allow(dead_code)] OwnedSemaphorePermit);

/// Frames larger than this get a buffer of their own instead of the
/// connection's reusable one, so an idle connection never keeps a large
/// allocation alive after one large request.
const REUSE_MAX: usize = 1 << 20;

/// Reads frames from a stream. Cancel-safe: progress through a partly
/// received frame (and its budget, once granted) is kept in `self` and the
/// buffer, so the server can race the next read against responses that
/// become ready (pipelined produces waiting for an fsync) and the idle
/// timer without losing bytes.
#[derive(Debug, Default)]
pub struct FrameReader {
    size: [u8; 4],
    /// Bytes of `size` received so far.
    have: usize,
    /// The size, once all four bytes arrived and passed the checks.
    body: Option<usize>,
    /// The frame's share of the budget, once granted.
    permit: Option<OwnedSemaphorePermit>,
}

impl FrameReader {
    /// Reads one frame into `buf` and returns it. `Ok(None)` on a clean end
    /// of stream.
    ///
    /// `buf` is the connection's reusable read buffer: the frame is split
    /// off it as `Bytes`, and once the request that borrowed it is done, the
    /// next `reserve` reclaims the same allocation instead of touching fresh
    /// memory (first touch of new pages is expensive on VMs).
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        buf: &mut BytesMut,
        max: usize,
        budget: &RequestBudget,
    ) -> Result<Option<Frame>, FrameError> {
        while self.body.is_none() {
            // One `read` per await: cancelling between them loses nothing.
            let n = reader.read(&mut self.size[self.have..]).await?;
            if n == 0 {
                return if self.have == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            self.have += n;
            if self.have == 4 {
                let size = i32::from_be_bytes(self.size);
                self.have = 0;
                if size < 0 {
                    return Err(FrameError::Negative(size));
                }
                if size as usize > max {
                    return Err(FrameError::TooLarge {
                        size: size as i64,
                        max,
                    });
                }
                if size as usize > budget.total {
                    return Err(FrameError::OverBudget {
                        size: size as usize,
                        budget: budget.total,
                    });
                }
                self.body = Some(size as usize);
            }
        }
        let size = self.body.expect("set above");
        if self.permit.is_none() {
            // Back-pressure: wait for the budget before allocating.
            // Cancel-safe: a cancelled wait has taken nothing.
            let permit = budget
                .permits
                .clone()
                .acquire_many_owned(size as u32)
                .await
                .expect("the budget's semaphore is never closed");
            self.permit = Some(permit);
            buf.clear();
            buf.reserve(size);
        }
        while buf.len() < size {
            let want = size - buf.len();
            // `take` stops the read at the frame boundary; pipelined requests
            // stay in the reader for the next call. `read_buf` is
            // cancel-safe: bytes land in `buf` only when it completes.
            if (&mut *reader).take(want as u64).read_buf(buf).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.body = None;
        let bytes = buf.split().freeze();
        if size > REUSE_MAX {
            *buf = BytesMut::new();
        }
        Ok(Some(Frame {
            bytes,
            budget: BudgetShare(self.permit.take().expect("granted above")),
        }))
    }

    /// Whether part of a frame has been received (for the idle timeout:
    /// a slow partial frame counts as idle).
    pub fn in_frame(&self) -> bool {
        self.have > 0 || self.body.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_frame(
        reader: &mut &[u8],
        buf: &mut BytesMut,
        max: usize,
    ) -> Result<Option<Bytes>, FrameError> {
        let budget = RequestBudget::new(1 << 20);
        let frame = FrameReader::default()
            .read_frame(reader, buf, max, &budget)
            .await?;
        Ok(frame.map(|f| f.bytes))
    }

    #[tokio::test]
    async fn frames_limits_and_eof() {
        let mut buf = BytesMut::new();
        let mut ok: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 9];
        let first = read_frame(&mut ok, &mut buf, 10).await.unwrap().unwrap();
        assert_eq!(&first[..], &[1, 2, 3]);
        drop(first);
        let second = read_frame(&mut ok, &mut buf, 10).await.unwrap().unwrap();
        assert_eq!(&second[..], &[9]);
        assert!(read_frame(&mut ok, &mut buf, 10).await.unwrap().is_none());
        let mut big: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        let r = read_frame(&mut big, &mut buf, 10).await;
        assert!(matches!(r, Err(FrameError::TooLarge { .. })));
        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let r = read_frame(&mut neg, &mut buf, 10).await;
        assert!(matches!(r, Err(FrameError::Negative(-1))));
        let mut short: &[u8] = &[0, 0, 0, 5, 1];
        let r = read_frame(&mut short, &mut buf, 10).await;
        assert!(matches!(r, Err(FrameError::Truncated)));
    }

    /// The server races a read against deferred responses: a read dropped
    /// in the middle of a frame must resume where it stopped.
    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let mut frames = FrameReader::default();
        let mut buf = BytesMut::new();
        let budget = RequestBudget::new(1 << 20);
        tx.write_all(&[0, 0]).await.unwrap(); // half the size
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            frames.read_frame(&mut rx, &mut buf, 100, &budget),
        )
        .await;
        assert!(r.is_err(), "cancelled while waiting for the size");
        tx.write_all(&[0, 4, 1, 2]).await.unwrap(); // rest of size, half the body
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            frames.read_frame(&mut rx, &mut buf, 100, &budget),
        )
        .await;
        assert!(r.is_err(), "cancelled while waiting for the body");
        tx.write_all(&[3, 4, 0, 0, 0, 1, 9]).await.unwrap();
        let first = frames
            .read_frame(&mut rx, &mut buf, 100, &budget)
            .await
            .unwrap();
        assert_eq!(&first.unwrap().bytes[..], &[1, 2, 3, 4]);
        let second = frames
            .read_frame(&mut rx, &mut buf, 100, &budget)
            .await
            .unwrap();
        assert_eq!(&second.unwrap().bytes[..], &[9]);
        assert_eq!(budget.in_use(), 0, "returned when the frames are dropped");
    }

    /// The budget is held from the size to the frame's drop; a reader
    /// waiting for it reads nothing, and a frame above the whole budget
    /// closes the connection.
    #[tokio::test]
    async fn budget_back_pressure_and_oversized_frames() {
        use std::time::Duration;
        let budget = RequestBudget::new(10);
        let mut buf = BytesMut::new();
        let mut a: &[u8] = &[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let first = FrameReader::default()
            .read_frame(&mut a, &mut buf, 100, &budget)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(budget.in_use(), 8);
        let mut b_buf = BytesMut::new();
        let mut b: &[u8] = &[0, 0, 0, 4, 9, 9, 9, 9];
        let mut reader = FrameReader::default();
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            reader.read_frame(&mut b, &mut b_buf, 100, &budget),
        )
        .await;
        assert!(waited.is_err(), "waits while the budget is used up");
        assert!(b_buf.is_empty(), "and reads no body meanwhile");
        drop(first);
        let second = reader
            .read_frame(&mut b, &mut b_buf, 100, &budget)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&second.bytes[..], &[9, 9, 9, 9]);
        let mut big: &[u8] = &[0, 0, 0, 11];
        let r = FrameReader::default()
            .read_frame(&mut big, &mut buf, 100, &budget)
            .await;
        assert!(matches!(r, Err(FrameError::OverBudget { size: 11, .. })));
    }
}
