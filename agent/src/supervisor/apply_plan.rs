//! What applying a release does to each app, and why: a pure decision from what runs now and
//! what the release's file says. `apply_release` (in `release`) carries it out; the rolling
//! `reload` verb asks [`reload_plan`] the same question about the one choice it has.
//!
//! - not known → **start** it;
//! - known but stopped → **start** it (with the release's spec);
//! - running the very same spec and count, every instance online → **unchanged**;
//! - both specs cluster mode on the same port → **reload** (rolling, zero downtime), then
//!   scale to the new count;
//! - otherwise → **restart** (stop, then start): fork mode has no rolling reload, and a new
//!   port or exec mode needs a new socket.
//!
//! The instance count stays what the host has (a `scale` done there stands) while the file's
//! `instances` is unchanged; a new `instances` in the file is resolved afresh.

use pmfleet_shared::protocol::{AppSpec, AppliedAction, ExecModeSpec};

use super::scaling::{self, ScalePlan};

/// What runs now of an app the release names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current<'a> {
    pub spec: &'a AppSpec,
    pub count: u32,
    pub running: bool,
    /// Every one of its `count` instances is online.
    pub all_online: bool,
}

/// What to do with one app of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppPlan {
    /// Start it with `count` instances, each waited for until ready.
    Start { count: u32, why: StartWhy },
    /// Leave it as it is.
    Unchanged { count: u32 },
    /// Stop it, then start it with `count` instances.
    Restart { count: u32, why: RestartWhy },
    /// Roll through the slots below `reload` with the new spec, one at a time, then scale
    /// from `from` to `to` instances as `scale` says.
    Reload {
        reload: u32,
        from: u32,
        to: u32,
        scale: ScalePlan,
    },
}

impl AppPlan {
    /// How the report names it.
    pub fn action(&self) -> AppliedAction {
        match self {
            AppPlan::Start { .. } => AppliedAction::Started,
            AppPlan::Unchanged { .. } => AppliedAction::Unchanged,
            AppPlan::Restart { .. } => AppliedAction::Restarted,
            AppPlan::Reload { .. } => AppliedAction::Reloaded,
        }
    }
}

/// Why an app is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartWhy {
    /// The agent did not know it.
    New,
    /// It was stopped.
    NotRunning,
}

/// Why an app is stopped and started rather than reloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestartWhy {
    ForkMode,
    PortChanged {
        from: Option<u16>,
        to: Option<u16>,
    },
    ExecModeChanged {
        from: ExecModeSpec,
        to: ExecModeSpec,
    },
}

impl std::fmt::Display for RestartWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = |p: &Option<u16>| p.map_or("none".to_string(), |p| p.to_string());
        match self {
            RestartWhy::ForkMode => f.write_str("fork mode has no rolling reload"),
            RestartWhy::PortChanged { from, to } => {
                write!(f, "the port changed from {} to {}", port(from), port(to))
            }
            RestartWhy::ExecModeChanged { from, to } => {
                write!(f, "the exec mode changed from {from} to {to}")
            }
        }
    }
}

/// What to do with the app the release describes as `new`, given what runs now.
pub(crate) fn plan(current: Option<Current<'_>>, new: &AppSpec, cpus: u32) -> AppPlan {
    let Some(now) = current else {
        return AppPlan::Start {
            count: new.instances.resolve(cpus),
            why: StartWhy::New,
        };
    };
    let old = now.spec;
    let count = if new.instances == old.instances {
        now.count
    } else {
        new.instances.resolve(cpus)
    };
    if now.running && old == new && count == now.count && now.all_online {
        return AppPlan::Unchanged { count };
    }
    if !now.running {
        return AppPlan::Start {
            count,
            why: StartWhy::NotRunning,
        };
    }
    let rolling = old.exec_mode == ExecModeSpec::Cluster
        && new.exec_mode == ExecModeSpec::Cluster
        && old.port == new.port;
    if !rolling {
        let why = if old.exec_mode == ExecModeSpec::Fork && new.exec_mode == old.exec_mode {
            RestartWhy::ForkMode
        } else if old.port != new.port {
            RestartWhy::PortChanged {
                from: old.port,
                to: new.port,
            }
        } else {
            RestartWhy::ExecModeChanged {
                from: old.exec_mode,
                to: new.exec_mode,
            }
        };
        return AppPlan::Restart { count, why };
    }
    AppPlan::Reload {
        reload: now.count.min(count),
        from: now.count,
        to: count,
        scale: scaling::plan(now.count, count, true),
    }
}

/// Why the `reload` verb restarts an app instead of rolling through it; `None`: it rolls.
pub(crate) fn reload_plan(spec: &AppSpec, running: bool) -> Option<&'static str> {
    if spec.exec_mode == ExecModeSpec::Fork {
        Some("fork mode has no rolling reload")
    } else if !running {
        Some("it was not running")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use pmfleet_shared::protocol::InstancesSpec;

    use super::*;

    fn spec(mode: ExecModeSpec, port: Option<u16>, instances: InstancesSpec) -> AppSpec {
        let app = pmfleet_shared::ecosystem::App::from_script("/bin/sh");
        let dir = std::path::PathBuf::from("/");
        let mut s = super::super::spec::resolve(&app, &dir, &Default::default(), None)
            .expect("a script app resolves");
        s.exec_mode = mode;
        s.port = port;
        s.instances = instances;
        s
    }

    fn cluster(port: u16, n: u32) -> AppSpec {
        spec(ExecModeSpec::Cluster, Some(port), InstancesSpec::Count(n))
    }

    fn fork() -> AppSpec {
        spec(ExecModeSpec::Fork, None, InstancesSpec::Count(1))
    }

    fn now(spec: &AppSpec, count: u32, running: bool, all_online: bool) -> Option<Current<'_>> {
        Some(Current {
            spec,
            count,
            running,
            all_online,
        })
    }

    fn with_env(mut s: AppSpec, k: &str, v: &str) -> AppSpec {
        s.env.insert(k.into(), v.into());
        s
    }

    fn reload(reload: u32, from: u32, to: u32, scale: ScalePlan) -> AppPlan {
        AppPlan::Reload {
            reload,
            from,
            to,
            scale,
        }
    }

    #[test]
    fn plans() {
        let c2 = cluster(3000, 2);
        let c2_new = with_env(cluster(3000, 2), "PMFLEET_RELEASE", "2");
        let c4 = cluster(3000, 4);
        let c1 = cluster(3000, 1);
        let c2_other_port = cluster(3001, 2);
        let c2_no_port = spec(ExecModeSpec::Cluster, None, InstancesSpec::Count(2));
        let f = fork();
        let f_new = with_env(fork(), "PMFLEET_RELEASE", "2");
        let f_x = with_env(fork(), "X", "1");
        let cmax = spec(ExecModeSpec::Cluster, Some(3000), InstancesSpec::Max);
        let call_but = spec(ExecModeSpec::Cluster, Some(3000), InstancesSpec::AllBut(1));
        let fork_to_cluster = RestartWhy::ExecModeChanged {
            from: ExecModeSpec::Fork,
            to: ExecModeSpec::Cluster,
        };
        let rows: Vec<(&str, Option<Current<'_>>, &AppSpec, AppPlan)> = vec![
            (
                "a new app starts with the file's count",
                None,
                &c2,
                AppPlan::Start {
                    count: 2,
                    why: StartWhy::New,
                },
            ),
            (
                "a new app with instances: max gets one per CPU",
                None,
                &cmax,
                AppPlan::Start {
                    count: 8,
                    why: StartWhy::New,
                },
            ),
            (
                "a new app with instances: -1 gets the CPUs but one",
                None,
                &call_but,
                AppPlan::Start {
                    count: 7,
                    why: StartWhy::New,
                },
            ),
            (
                "the same release, all online: unchanged",
                now(&c2, 2, true, true),
                &c2,
                AppPlan::Unchanged { count: 2 },
            ),
            (
                "the same release scaled on the host: unchanged, the count kept",
                now(&c2, 5, true, true),
                &c2,
                AppPlan::Unchanged { count: 5 },
            ),
            (
                "the same release with an instance down: reloaded",
                now(&c2, 2, true, false),
                &c2,
                reload(2, 2, 2, ScalePlan::Keep),
            ),
            (
                "the same release, stopped: started",
                now(&c2, 2, false, false),
                &c2,
                AppPlan::Start {
                    count: 2,
                    why: StartWhy::NotRunning,
                },
            ),
            (
                "a new release of a stopped app: started with the kept count",
                now(&c2, 3, false, false),
                &c2_new,
                AppPlan::Start {
                    count: 3,
                    why: StartWhy::NotRunning,
                },
            ),
            (
                "cluster on the same port: rolling reload",
                now(&c2, 2, true, true),
                &c2_new,
                reload(2, 2, 2, ScalePlan::Keep),
            ),
            (
                "a host scale stands while the file's instances is unchanged",
                now(&c2, 5, true, true),
                &c2_new,
                reload(5, 5, 5, ScalePlan::Keep),
            ),
            (
                "the file asks for more: reload the running ones, then add",
                now(&c2, 2, true, true),
                &c4,
                reload(2, 2, 4, ScalePlan::Add(2..4)),
            ),
            (
                "the file asks for fewer: reload the kept ones, then remove",
                now(&c2, 2, true, true),
                &c1,
                reload(1, 2, 1, ScalePlan::Remove { from: 1 }),
            ),
            (
                "a file count replaces a host scale",
                now(&c2, 5, true, true),
                &c4,
                reload(4, 5, 4, ScalePlan::Remove { from: 4 }),
            ),
            (
                "instances: max resolved on this host when the file changes to it",
                now(&c2, 2, true, true),
                &cmax,
                reload(2, 2, 8, ScalePlan::Add(2..8)),
            ),
            (
                "fork mode: restarted",
                now(&f, 1, true, true),
                &f_new,
                AppPlan::Restart {
                    count: 1,
                    why: RestartWhy::ForkMode,
                },
            ),
            (
                "fork mode, an instance down, same spec: restarted",
                now(&f, 1, true, false),
                &f,
                AppPlan::Restart {
                    count: 1,
                    why: RestartWhy::ForkMode,
                },
            ),
            (
                "a new port: restarted",
                now(&c2, 2, true, true),
                &c2_other_port,
                AppPlan::Restart {
                    count: 2,
                    why: RestartWhy::PortChanged {
                        from: Some(3000),
                        to: Some(3001),
                    },
                },
            ),
            (
                "the port removed: restarted",
                now(&c2, 2, true, true),
                &c2_no_port,
                AppPlan::Restart {
                    count: 2,
                    why: RestartWhy::PortChanged {
                        from: Some(3000),
                        to: None,
                    },
                },
            ),
            (
                "fork to cluster: restarted (a port change is named first)",
                now(&f, 1, true, true),
                &c2,
                AppPlan::Restart {
                    count: 2,
                    why: RestartWhy::PortChanged {
                        from: None,
                        to: Some(3000),
                    },
                },
            ),
            (
                "fork to cluster on no port: the exec mode changed",
                now(&f, 1, true, true),
                &c2_no_port,
                AppPlan::Restart {
                    count: 2,
                    why: fork_to_cluster.clone(),
                },
            ),
            (
                "cluster to fork: the exec mode changed",
                now(&c2_no_port, 2, true, true),
                &f_x,
                AppPlan::Restart {
                    count: 1,
                    why: RestartWhy::ExecModeChanged {
                        from: ExecModeSpec::Cluster,
                        to: ExecModeSpec::Fork,
                    },
                },
            ),
        ];
        let mut failures = Vec::new();
        for (name, current, new, expected) in rows {
            let got = plan(current, new, 8);
            if got != expected {
                failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            RestartWhy::PortChanged {
                from: None,
                to: Some(80)
            }
            .to_string(),
            "the port changed from none to 80"
        );
        assert_eq!(
            RestartWhy::ExecModeChanged {
                from: ExecModeSpec::Fork,
                to: ExecModeSpec::Cluster
            }
            .to_string(),
            "the exec mode changed from fork to cluster"
        );
        assert_eq!(
            AppPlan::Unchanged { count: 1 }.action(),
            AppliedAction::Unchanged
        );
    }

    #[test]
    fn the_reload_verb_rolls_only_a_running_cluster_app() {
        assert_eq!(
            reload_plan(&fork(), true),
            Some("fork mode has no rolling reload")
        );
        assert_eq!(
            reload_plan(&fork(), false),
            Some("fork mode has no rolling reload")
        );
        assert_eq!(
            reload_plan(&cluster(3000, 2), false),
            Some("it was not running")
        );
        assert_eq!(reload_plan(&cluster(3000, 2), true), None);
    }
}
