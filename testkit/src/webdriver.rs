//! A real browser for the web views (`dashboard`): headless Chromium driven through Debian's
//! `chromium-driver` (W3C WebDriver over HTTP, spoken here with a few lines of HTTP/1.1 so the
//! kit needs no WebDriver crate). The test opens pages, reads their source and elements'
//! text, clicks, accepts `confirm()` dialogs, runs scripts in the page (a benchmark reads its
//! timings that way) and saves screenshots. Dropping it ends the
//! session (and the browser) and the driver this test started. Needs `/usr/bin/chromedriver`
//! and `/usr/bin/chromium` ([`crate::require_tool!`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Where Debian puts the driver and the browser.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// One HTTP exchange with `127.0.0.1:port`: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // Read the head, then as much body as it announces (a driver may keep the connection).
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before an answer".into());
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    let body_start = head_end + 4;
    loop {
        let have = answer.len() - body_start;
        let done = match length {
            Some(n) => have >= n,
            None if chunked => answer.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let rest = String::from_utf8_lossy(&answer[body_start..]).into_owned();
    let body = if chunked { unchunk(&rest) } else { rest };
    Ok((status, body))
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// The browser's profile directory (on its command line: how its processes are found).
    pub fn profile_dir(&self) -> &Path {
        self._profile.path()
    }

    /// Start the driver on a free port and a headless browser with a profile of its own;
    /// panics when either cannot start (a test wants that).
    pub fn start() -> Browser {
        Browser::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Browser::start`], saying why when the driver or the browser cannot start (a
    /// benchmark prints that and goes on without the browser).
    pub fn try_start() -> Result<Browser, String> {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(tool).exists() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let port = crate::free_port();
        // In a process group of its own, which the browsers it starts join: dropping the
        // session ends them all, even a browser the driver did not take down with it.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start chromedriver: {e}"))?;
        let ready = crate::wait::poll_for(Duration::from_secs(30), "chromedriver ready", || {
            http(port, "GET", "/status", &[], "")
                .ok()
                .filter(|(_, body)| body.contains("\"ready\":true"))
        })
        .map_err(|e| e.to_string());
        let session = ready.and_then(|_| {
            let profile = tempfile::tempdir().map_err(|e| format!("browser profile: {e}"))?;
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display())],
                },
            }}});
            let (status, body) = http(
                port,
                "POST",
                "/session",
                &[("Content-Type", "application/json")],
                &caps.to_string(),
            )
            .map_err(|e| format!("new browser session: {e}"))?;
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let session = v["value"]["sessionId"]
                .as_str()
                .ok_or_else(|| format!("no browser session ({status}): {body}"))?
                .to_string();
            Ok((session, profile))
        });
        match session {
            Ok((session, profile)) => Ok(Browser {
                driver,
                port,
                session,
                _profile: profile,
            }),
            Err(e) => {
                end_group(&mut driver);
                Err(e)
            }
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = http(
            self.port,
            method,
            &path,
            &[("Content-Type", "application/json")],
            &body,
        )?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{status}: {}", v["value"]["message"]))
        }
    }

    /// Open `url` (and wait for it to load).
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}))
            .expect("navigate");
    }

    /// The address shown now.
    pub fn url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The page's DOM as HTML now (after its scripts ran).
    pub fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn element(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .ok()?;
        v.as_object()?.values().next()?.as_str().map(str::to_string)
    }

    /// The visible text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Option<String> {
        let id = self.element(css)?;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .ok()?
            .as_str()
            .map(str::to_string)
    }

    /// Click the first element matching `css`; panics when there is none.
    pub fn click(&self, css: &str) {
        let id = self
            .element(css)
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .expect("click");
    }

    /// Type `text` into the first element matching `css`; panics when there is none.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self
            .element(css)
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .expect("type");
    }

    /// The text of the open `alert`/`confirm` dialog, if one is open.
    pub fn dialog(&self) -> Option<String> {
        self.call("GET", "/alert/text", Value::Null)
            .ok()?
            .as_str()
            .map(str::to_string)
    }

    /// Accept the open dialog (`OK`).
    pub fn accept_dialog(&self) {
        self.call("POST", "/alert/accept", json!({}))
            .expect("accept the dialog");
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page and return what it
    /// returns.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Run `script` in the page and wait for it to call its last argument (the callback)
    /// with the answer, for up to the session's script timeout (30 s unless set).
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
    }

    /// Have `source` evaluated in every document this session opens from now on, before the
    /// page's own scripts and while the document is still being parsed (Chromium's DevTools
    /// `Page.addScriptToEvaluateOnNewDocument`, through chromedriver): what a page does as it
    /// loads can be watched from its very start.
    pub fn on_every_document(&self, source: &str) -> Result<(), String> {
        self.call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}}),
        )
        .map(drop)
    }

    /// Save a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self
            .call("GET", "/screenshot", Value::Null)
            .expect("screenshot");
        let png = base64(v.as_str().unwrap_or_default());
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", Value::Null);
        end_group(&mut self.driver);
    }
}

/// Ends the driver and every browser process in its group.
fn end_group(driver: &mut Child) {
    if let Ok(group) = i32::try_from(driver.id()) {
        // SAFETY: killpg has no memory-safety preconditions; the group is the driver's.
        unsafe { libc::killpg(group, libc::SIGKILL) };
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Standard base64 (what WebDriver's screenshots are), decoded.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64("aGVsbG8="), b"hello");
        assert_eq!(super::base64("aGk="), b"hi");
        assert_eq!(super::base64(""), b"");
    }
}
