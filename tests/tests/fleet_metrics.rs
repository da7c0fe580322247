//! The agents' Prometheus metrics, scraped by a real Prometheus server (Debian's
//! `prometheus`, started here on a free port): one agent serves them on a loopback port
//! (plain HTTP), another on its mutual-TLS port to a scraper holding a `read` certificate of
//! the fleet CA. The first runs a Python app that exposes a counter on its own `/metrics`
//! (read by the agent) and a Node app in cluster mode that sends StatsD lines to the agent's
//! metrics socket; the test moves both counters and reads them back, relabelled per host and
//! instance, through Prometheus's HTTP API.

mod local_fleet;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use local_fleet::LocalFleet;
use pmfleet_shared::tls::Role;
use pmfleet_testkit::{free_port, get_path, require_tool, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

const PYTHON_APP: &str = r##"import http.server, os
count = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global count
        if self.path == "/bump":
            count += 1
            body = b"bumped\n"
        elif self.path == "/metrics":
            body = ("# TYPE jobs_done_total counter\njobs_done_total %d\nqueue_depth{queue=\"mail\"} 4\n" % count).encode()
        else:
            body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"##;

const NODE_APP: &str = r#"const http = require("http");
const net = require("net");
const metrics = net.createConnection(process.env.PMFLEET_METRICS_SOCKET);
metrics.on("error", (e) => console.error("metrics socket: " + e));
http.createServer((req, res) => {
  if (req.url === "/bump") metrics.write("jobs_done:1|c\nusers:7|g\n");
  res.end("ok " + process.pid + "\n");
}).listen(process.env.PORT);
"#;

/// A Prometheus server scraping `config`'s jobs every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape_configs: Value) -> Prometheus {
        let data = tempfile::tempdir().expect("prometheus dir");
        let port = free_port();
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": scrape_configs,
        });
        // YAML is a superset of JSON: Prometheus reads this file as is.
        let file = data.path().join("prometheus.yml");
        std::fs::write(&file, config.to_string()).expect("prometheus.yml");
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.path().join("prometheus.log")).expect("log"))
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _data: data,
        }
    }

    /// The samples of an instant query (each a (labels, value) pair).
    fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let Ok(body) = get_path("127.0.0.1", self.port, &path) else {
            return Vec::new();
        };
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        parsed["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let v = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), v))
            })
            .collect()
    }

    /// Waits until `promql` gives `want` samples (or any, when `None`) and returns them.
    fn wait(
        &self,
        promql: &str,
        what: &str,
        ok: impl Fn(&[(Value, f64)]) -> bool,
    ) -> Vec<(Value, f64)> {
        wait_for(WAIT, what, || {
            let got = self.query(promql);
            ok(&got).then_some(got)
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value_of(samples: &[(Value, f64)], label: &str, want: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(m, _)| m[label] == want)
        .map(|(_, v)| *v)
}

#[test]
fn prometheus_scrapes_every_agent_and_the_apps_own_counters() {
    require_tool!("/usr/bin/prometheus", "prometheus");
    let metrics_port = free_port();
    let plain = LocalFleet::start(1, Some(&format!("127.0.0.1:{metrics_port}")));
    let tls = LocalFleet::start(1, Some("tls"));
    let agent = &plain.agents[0];
    let (py_port, node_port) = (free_port(), free_port());
    agent.write("counter.py", PYTHON_APP);
    agent.write("counter.js", NODE_APP);
    agent.write(
        "ecosystem.json",
        &json!({"apps": [
            {"name": "py", "script": "counter.py", "env": {"PORT": py_port},
             "port": py_port, "metrics": "/metrics", "healthcheck": "/"},
            {"name": "node", "script": "counter.js", "instances": 2, "exec_mode": "cluster",
             "port": node_port, "env": {"PORT": node_port}},
        ]})
        .to_string(),
    );
    agent.ok(&["start", "ecosystem.json"]);
    agent.home.wait_online("py", 1);
    agent.home.wait_online("node", 2);

    // The scraper of the second agent holds a `read` certificate of its fleet CA.
    let scraper = tls
        .ca
        .issue_client_cert("prometheus", Role::Read, 30)
        .expect("read certificate");
    let certs = tempfile::tempdir().expect("certs");
    let file = |name: &str, text: &str| {
        let p = certs.path().join(name);
        std::fs::write(&p, text).expect("cert file");
        p.display().to_string()
    };
    let prometheus = Prometheus::start(json!([
        {"job_name": "agent-plain", "static_configs": [{"targets": [format!("127.0.0.1:{metrics_port}")]}]},
        {"job_name": "agent-tls", "scheme": "https",
         "tls_config": {
            "ca_file": file("ca.pem", tls.ca.cert_pem()),
            "cert_file": file("prometheus.pem", &scraper.cert_pem),
            "key_file": file("prometheus.key", &scraper.key_pem),
            "server_name": tls.agents[0].address,
         },
         "static_configs": [{"targets": [format!("{}:{}", tls.agents[0].address, tls.port)]}]},
    ]));

    let up = prometheus.wait("up", "both agents scraped", |s| {
        value_of(s, "job", "agent-plain") == Some(1.0)
            && value_of(s, "job", "agent-tls") == Some(1.0)
    });
    assert_eq!(up.len(), 2, "{up:?}");
    let rss = prometheus.wait(
        "pmfleet_agent_resident_memory_bytes",
        "the agents' own RSS",
        |s| s.len() == 2,
    );
    assert!(rss.iter().all(|(_, v)| *v > 0.0), "{rss:?}");
    prometheus.wait(
        "pmfleet_agent_uptime_seconds{job=\"agent-tls\"}",
        "the TLS agent's uptime",
        |s| s.len() == 1,
    );

    let online = prometheus.wait(
        "pmfleet_instance_up{app=\"node\"}",
        "both node instances up",
        |s| s.len() == 2 && s.iter().all(|(_, v)| *v == 1.0),
    );
    let slots: Vec<&str> = online
        .iter()
        .filter_map(|(m, _)| m["app_instance"].as_str())
        .collect();
    assert!(slots.contains(&"0") && slots.contains(&"1"), "{online:?}");
    prometheus.wait(
        "pmfleet_app_instances_desired{app=\"node\"} == 2 and pmfleet_app_instances_online{app=\"node\"} == 2",
        "node desired and online",
        |s| s.len() == 1,
    );
    prometheus.wait(
        "pmfleet_instance_cpu_seconds_total{app=\"py\"}",
        "py's CPU seconds",
        |s| s.len() == 1,
    );
    prometheus.wait("pmfleet_instance_ready{app=\"py\"} == 1", "py ready", |s| {
        s.len() == 1
    });
    prometheus.wait(
        "pmfleet_instance_status{app=\"py\",status=\"online\"} == 1",
        "py online",
        |s| s.len() == 1,
    );
    prometheus.wait(
        "pmfleet_instance_restarts_total{app=\"py\"}",
        "py's restarts",
        |s| s.len() == 1,
    );

    // The test moves the apps' own counters.
    for _ in 0..3 {
        get_path("127.0.0.1", py_port, "/bump").expect("bump py");
    }
    for _ in 0..5 {
        get_path("127.0.0.1", node_port, "/bump").expect("bump node");
    }
    let py = prometheus.wait(
        "pmfleet_custom_jobs_done_total{app=\"py\"}",
        "py's own counter at 3",
        |s| s.len() == 1 && s[0].1 == 3.0,
    );
    assert_eq!(py[0].0["app_instance"], "0", "{py:?}");
    assert!(py[0].0["host"].is_string(), "{py:?}");
    prometheus.wait(
        "pmfleet_custom_queue_depth{app=\"py\",queue=\"mail\"}",
        "py's labelled gauge",
        |s| s.len() == 1 && s[0].1 == 4.0,
    );
    prometheus.wait(
        "sum(pmfleet_custom_jobs_done{app=\"node\"})",
        "node's StatsD counter at 5 over its instances",
        |s| s.len() == 1 && s[0].1 == 5.0,
    );
    prometheus.wait("pmfleet_custom_users{app=\"node\"}", "node's gauge", |s| {
        !s.is_empty() && s.iter().all(|(_, v)| *v == 7.0)
    });

    // The same values reach `status` (and so monit and the dashboard).
    let status = plain
        .pmfleet(&["status", "--json"])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    let hosts: Value = serde_json::from_str(&text).expect("status --json");
    let processes = &hosts[0]["agent"]["processes"];
    let py_row = processes
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "py")
        .expect("py in status");
    assert_eq!(py_row["app_metrics"]["jobs_done_total"], 3.0, "{text}");
    assert!(
        hosts[0]["agent"]["host"]["memory_total_bytes"].as_u64() > Some(0),
        "{text}"
    );
}

#[test]
fn plain_http_metrics_are_refused_on_anything_but_loopback() {
    let fleet = LocalFleet::start(1, Some("0.0.0.0:9"));
    let log = wait_for(WAIT, "the agent says why it serves no metrics", || {
        let log = fleet.agents[0].home.daemon_log();
        log.contains("loopback address only").then_some(log)
    });
    assert!(log.contains("metrics"), "{log}");
}

/// The Grafana dashboard in examples/, as a person imports it.
const DASHBOARD: &str = include_str!("../../examples/grafana/pmfleet.json");

#[test]
fn every_query_of_the_grafana_dashboard_answers_from_a_real_prometheus() {
    require_tool!("/usr/bin/prometheus", "prometheus");
    let metrics_port = free_port();
    let fleet = LocalFleet::start(1, Some(&format!("127.0.0.1:{metrics_port}")));
    let agent = &fleet.agents[0];
    let node_port = free_port();
    agent.write("counter.js", NODE_APP);
    agent.write(
        "ecosystem.json",
        &json!({"apps": [
            {"name": "node", "script": "counter.js", "instances": 2, "exec_mode": "cluster",
             "port": node_port, "env": {"PORT": node_port}},
        ]})
        .to_string(),
    );
    agent.ok(&["start", "ecosystem.json"]);
    agent.home.wait_online("node", 2);
    get_path("127.0.0.1", node_port, "/bump").expect("bump node");
    let prometheus = Prometheus::start(json!([
        {"job_name": "agent", "static_configs": [{"targets": [format!("127.0.0.1:{metrics_port}")]}]},
    ]));

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let host = variables
        .iter()
        .find(|v| v["name"] == "host")
        .expect("a host variable");
    assert_eq!(
        host["definition"], "label_values(pmfleet_agent_info, host)",
        "{host}"
    );
    prometheus.wait("pmfleet_agent_info", "the host variable's values", |s| {
        s.len() == 1 && s[0].0["host"].is_string()
    });

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queries = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            queries.push((title, target["expr"].as_str().expect("an expr")));
        }
    }
    assert!(queries.len() >= panels.len(), "{queries:?}");
    // Grafana's variables as "All" and a one-minute rate window.
    for (title, expr) in queries {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$host", ".*");
        assert!(!promql.contains('$'), "{title}: {promql}");
        prometheus.wait(&promql, &format!("{title}: {promql}"), |s| !s.is_empty());
    }
}
