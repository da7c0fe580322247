//! Reading and writing protocol frames on any async stream (the agent's socket and TLS
//! endpoints, the agent's CLI, the controller), with a timeout on every read of a frame body so
//! a stalled peer cannot hold a connection forever.

use std::time::Duration;

use super::frame::{FrameError, decode, encode, frame_len};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("peer stalled in the middle of a frame")]
    Timeout,
}

/// How long the rest of a frame may take once its length arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Read one frame; `Ok(None)` when the peer closed the connection between frames.
pub async fn read_frame<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<Option<T>, ConnError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len(prefix)?;
    // Grow with what actually arrives: a length prefix alone does not make us allocate.
    let mut body = Vec::with_capacity((len as usize).min(64 * 1024));
    let mut limited = (&mut *r).take(u64::from(len));
    let n = tokio::time::timeout(BODY_TIMEOUT, limited.read_to_end(&mut body))
        .await
        .map_err(|_| ConnError::Timeout)??;
    if n != len as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(decode(&body)?))
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
