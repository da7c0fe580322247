//! Who may see the dashboard and act from it, decided from a request's parts with no I/O:
//! every request needs the token printed when the dashboard starts — as a cookie (set once
//! the link with `?token=` is opened), or `Authorization: Bearer` for scripts. An action also
//! needs the page's CSRF token in its form and, when the browser says where the request came
//! from, that it came from the dashboard itself; the cookie is `SameSite=Strict` and
//! `HttpOnly`. What an action may do is then up to the agents: they check the role of the
//! controller's certificate the dashboard holds, as for `pmfleet app`.

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

/// The cookie to set for `token`.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
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
    fn secrets_are_new_each_time() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
