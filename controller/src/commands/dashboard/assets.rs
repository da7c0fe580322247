//! The dashboard's two static files, served from the binary: the script (confirmations before
//! an action, live logs through `EventSource`, the instance table refreshed) and the style
//! sheet. Both are files of their own so the pages' Content-Security-Policy can forbid inline
//! script and style.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const SCRIPT: &str = r#"// pmfleet dashboard: confirmations, live logs, the instances refreshed.
document.querySelectorAll("form[data-confirm]").forEach((f) => {
  f.addEventListener("submit", (e) => { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
});
document.querySelectorAll("pre[data-src]").forEach((pre) => {
  const source = new EventSource(pre.dataset.src);
  source.onmessage = (m) => { pre.textContent += m.data + "\n"; pre.scrollTop = pre.scrollHeight; };
});
const instances = document.getElementById("instances");
if (instances && instances.dataset.src) {
  setInterval(async () => {
    const r = await fetch(instances.dataset.src);
    if (r.ok) instances.innerHTML = await r.text();
  }, 1000);
}
"#;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.ok{background:#d4f7d4}.warn{background:#fff3c4}.bad{background:#ffd0d0}.down{background:#ffb3b3;font-weight:bold}.none{color:#888}.actions form{display:inline;margin-right:.3em}pre.logs{background:#111;color:#ddd;padding:.5em;max-height:20em;overflow:auto}.chart{width:640px;height:180px;display:block}.message{background:#eef;padding:.5em}.axis,.legend{font-size:11px}nav a{margin-right:1em}\n";

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
