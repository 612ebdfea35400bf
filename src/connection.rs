//! Length-prefixed Kafka frames over a byte stream.
//!
//! A frame is a big-endian i32 size followed by that many bytes. The size is
//! checked against `socket-request-max-bytes` *before* anything is allocated;
//! an oversized or negative size is a protocol violation that closes the
//! connection. End of stream between frames is a clean close (`Ok(None)`);
//! in the middle of a frame it is an error.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket-request-max-bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads frames from a stream. Cancel-safe: progress through a partly
/// received frame is kept in `self` and the buffer, so the server can race
/// the next read against responses that become ready (pipelined produces
/// waiting for an fsync) without losing bytes.
#[derive(Debug, Default)]
pub struct FrameReader {
    size: [u8; 4],
    /// Bytes of `size` received so far.
    have: usize,
    /// The size, once all four bytes arrived and passed the checks.
    body: Option<usize>,
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
    ) -> Result<Option<Bytes>, FrameError> {
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
                buf.clear();
                buf.reserve(size as usize);
                self.body = Some(size as usize);
            }
        }
        let size = self.body.expect("set above");
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
        Ok(Some(buf.split().freeze()))
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
        FrameReader::default().read_frame(reader, buf, max).await
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
        tx.write_all(&[0, 0]).await.unwrap(); // half the size
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            frames.read_frame(&mut rx, &mut buf, 100),
        )
        .await;
        assert!(r.is_err(), "cancelled while waiting for the size");
        tx.write_all(&[0, 4, 1, 2]).await.unwrap(); // rest of size, half the body
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            frames.read_frame(&mut rx, &mut buf, 100),
        )
        .await;
        assert!(r.is_err(), "cancelled while waiting for the body");
        tx.write_all(&[3, 4, 0, 0, 0, 1, 9]).await.unwrap();
        let first = frames.read_frame(&mut rx, &mut buf, 100).await.unwrap();
        assert_eq!(&first.unwrap()[..], &[1, 2, 3, 4]);
        let second = frames.read_frame(&mut rx, &mut buf, 100).await.unwrap();
        assert_eq!(&second.unwrap()[..], &[9]);
    }
}
