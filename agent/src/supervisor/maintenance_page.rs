//! What a connection gets while an app is in maintenance: the path of its request (read from
//! the request's first line, bounded), and the `503 Service Unavailable` answer with its page
//! and `Retry-After`. Pure: the serving is in [`super::maintenance`].

/// How long a client is told to wait before it tries again.
pub const RETRY_AFTER_SECS: u32 = 30;

/// The page's text when `maintenance on` gives no message.
pub const DEFAULT_MESSAGE: &str = "This service is down for maintenance and will be back shortly.";

/// The most bytes of a request head read to find its path.
pub const MAX_HEAD: usize = 8 * 1024;

/// The path of an HTTP request whose head starts `head` (`GET /health?x HTTP/1.1` →
/// `/health`), once its first line is complete; `None` while it is not, or when it is no
/// HTTP request.
pub fn request_path(head: &[u8]) -> Option<String> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(head.get(..end)?).ok()?;
    let mut words = line.split(' ');
    let (_method, target, version) = (words.next()?, words.next()?, words.next()?);
    if !version.starts_with("HTTP/") {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some(path.to_string())
}

/// The whole answer: status line, headers and page.
pub fn answer(message: &str) -> Vec<u8> {
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n<body><h1>Down for maintenance</h1>\n<p>{}</p></body></html>\n",
        escape(message)
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\nRetry-After: {RETRY_AFTER_SECS}\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    )
    .into_bytes()
}

/// `message` safe inside HTML text, its control characters (but newlines) dropped.
fn escape(message: &str) -> String {
    let kept: String = message
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    pmfleet_shared::display::html_escape(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_of_a_request() {
        for (head, path) in [
            (
                &b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                Some("/health"),
            ),
            (b"GET /health?deep=1 HTTP/1.1\r\n", Some("/health")),
            (b"POST /orders HTTP/1.0\r\n", Some("/orders")),
            (b"GET /health HTTP/1.1", None),
            (b"\x16\x03\x01\x02\x00\r\n", None),
            (b"GET / SPDY\r\n", None),
        ] {
            assert_eq!(request_path(head).as_deref(), path, "{head:?}");
        }
    }

    #[test]
    fn the_answer_is_a_503_with_its_page_and_retry_after() {
        let text = String::from_utf8(answer("Back at <b>5</b> & \"soon\"")).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 30\r\n"), "{text}");
        assert!(
            text.contains("<p>Back at &lt;b&gt;5&lt;/b&gt; &amp; &quot;soon&quot;</p>"),
            "{text}"
        );
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
    }
}
