//! Every agent of a fleet on one kept connection each, for the views that ask every host
//! again and again (`monit` each second, the dashboard): a mutual-TLS handshake costs far
//! more than a `status`, so each host's connection is kept and reused, and made again after
//! it fails. Requests to one host wait for each other; hosts never wait for one another.
//! Streams (`logs --follow`) get connections of their own.

use std::sync::Arc;
use std::time::Duration;

use pmfleet_shared::protocol::{Request, Response};
use tokio::sync::Mutex;

use super::client::{AgentClient, AgentError, AgentSession};
use super::targets::AgentTarget;

/// The fleet's agents and a kept connection to each.
#[derive(Clone)]
pub struct FleetSessions {
    pub client: AgentClient,
    pub targets: Arc<Vec<AgentTarget>>,
    conns: Arc<Vec<Mutex<Option<AgentSession>>>>,
}

impl FleetSessions {
    pub fn new(client: AgentClient, targets: Vec<AgentTarget>) -> FleetSessions {
        let conns = targets.iter().map(|_| Mutex::new(None)).collect();
        FleetSessions {
            client,
            targets: Arc::new(targets),
            conns: Arc::new(conns),
        }
    }

    /// Ask host `host` (an index into the targets) on its kept connection, connecting first
    /// when there is none, and once more on a fresh one when the kept one had gone stale
    /// (the agent closes connections idle for its read timeout).
    pub async fn ask(&self, host: usize, request: &Request) -> Result<Response, AgentError> {
        let (Some(target), Some(slot)) = (self.targets.get(host), self.conns.get(host)) else {
            return Err(AgentError::Refused(format!("no host #{host}")));
        };
        let mut conn = slot.lock().await;
        let reused = conn.is_some();
        for attempt in 0..2 {
            if conn.is_none() {
                *conn = Some(
                    self.client
                        .session(&target.host, target.port, &target.via)
                        .await?,
                );
            }
            let Some(session) = conn.as_mut() else {
                continue;
            };
            match session.ask(request).await {
                Ok(answer) => return Ok(answer),
                // The agent answered, refusing: the connection is still good.
                Err(AgentError::Refused(why)) => return Err(AgentError::Refused(why)),
                Err(e) => {
                    *conn = None;
                    if attempt == 1 || !reused {
                        return Err(e);
                    }
                }
            }
        }
        Err(AgentError::Timeout(Duration::ZERO))
    }
}
