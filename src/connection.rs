//! Length-prefixed Kafka frames over a byte stream.
//!
//! A frame is a big-endian i32 size followed by that many bytes. The size is
//! checked against `socket-request-max-bytes` *before* anything is allocated;
//! an oversized or negative size is a protocol violation that closes the
//! connection. End of stream between frames is a clean close (`Ok(None)`);
//! in the middle of a frame it is an error.

use bytes::BytesMut;
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

/// Reads one frame. `Ok(None)` on a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    reader
        .read_exact(&mut size[1..])
        .await
        .map_err(eof_is_truncated)?;
    let size = i32::from_be_bytes(size);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    if size as usize > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    let mut frame = BytesMut::zeroed(size as usize);
    reader
        .read_exact(&mut frame)
        .await
        .map_err(eof_is_truncated)?;
    Ok(Some(frame))
}

fn eof_is_truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_limits_and_eof() {
        let mut ok: &[u8] = &[0, 0, 0, 3, 1, 2, 3];
        assert_eq!(
            &read_frame(&mut ok, 10).await.unwrap().unwrap()[..],
            &[1, 2, 3]
        );
        assert!(read_frame(&mut ok, 10).await.unwrap().is_none());
        let mut big: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut big, 10).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut neg, 10).await,
            Err(FrameError::Negative(-1))
        ));
        let mut short: &[u8] = &[0, 0, 0, 5, 1];
        assert!(matches!(
            read_frame(&mut short, 10).await,
            Err(FrameError::Truncated)
        ));
    }
}
