//! Framing: a 4-byte big-endian length, then a JSON envelope carrying the protocol version.
//! Encoding and decoding are plain functions over bytes, so the async transports (Unix socket,
//! TLS) only move bytes around.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The version every frame carries. A peer with another version gets [`FrameError::Version`].
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame a peer may send (length prefix excluded).
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: u32, max: u32 },
    #[error("peer speaks protocol version {theirs}, this side speaks {ours}")]
    Version { theirs: u16, ours: u16 },
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u16,
    body: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    v: u16,
    body: serde_json::Value,
}

/// Encode `body` as one frame, length prefix included.
pub fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(&EnvelopeOut {
        v: PROTOCOL_VERSION,
        body,
    })?;
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Read the length prefix, refusing lengths above [`MAX_FRAME_LEN`].
pub fn frame_len(prefix: [u8; 4]) -> Result<u32, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(len)
}

/// Decode a frame's payload (the bytes after the length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let env: EnvelopeIn = serde_json::from_slice(payload)?;
    if env.v != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            theirs: env.v,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(serde_json::from_value(env.body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Request, Response, ScaleTo, Target};

    #[test]
    fn request_round_trips() {
        let req = Request::Scale {
            app: "api".into(),
            to: ScaleTo::Up(1),
        };
        let bytes = encode(&req).unwrap();
        let len = frame_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len as usize, bytes.len() - 4);
        let back: Request = decode(&bytes[4..]).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn error_response_round_trips() {
        use crate::protocol::{ApiError, ErrorKind};
        let resp = Response::Error(ApiError {
            kind: ErrorKind::NotFound,
            message: "no app".into(),
        });
        let bytes = encode(&resp).unwrap();
        assert_eq!(decode::<Response>(&bytes[4..]).unwrap(), resp);
    }

    #[test]
    fn target_serializes_readably() {
        let json = serde_json::to_string(&Request::Stop {
            target: Target::All,
        })
        .unwrap();
        assert_eq!(json, r#"{"op":"stop","target":"all"}"#);
    }

    #[test]
    fn other_version_is_refused() {
        let err = decode::<Response>(br#"{"v":2,"body":{"type":"end"}}"#).unwrap_err();
        assert!(matches!(err, FrameError::Version { theirs: 2, ours: 1 }));
    }

    #[test]
    fn oversized_length_is_refused() {
        assert!(frame_len((MAX_FRAME_LEN + 1).to_be_bytes()).is_err());
    }

    #[test]
    fn scale_parses_every_form() {
        assert_eq!("4".parse::<ScaleTo>(), Ok(ScaleTo::Exactly(4)));
        assert_eq!("+2".parse::<ScaleTo>(), Ok(ScaleTo::Up(2)));
        assert_eq!("-1".parse::<ScaleTo>(), Ok(ScaleTo::Down(1)));
        assert_eq!("max".parse::<ScaleTo>(), Ok(ScaleTo::Max));
        assert!("x".parse::<ScaleTo>().is_err());
    }
}
