//! The layer every request of the dashboard goes through: who sends it — a client
//! certificate the handshake verified and the CRL still allows ([`super::tls::Trust`]), else
//! the token ([`super::access::check`]) — handed to the handlers as a [`Session`] (or the
//! request refused), then the security headers on the answer.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::Shared;
use super::access::{self, Session};
use super::tls::Peer;

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every request: who sends it (a certificate the handshake verified and the CRL still
/// allows, else the token), then security headers on the answer.
pub(super) async fn guard(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut response = match sign_in(&shared, &peer, &req) {
        SignIn::Session(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        SignIn::SetCookie => {
            let path = req.uri().path().to_string();
            let mut r = Redirect::to(&path).into_response();
            let cookie = access::set_cookie(&shared.token, shared.trust.is_some());
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        SignIn::Refused(status, message) => (status, message).into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

enum SignIn {
    Session(Session),
    SetCookie,
    Refused(StatusCode, String),
}

fn sign_in(shared: &Shared, peer: &Peer, req: &Request) -> SignIn {
    if let (Some(chain), Some(trust)) = (&peer.chain, &shared.trust) {
        // Verified at the handshake; asked again, for a certificate revoked since.
        if let Err(e) = trust.still_trusted(chain) {
            return SignIn::Refused(
                StatusCode::FORBIDDEN,
                format!("pmfleet dashboard: this client certificate is no longer accepted: {e}\n"),
            );
        }
        let Some(leaf) = chain.first() else {
            return SignIn::Refused(StatusCode::FORBIDDEN, "no certificate\n".into());
        };
        return match access::certificate_session(leaf) {
            Ok(session) => SignIn::Session(session),
            Err(e) => SignIn::Refused(StatusCode::FORBIDDEN, format!("pmfleet dashboard: {e}\n")),
        };
    }
    let query_token = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let verdict = access::check(
        &shared.token,
        access::Credentials {
            cookie_header: header_str(req.headers(), "cookie"),
            authorization: header_str(req.headers(), "authorization"),
            query_token: query_token.as_deref(),
        },
    );
    match verdict {
        access::Verdict::Allow => SignIn::Session(Session::Token),
        access::Verdict::SetCookie => SignIn::SetCookie,
        access::Verdict::Deny => SignIn::Refused(
            StatusCode::UNAUTHORIZED,
            if shared.trust.is_some() {
                "pmfleet dashboard: open the address with the token it printed when it started, or present a fleet client certificate\n"
            } else {
                "pmfleet dashboard: open the address with the token it printed when it started\n"
            }
            .to_string(),
        ),
    }
}
