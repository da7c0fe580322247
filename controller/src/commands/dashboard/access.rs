//! Who may see the dashboard and act from it, decided from a request's parts with no I/O:
//! every request needs either the token printed when the dashboard starts — as a cookie (set
//! once the link with `?token=` is opened), or `Authorization: Bearer` for scripts — or, over
//! HTTPS (`--tls`), a fleet client certificate, which the handshake verified against the fleet
//! CA and its CRL ([`super::tls`]). An action also needs the page's CSRF token in its form
//! and, when the browser says where the request came from, that it came from the dashboard
//! itself — for a certificate too, since a browser sends it on its own, as it does a cookie;
//! the cookie is `SameSite=Strict` and `HttpOnly` (and `Secure` over HTTPS).
//!
//! What an action may do: signed in with a certificate, what that certificate's role may ask
//! of an agent ([`pmfleet_shared::protocol::access`], the table the agents use; a certificate
//! without a role counts as `read`, as on the agents), checked here before anything is sent
//! ([`may_send`]), and the page offers only those actions ([`verbs_offered`]). Either way the
//! request then goes to the agent with the controller's certificate, whose role the agent
//! checks, as for `pmfleet app`.

use pmfleet_shared::protocol::access::{self as table, Need};
use pmfleet_shared::protocol::{Request, ScaleTo, Target};
use pmfleet_shared::tls::Role;

/// The cookie holding the token.
pub const COOKIE: &str = "pmfleet_dashboard";

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The token came in the address: set the cookie and send the browser to the same page
    /// without it (so it stays out of the history and of `Referer`).
    SetCookie,
    Deny,
}

/// The parts of a request that say who sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub cookie_header: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub query_token: Option<&'a str>,
}

/// Whether a request with `c` may see the dashboard whose token is `token`.
pub fn check(token: &str, c: Credentials<'_>) -> Verdict {
    let cookie = c
        .cookie_header
        .into_iter()
        .flat_map(|h| h.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then_some(v)
        });
    if cookie.is_some_and(|v| same(v, token)) {
        return Verdict::Allow;
    }
    if c.authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|v| same(v.trim(), token))
    {
        return Verdict::Allow;
    }
    if c.query_token.is_some_and(|v| same(v, token)) {
        return Verdict::SetCookie;
    }
    Verdict::Deny
}

/// Whether an action form may run: its CSRF field is the page's, and the browser (when it
/// says) sent it from this dashboard (`Sec-Fetch-Site: same-origin`, else an `Origin` naming
/// the `Host` it was sent to).
pub fn action_allowed(
    csrf: &str,
    form_csrf: Option<&str>,
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> bool {
    if !form_csrf.is_some_and(|f| same(f, csrf)) {
        return false;
    }
    // A browser that says where the request came from is believed; an older one is judged
    // by its `Origin` (a form's `Origin` may be `null`, which proves nothing).
    if let Some(site) = sec_fetch_site {
        return site == "same-origin";
    }
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .unwrap_or(origin);
            origin_host == host
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The cookie to set for `token`; `secure` over HTTPS (the browser then never sends it over
/// plain HTTP).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// How a request was let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// With the token: the dashboard's own user, who may do what the controller's
    /// certificate may.
    Token,
    /// With a fleet client certificate (verified by the handshake).
    Certificate {
        /// Its common name (`client:ci`), for messages.
        name: String,
        /// Its role; `None` for one made before roles, which counts as `read`.
        role: Option<Role>,
    },
}

/// Who a session's actions are recorded for in the audit trail: the dashboard's own user
/// (`who`) for the token, the certificate's name and role for a certificate.
pub fn performer(session: &Session, who: &str) -> String {
    match session {
        Session::Token => format!("{who} via dashboard"),
        Session::Certificate { name, role } => format!(
            "{name} ({} role) via dashboard",
            role.map_or("no", Role::as_str)
        ),
    }
}

/// The session of a client certificate (DER) the handshake verified: its name and role. One
/// whose role cannot be read (an unknown role, several) is refused, as the agents refuse it.
pub fn certificate_session(leaf: &[u8]) -> Result<Session, String> {
    let role = pmfleet_shared::tls::role_of(leaf)
        .map_err(|e| format!("this certificate is not one pmfleet made: {e}"))?;
    let name = pmfleet_shared::tls::name_of(leaf).unwrap_or_else(|| "no name".to_string());
    Ok(Session::Certificate { name, role })
}

/// Whether `session` may have `req` sent to an agent; why not, said so that the person at
/// the page knows what would be allowed.
pub fn may_send(session: &Session, req: &Request) -> Result<(), String> {
    let Session::Certificate { name, role } = session else {
        return Ok(());
    };
    let op = table::op(req);
    let has = role.unwrap_or(Role::Read);
    match table::need(req) {
        Need::Role(needed) if has >= needed => Ok(()),
        Need::Role(needed) => {
            let what = match role {
                Some(role) => format!("its role is `{role}`"),
                None => "it carries no role, so it counts as `read`".to_string(),
            };
            Err(format!(
                "`{op}` needs a certificate with the `{needed}` role (or `admin`); the one this browser signed in with ({name}) may not: {what} (see `pmfleet ca issue --role`)"
            ))
        }
        Need::Local => Err(format!(
            "`{op}` is accepted on the agent's local socket only"
        )),
    }
}

/// The page's actions, and the request each sends for `app`.
pub const VERBS: [&str; 4] = ["reload", "restart", "stop", "scale"];

/// The request the page's `verb` sends for `app` (`scale` to `to`); `None` for a verb the
/// page does not have.
pub fn request_for(verb: &str, app: &str, to: ScaleTo) -> Option<Request> {
    let target = Target::App(app.to_string());
    Some(match verb {
        "reload" => Request::Reload { target },
        "restart" => Request::Restart { target },
        "stop" => Request::Stop { target },
        "scale" => Request::Scale {
            app: app.to_string(),
            to,
        },
        _ => return None,
    })
}

/// The actions the page offers `session` (of [`VERBS`], in order).
pub fn verbs_offered(session: &Session) -> Vec<&'static str> {
    VERBS
        .into_iter()
        .filter(|verb| {
            request_for(verb, "app", ScaleTo::Up(1)).is_some_and(|r| may_send(session, &r).is_ok())
        })
        .collect()
}

/// A new secret: 32 random bytes, in hex.
pub fn new_secret() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness from the system".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_lets_a_request_in() {
        let t = "abc123";
        let c = |cookie, auth, query| Credentials {
            cookie_header: cookie,
            authorization: auth,
            query_token: query,
        };
        let table = [
            (c(None, None, None), Verdict::Deny),
            (
                c(Some("pmfleet_dashboard=abc123"), None, None),
                Verdict::Allow,
            ),
            (
                c(Some("a=b; pmfleet_dashboard=abc123; c=d"), None, None),
                Verdict::Allow,
            ),
            (
                c(Some("pmfleet_dashboard=abc124"), None, None),
                Verdict::Deny,
            ),
            (
                c(Some("pmfleet_dashboard=abc1234"), None, None),
                Verdict::Deny,
            ),
            (c(Some("other=abc123"), None, None), Verdict::Deny),
            (c(None, Some("Bearer abc123"), None), Verdict::Allow),
            (c(None, Some("Basic abc123"), None), Verdict::Deny),
            (c(None, None, Some("abc123")), Verdict::SetCookie),
            (c(None, None, Some("")), Verdict::Deny),
            (
                c(Some("pmfleet_dashboard="), None, Some("nope")),
                Verdict::Deny,
            ),
        ];
        for (creds, want) in table {
            assert_eq!(check(t, creds), want, "{creds:?}");
        }
    }

    #[test]
    fn actions_need_the_page_token_and_a_request_from_the_dashboard() {
        let h = Some("127.0.0.1:7700");
        let table = [
            (Some("k"), None, None, h, true),
            (
                Some("k"),
                Some("same-origin"),
                Some("http://127.0.0.1:7700"),
                h,
                true,
            ),
            (None, Some("same-origin"), None, h, false),
            (Some("x"), Some("same-origin"), None, h, false),
            (Some("k"), Some("cross-site"), None, h, false),
            (Some("k"), Some("same-site"), None, h, false),
            (Some("k"), None, Some("http://evil.example"), h, false),
            (Some("k"), None, Some("http://127.0.0.1:7700"), None, false),
            (Some("k"), Some("same-origin"), Some("null"), h, true),
            (Some("k"), None, Some("null"), h, false),
            (Some("k"), Some("none"), None, h, false),
        ];
        for (form, site, origin, host, want) in table {
            assert_eq!(
                action_allowed("k", form, site, origin, host),
                want,
                "{form:?} {site:?} {origin:?} {host:?}"
            );
        }
    }

    #[test]
    fn a_certificate_acts_as_far_as_its_role_goes() {
        let cert = |role| Session::Certificate {
            name: "client:viewer".into(),
            role,
        };
        let table: [(Session, &[&str]); 5] = [
            (Session::Token, &["reload", "restart", "stop", "scale"]),
            (
                cert(Some(Role::Admin)),
                &["reload", "restart", "stop", "scale"],
            ),
            (cert(Some(Role::Deploy)), &["reload", "restart"]),
            (cert(Some(Role::Read)), &[]),
            (cert(None), &[]),
        ];
        for (session, want) in table {
            assert_eq!(verbs_offered(&session), want.to_vec(), "{session:?}");
            for verb in VERBS {
                let req = request_for(verb, "web", ScaleTo::Exactly(3)).unwrap();
                assert_eq!(
                    may_send(&session, &req).is_ok(),
                    want.contains(&verb),
                    "{verb} {session:?}"
                );
            }
            // Looking is every session's.
            assert!(may_send(&session, &Request::Status).is_ok());
            let logs = Request::Logs {
                app: Some("web".into()),
                lines: 20,
                follow: true,
            };
            assert!(may_send(&session, &logs).is_ok());
        }
        assert_eq!(request_for("delete", "web", ScaleTo::Up(1)), None);
    }

    #[test]
    fn a_refused_action_says_which_role_would_do() {
        let reload = request_for("reload", "web", ScaleTo::Up(1)).unwrap();
        let read = Session::Certificate {
            name: "client:viewer".into(),
            role: Some(Role::Read),
        };
        let e = may_send(&read, &reload).unwrap_err();
        for said in [
            "`reload`",
            "`deploy` role",
            "client:viewer",
            "role is `read`",
        ] {
            assert!(e.contains(said), "{said}: {e}");
        }
        let unmarked = Session::Certificate {
            name: "client:old".into(),
            role: None,
        };
        let e = may_send(&unmarked, &reload).unwrap_err();
        assert!(e.contains("counts as `read`"), "{e}");
        let deploy = Session::Certificate {
            name: "client:ci".into(),
            role: Some(Role::Deploy),
        };
        let stop = request_for("stop", "web", ScaleTo::Up(1)).unwrap();
        let e = may_send(&deploy, &stop).unwrap_err();
        assert!(
            e.contains("`admin` role") && e.contains("role is `deploy`"),
            "{e}"
        );
        let e = may_send(&Session::Token, &Request::Kill);
        assert!(e.is_ok(), "a token session is judged by the agents");
        let e = may_send(&deploy, &Request::Kill).unwrap_err();
        assert!(e.contains("local socket only"), "{e}");
    }

    #[test]
    fn a_certificate_signs_in_with_its_name_and_role() {
        let cert = |unit: Option<&str>| {
            let mut params = rcgen::CertificateParams::default();
            let mut dn = rcgen::DistinguishedName::new();
            if let Some(unit) = unit {
                dn.push(rcgen::DnType::OrganizationalUnitName, unit);
            }
            dn.push(rcgen::DnType::CommonName, "client:viewer");
            params.distinguished_name = dn;
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let table = [
            (Some("pmfleet-role:read"), Ok(Some(Role::Read))),
            (Some("pmfleet-role:deploy"), Ok(Some(Role::Deploy))),
            (None, Ok(None)),
            (Some("pmfleet-role:root"), Err(())),
        ];
        for (unit, want) in table {
            let got = certificate_session(&cert(unit));
            match (got, want) {
                (Ok(Session::Certificate { name, role }), Ok(want)) => {
                    assert_eq!(name, "client:viewer");
                    assert_eq!(role, want, "{unit:?}");
                }
                (Err(e), Err(())) => assert!(e.contains("root"), "{e}"),
                (got, want) => panic!("{unit:?}: {got:?}, wanted {want:?}"),
            }
        }
        assert!(certificate_session(b"junk").is_err());
    }

    #[test]
    fn the_cookie_is_secure_over_https() {
        assert_eq!(
            set_cookie("t", false),
            "pmfleet_dashboard=t; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            set_cookie("t", true),
            "pmfleet_dashboard=t; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn secrets_are_new_each_time() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn an_action_is_recorded_for_the_token_s_user_or_the_certificate() {
        let cert = |role| Session::Certificate {
            name: "client:ops".into(),
            role,
        };
        let table = [
            (Session::Token, "alice@laptop via dashboard"),
            (
                cert(Some(Role::Deploy)),
                "client:ops (deploy role) via dashboard",
            ),
            (
                cert(Some(Role::Admin)),
                "client:ops (admin role) via dashboard",
            ),
            (cert(None), "client:ops (no role) via dashboard"),
        ];
        for (session, want) in table {
            assert_eq!(performer(&session, "alice@laptop"), want);
        }
    }
}
