//! After `current` switched on a host, its agent starts or reloads the apps of the new release
//! (zero downtime) and answers once they are ready — or that they never became ready, and the
//! host goes back to the release it served.
//!
//! The request names the deploy root and the release id only: the agent reads the release's
//! environment from its marker, which the deploy wrote over SSH (a marker left empty by an
//! older pmfleet is given one here, over SSH, first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::ecosystem::AgentSettings;
use pmfleet_shared::protocol::{
    ApplyRelease, MAX_WATCH_MS, PreparedRelease, Request, Response, WatchRelease,
};

use super::client::{AgentClient, AgentError};
use super::route::Via;
use crate::deploy::error::HostError;
use crate::deploy::fleet::Member;
use crate::deploy::scripts;

/// How long the apps of a release may take to become ready on one host.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// This machine has no fleet certificate to talk to the agents with.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot talk to the agents: {reason}\n  hint: run `pmfleet ca init` and `pmfleet deploy {env} setup`, or set `agent: false`"
)]
pub struct AgentsUnavailable {
    pub env: String,
    pub reason: String,
}

/// Why the apps of a release are not serving from it on one host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// The agent could not be reached at all.
    #[error(
        "the agent on {host} does not answer ({source}); `pmfleet deploy {env} setup` installs and starts it"
    )]
    Unreachable {
        host: String,
        env: String,
        source: Arc<AgentError>,
    },
    /// The agent answered with an error, or badly.
    #[error("agent: {0}")]
    Agent(Arc<AgentError>),
    #[error("agent: unexpected answer {0}")]
    UnexpectedAnswer(String),
    /// The release's marker could not be given its environment over SSH.
    #[error("the release's marker: {0}")]
    Marker(Arc<HostError>),
    /// The apps that did not become ready, each with why.
    #[error("apps not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    /// The instances that failed inside the watch window, each with why (and its last log
    /// lines).
    #[error("unhealthy in the watch window: {}", .0.join("; "))]
    Unhealthy(Vec<String>),
}

/// The agent of an environment's hosts.
#[derive(Clone)]
pub struct Agents {
    pub client: AgentClient,
    pub settings: AgentSettings,
}

impl Agents {
    /// The agents of `env`, or `None` with `agent: false`. Fails when this machine has no
    /// fleet certificate to talk to them with.
    pub fn for_env(
        env: &pmfleet_shared::ecosystem::DeployEnv,
    ) -> Result<Option<Agents>, AgentsUnavailable> {
        let Some(settings) = &env.agent else {
            return Ok(None);
        };
        let client = super::targets::client(Duration::from_secs(10)).map_err(|reason| {
            AgentsUnavailable {
                env: env.name.clone(),
                reason,
            }
        })?;
        Ok(Some(Agents {
            client,
            settings: settings.clone(),
        }))
    }

    /// The path to `member`'s agent: through its SSH connection with `via: "ssh"`.
    fn via(&self, member: &Member) -> Via {
        Via::for_member(&self.settings, &member.host, &member.conn)
    }

    /// The releases the apps on `member` run from; an error when the agent cannot say.
    pub async fn releases_in_use(&self, member: &Member) -> Result<Vec<String>, AgentError> {
        match self
            .client
            .request(
                &member.host,
                self.settings.port,
                &self.via(member),
                &Request::Status,
                None,
            )
            .await?
        {
            Response::Status(status) => {
                let mut releases: Vec<String> = status
                    .processes
                    .into_iter()
                    .filter_map(|p| p.release)
                    .collect();
                releases.sort();
                releases.dedup();
                Ok(releases)
            }
            other => Err(AgentError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sends `request` to `member`'s agent, answered within `deadline`: an agent that
    /// cannot be reached is [`ApplyError::Unreachable`], any other failure
    /// [`ApplyError::Agent`].
    async fn send(
        &self,
        member: &Member,
        env_name: &str,
        request: &Request,
        deadline: Duration,
    ) -> Result<Response, ApplyError> {
        self.client
            .request(
                &member.host,
                self.settings.port,
                &self.via(member),
                request,
                Some(deadline),
            )
            .await
            .map_err(|e| {
                if e.is_unreachable() {
                    ApplyError::Unreachable {
                        host: member.host.clone(),
                        env: env_name.to_string(),
                        source: Arc::new(e),
                    }
                } else {
                    ApplyError::Agent(Arc::new(e))
                }
            })
    }

    /// Asks `member`'s agent to run the apps of `<root>/releases/<release>`; `Ok` says what it
    /// did, `Err` why the apps are not serving from it. `env_name` and `env` reach the agent
    /// only through the release's marker, and only when an older pmfleet left it empty.
    pub async fn apply(
        &self,
        member: &Member,
        root: &str,
        release: &str,
        env_name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<String, ApplyError> {
        let legacy = legacy_marker(release, env_name, env);
        member
            .run(&scripts::fill_marker(root, release, &legacy))
            .await
            .map_err(|e| ApplyError::Marker(Arc::new(e)))?;
        let request = Request::ApplyRelease(Box::new(ApplyRelease {
            root: root.into(),
            release: release.to_string(),
            timeout_ms: APPLY_TIMEOUT.as_millis() as u64,
        }));
        let answer = self
            .send(
                member,
                env_name,
                &request,
                APPLY_TIMEOUT + Duration::from_secs(10),
            )
            .await?;
        let Response::Applied(report) = answer else {
            return Err(ApplyError::UnexpectedAnswer(format!("{answer:?}")));
        };
        let failed: Vec<String> = report
            .apps
            .iter()
            .filter(|a| !a.ok)
            .map(|a| format!("{}: {}", a.name, a.message))
            .collect();
        if !failed.is_empty() {
            return Err(ApplyError::NotReady(failed));
        }
        let names: Vec<String> = report
            .apps
            .iter()
            .map(|a| format!("{} {}", a.name, format!("{:?}", a.action).to_lowercase()))
            .collect();
        Ok(if names.is_empty() {
            "no apps in the release's ecosystem file".to_string()
        } else {
            names.join(", ")
        })
    }
}

impl Agents {
    /// Asks `member`'s agent to watch the apps of `<root>/releases/<release>` for `period`
    /// (the watch window after a batch switched); `Ok` says they stayed healthy, `Err` what
    /// went wrong first.
    pub async fn watch(
        &self,
        member: &Member,
        root: &str,
        release: &str,
        env_name: &str,
        period: Duration,
    ) -> Result<String, ApplyError> {
        let period_ms = (period.as_millis() as u64).min(MAX_WATCH_MS);
        let request = Request::WatchRelease(Box::new(WatchRelease {
            root: root.into(),
            release: release.to_string(),
            period_ms,
        }));
        let answer = self
            .send(
                member,
                env_name,
                &request,
                Duration::from_millis(period_ms) + Duration::from_secs(30),
            )
            .await?;
        let Response::Watched(report) = answer else {
            return Err(ApplyError::UnexpectedAnswer(format!("{answer:?}")));
        };
        if !report.ok() {
            return Err(ApplyError::Unhealthy(report.problems));
        }
        Ok(format!(
            "{} healthy for {:.0} s",
            if report.apps.is_empty() {
                "no apps".to_string()
            } else {
                report.apps.join(", ")
            },
            report.watched_ms as f64 / 1000.0
        ))
    }
}

/// The environment given to a release whose marker an older pmfleet left empty: the deploy's,
/// with `PMFLEET_RELEASE` naming that release (and its SHA and ref left out when they are
/// another release's).
fn legacy_marker(release: &str, env_name: &str, env: &BTreeMap<String, String>) -> PreparedRelease {
    let mut env = env.clone();
    if env.get("PMFLEET_RELEASE").map(String::as_str) != Some(release) {
        env.remove("PMFLEET_SHA");
        env.remove("PMFLEET_REF");
        env.insert("PMFLEET_RELEASE".into(), release.to_string());
    }
    env.insert("PMFLEET_ENV".into(), env_name.to_string());
    PreparedRelease {
        env_name: env_name.to_string(),
        env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_marker_names_its_own_release() {
        let env = BTreeMap::from([
            ("NODE_ENV".to_string(), "production".to_string()),
            ("PMFLEET_RELEASE".to_string(), "2".to_string()),
            ("PMFLEET_SHA".to_string(), "bbb".to_string()),
            ("PMFLEET_REF".to_string(), "main".to_string()),
        ]);
        let same = legacy_marker("2", "production", &env);
        assert_eq!(same.env["PMFLEET_SHA"], "bbb");
        assert_eq!(same.env["PMFLEET_ENV"], "production");
        let other = legacy_marker("1", "production", &env);
        assert_eq!(other.env["PMFLEET_RELEASE"], "1");
        assert!(!other.env.contains_key("PMFLEET_SHA"));
        assert!(!other.env.contains_key("PMFLEET_REF"));
        assert_eq!(other.env["NODE_ENV"], "production");
        assert_eq!(other.env_name, "production");
    }
}
