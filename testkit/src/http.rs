//! A minimal HTTP/1.1 client for the test apps: one `GET /` on a new connection, one GET on a
//! keep-alive connection the test holds, and the response reader the load generator uses.
//! Hand-written on purpose: the tests need to see exactly what happened on the wire (how many
//! response bytes came before a close, whether the server asked to close), which a full client
//! library hides.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a test request may wait for its answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One `GET /` on a new connection to 127.0.0.1:`port`; the body of a 200 answer.
pub fn get(port: u16) -> Result<String, String> {
    get_from("127.0.0.1", port)
}

/// One `GET /` on a new connection to `host:port`; the body of a 200 answer.
pub fn get_from(host: &str, port: u16) -> Result<String, String> {
    get_path(host, port, "/")
}

/// One `GET path` (with its query) on a new connection to `host:port`; the body of a 200
/// answer.
pub fn get_path(host: &str, port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect((host, port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    if !buf.starts_with("HTTP/1.1 200") {
        return Err(format!("bad response: {buf:?}"));
    }
    Ok(buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// The first word of the bodies that answered `n` requests on new connections (the test apps
/// start their answer with their pid).
pub fn answering_pids(port: u16, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| get(port).ok())
        .filter_map(|b| b.split_whitespace().next().map(str::to_string))
        .collect()
}

/// One GET of `path` on the keep-alive connection `s`: (status, the server closes, body).
pub fn get_on(s: &mut TcpStream, path: &str) -> io::Result<(u16, bool, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    exchange(s, request.as_bytes())
        .map(|a| (a.status, a.close, a.body))
        .map_err(|f| io::Error::new(f.kind, f.message))
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The server said `Connection: close`.
    pub close: bool,
    pub body: String,
}

/// A request that got no complete response.
#[derive(Debug)]
pub struct Failure {
    /// Response bytes received before it failed: 0 means the server closed or reset the
    /// connection before answering at all.
    pub received: usize,
    pub kind: io::ErrorKind,
    pub message: String,
}

impl Failure {
    fn new(received: usize, kind: io::ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            received,
            kind,
            message: message.into(),
        }
    }
}

/// Sends `request` on `s` and reads one full response: the head, then a body of
/// `Content-Length` bytes (to the end of the stream when the server closes without one).
pub fn exchange(s: &mut TcpStream, request: &[u8]) -> Result<Answer, Failure> {
    s.write_all(request)
        .map_err(|e| Failure::new(0, e.kind(), format!("write: {e}")))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let mut read = |s: &mut TcpStream, buf: &mut Vec<u8>, what: &str| -> Result<usize, Failure> {
        let n = s
            .read(&mut chunk)
            .map_err(|e| Failure::new(buf.len(), e.kind(), format!("{what}: {e}")))?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if read(s, &mut buf, "read")? == 0 {
            return Err(Failure::new(
                buf.len(),
                io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes of response", buf.len()),
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            Failure::new(
                buf.len(),
                io::ErrorKind::InvalidData,
                format!("bad status line in {head:?}"),
            )
        })?;
    let mut length = None;
    let mut close = false;
    for line in lines {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match (key.trim(), value.trim()) {
            ("content-length", v) => {
                length = Some(v.parse::<usize>().map_err(|e| {
                    Failure::new(buf.len(), io::ErrorKind::InvalidData, e.to_string())
                })?);
            }
            ("connection", v) if v.contains("close") => close = true,
            _ => {}
        }
    }
    let body_start = head_end + 4;
    match length {
        Some(length) => {
            while buf.len() < body_start + length {
                if read(s, &mut buf, "read body")? == 0 {
                    return Err(Failure::new(
                        buf.len(),
                        io::ErrorKind::UnexpectedEof,
                        "closed in the middle of the body",
                    ));
                }
            }
            buf.truncate(body_start + length);
        }
        None if close => while read(s, &mut buf, "read body")? > 0 {},
        None => {
            return Err(Failure::new(
                buf.len(),
                io::ErrorKind::InvalidData,
                "no content-length on a keep-alive response",
            ));
        }
    }
    let body = String::from_utf8_lossy(&buf[body_start..]).into_owned();
    Ok(Answer {
        status,
        close,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each connection's requests with `responses`, in order, then
    /// closes.
    fn serve(responses: Vec<&'static str>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            for response in responses {
                let _ = s.read(&mut buf);
                s.write_all(response.as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn a_keep_alive_answer_is_read_by_its_length_and_close_is_seen() {
        let port = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 503 No\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        ]);
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(get_on(&mut s, "/").unwrap(), (200, false, "hello".into()));
        assert_eq!(get_on(&mut s, "/").unwrap(), (503, true, "no".into()));
        // The server hung up: the next request fails (closed, or reset when it arrived first).
        assert!(get_on(&mut s, "/").is_err());
    }

    #[test]
    fn get_returns_the_body_of_a_200_and_refuses_anything_else() {
        let port = serve(vec![
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npid=7 x\n",
        ]);
        assert_eq!(get(port).unwrap(), "pid=7 x\n");
        let port = serve(vec!["HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n"]);
        assert!(get(port).unwrap_err().contains("500"));
    }
}
