//! A minimal HTTPS/1.1 client for the web views served over TLS: a real rustls client (TLS
//! 1.3, `http/1.1`) that trusts a given CA and presents a client certificate or none, on a
//! keep-alive connection the test holds, so a test can see what one connection is let do
//! before and after something changes (a certificate revoked meanwhile).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::Leaf;

/// How long one answer may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A client trusting `ca_pem` for the server, presenting `leaf` (or no certificate).
pub fn client_config(ca_pem: &str, leaf: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("a trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    let mut config = match leaf {
        Some(l) => {
            let chain = CertificateDer::pem_slice_iter(l.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(l.key.as_bytes()).expect("key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a client identity")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An answer: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive HTTPS connection to `127.0.0.1:port`, checking the server's certificate
/// against `127.0.0.1`.
pub struct Conn {
    port: u16,
    stream: StreamOwned<ClientConnection, TcpStream>,
}

impl Conn {
    /// Connects and completes the handshake. Under TLS 1.3 a server that refuses the
    /// client's certificate says so after the client is done: that shows on the first
    /// [`Conn::send`].
    pub fn open(port: u16, config: Arc<ClientConfig>) -> Result<Conn, String> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let name =
            rustls_pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        Ok(Conn { port, stream })
    }

    /// One request on this connection and its whole answer (read by `Content-Length`).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, String> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream
            .write_all(req.as_bytes())
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the connection closed before an answer".into());
            }
            answer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .ok_or("no content-length")?;
        let body_start = head_end + 4;
        while answer.len() < body_start + length {
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err("closed in the middle of the body".into());
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&answer[body_start..body_start + length]).into_owned();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// One request on a new connection.
pub fn request(
    port: u16,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    Conn::open(port, config)?.send(method, path, headers, body)
}
