//! Framing: a 4-byte big-endian length, then a JSON envelope carrying the protocol version.
//! Encoding and decoding are plain functions over bytes, so the async transports (Unix socket,
//! TLS) only move bytes around.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The version every frame carries. A peer with another version gets [`FrameError::Version`].
pub const PROTOCOL_VERSION: u16 = 2;

/// The largest frame a peer may send (length prefix excluded): what a client accepts from
/// the agent (a `list` or `show` of many apps).
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// The largest request the agent reads from a remote (mutual-TLS) client. Requests are small
/// (the largest is an `apply_release` naming a release), so a peer cannot make the agent
/// buffer more than this per connection.
pub const MAX_REQUEST_LEN: u32 = 64 * 1024;

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

/// The version alone: read first, so a frame of another version is refused as such whatever
/// its body (serde skips the body without building anything from it).
#[derive(Deserialize)]
struct VersionIn {
    v: u16,
}

/// The envelope with its body decoded straight into the typed message: no untyped JSON tree
/// is built in between, so a frame costs about its own size in memory.
#[derive(Deserialize)]
struct EnvelopeIn<T> {
    body: T,
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
    frame_len_within(prefix, MAX_FRAME_LEN)
}

/// Read the length prefix, refusing lengths above `max`.
pub fn frame_len_within(prefix: [u8; 4], max: u32) -> Result<u32, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decode a frame's payload (the bytes after the length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let version: VersionIn = serde_json::from_slice(payload)?;
    if version.v != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            theirs: version.v,
            ours: PROTOCOL_VERSION,
        });
    }
    let env: EnvelopeIn<T> = serde_json::from_slice(payload)?;
    Ok(env.body)
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
        let err = decode::<Response>(br#"{"v":1,"body":{"type":"end"}}"#).unwrap_err();
        assert!(matches!(err, FrameError::Version { theirs: 1, ours: 2 }));
    }

    #[test]
    fn oversized_length_is_refused() {
        assert!(frame_len((MAX_FRAME_LEN + 1).to_be_bytes()).is_err());
        let table = [
            (MAX_REQUEST_LEN, true),
            (MAX_REQUEST_LEN + 1, false),
            (0, true),
            (u32::MAX, false),
        ];
        for (len, ok) in table {
            let got = frame_len_within(len.to_be_bytes(), MAX_REQUEST_LEN);
            assert_eq!(got.is_ok(), ok, "{len}");
        }
    }

    /// Hostile payloads are errors, never panics, and a frame of another version says so
    /// whatever its body.
    #[test]
    fn malformed_payloads_are_errors() {
        let table: [(&[u8], &str); 9] = [
            (b"", "malformed"),
            (b"{", "malformed"),
            (b"[]", "malformed"),
            (br#"{"body":{"op":"list"}}"#, "malformed"),
            (br#"{"v":"1","body":{"op":"list"}}"#, "malformed"),
            (br#"{"v":2,"body":{"op":"nope"}}"#, "malformed"),
            (br#"{"v":2,"body":{"op":"stop","target":42}}"#, "malformed"),
            (br#"{"v":7,"body":"anything at all"}"#, "version 7"),
            (b"\xff\xfe", "malformed"),
        ];
        for (payload, want) in table {
            let err = decode::<Request>(payload).unwrap_err();
            assert!(err.to_string().contains(want), "{payload:?}: {err}");
        }
        let ok: Request = decode(br#"{"v":2,"body":{"op":"list"},"extra":[1,2,3]}"#).unwrap();
        assert_eq!(ok, Request::List);
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
