//! Reading and writing protocol frames on any async stream (the agent's socket and TLS
//! endpoints, the agent's CLI, the controller), with a timeout on every read of a frame body so
//! a stalled peer cannot hold a connection forever.

use std::time::Duration;

use super::frame::{FrameError, MAX_FRAME_LEN, decode, encode, frame_len_within};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("peer stalled in the middle of a frame")]
    Timeout,
    #[error("peer did not read an answer within {0:?}")]
    WriteTimeout(Duration),
}

/// How long the rest of a frame may take once its length arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Read one frame of at most [`MAX_FRAME_LEN`] bytes; `Ok(None)` when the peer closed the
/// connection between frames.
pub async fn read_frame<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, ConnError> {
    read_frame_within(r, MAX_FRAME_LEN, None).await
}

/// Read one frame of at most `max` bytes, decoded straight into `T`; `Ok(None)` when the peer
/// closed the connection between frames.
///
/// With a `budget`, the frame's bytes are taken from it (one permit per byte) before they are
/// read and given back once the frame is decoded, so all the connections sharing it together
/// hold at most that many bytes of frames being read. A frame waits for its share (within
/// the body timeout).
pub async fn read_frame_within<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
    budget: Option<&Semaphore>,
) -> Result<Option<T>, ConnError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len_within(prefix, max)?;
    let body = tokio::time::timeout(BODY_TIMEOUT, async {
        let _share = match budget {
            Some(b) => Some(
                b.acquire_many(len)
                    .await
                    .map_err(|_| std::io::Error::other("the frame budget is closed"))?,
            ),
            None => None,
        };
        // Grow with what actually arrives: a length prefix alone does not make us allocate.
        let mut body = Vec::with_capacity((len as usize).min(64 * 1024));
        let n = (&mut *r)
            .take(u64::from(len))
            .read_to_end(&mut body)
            .await?;
        if n != len as usize {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Ok::<_, ConnError>(decode(&body)?)
    })
    .await
    .map_err(|_| ConnError::Timeout)??;
    Ok(Some(body))
}

pub async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), ConnError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}
