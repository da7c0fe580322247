//! What the fleet views (`monit`, the dashboard) and the metrics endpoint read beyond `list`:
//! each instance's cumulative CPU time, its git ref and the values its own code measures
//! ([`InstanceExtra`]), and the host's load, memory and disk ([`HostLoad`]). Every field is
//! optional on the wire, so an older agent's answers still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most app metrics one instance may report; the rest are dropped (a misbehaving app
/// cannot grow the agent's answers without bound).
pub const MAX_APP_METRICS: usize = 64;

/// The longest app metric name kept.
pub const MAX_APP_METRIC_NAME: usize = 100;

/// The parts of a [`super::ProcessInfo`] the fleet views add; flattened into it on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceExtra {
    /// CPU time of the instance's process tree since its process started, in seconds
    /// (Prometheus's `_seconds_total` counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// The git ref a deploy started it from (`PMFLEET_REF`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The app's own metrics, by name (PM2's custom metrics): what its metrics endpoint
    /// answered at the last scrape, or what it sent to the agent's metrics socket.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_metrics: BTreeMap<String, f64>,
}

/// The host as a whole, when its agent answered `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    /// The 1-minute load average.
    pub load1: f64,
    /// CPUs online.
    pub cpus: u32,
    pub memory_total_bytes: u64,
    /// Memory the kernel says is available (`MemAvailable`).
    pub memory_available_bytes: u64,
    /// The filesystem of the agent's home.
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
}

impl HostLoad {
    /// Memory in use, as a share of the total (0.0–1.0).
    pub fn memory_used(&self) -> f64 {
        share(
            self.memory_total_bytes
                .saturating_sub(self.memory_available_bytes),
            self.memory_total_bytes,
        )
    }

    /// Disk in use, as a share of the total (0.0–1.0).
    pub fn disk_used(&self) -> f64 {
        share(
            self.disk_total_bytes
                .saturating_sub(self.disk_available_bytes),
            self.disk_total_bytes,
        )
    }
}

fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ExecModeSpec, ProcessInfo, Status};

    #[test]
    fn extras_ride_flat_in_a_process_row_and_are_optional() {
        let row: ProcessInfo = serde_json::from_str(
            r#"{"id":0,"name":"api","namespace":"default","mode":"fork","instance":0,
                "pid":null,"status":"online","uptime_ms":null,"restarts":0,
                "cpu_percent":null,"rss_bytes":null}"#,
        )
        .unwrap();
        assert_eq!(row.extra, InstanceExtra::default());
        assert_eq!(row.mode, ExecModeSpec::Fork);
        let mut with = row.clone();
        with.status = Status::Online;
        with.extra.cpu_seconds = Some(1.5);
        with.extra.git_ref = Some("origin/main".into());
        with.extra.app_metrics.insert("jobs_done".into(), 3.0);
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["ref"], "origin/main");
        assert_eq!(json["app_metrics"]["jobs_done"], 3.0);
        assert_eq!(json["cpu_seconds"], 1.5);
        assert_eq!(serde_json::from_value::<ProcessInfo>(json).unwrap(), with);
        let plain = serde_json::to_value(&row).unwrap();
        assert!(plain.get("app_metrics").is_none() && plain.get("ref").is_none());
    }

    #[test]
    fn shares_of_memory_and_disk() {
        let load = HostLoad {
            load1: 0.5,
            cpus: 2,
            memory_total_bytes: 1000,
            memory_available_bytes: 250,
            disk_total_bytes: 0,
            disk_available_bytes: 0,
        };
        assert!((load.memory_used() - 0.75).abs() < 1e-9);
        assert_eq!(load.disk_used(), 0.0);
    }
}
