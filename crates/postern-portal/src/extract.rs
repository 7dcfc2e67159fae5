//! What a handler needs before it starts, as axum extractors: the client's address, its
//! per-network limit, its session (anonymous, a recipient's or an administrator's) and a form
//! whose CSRF token matches that session. A handler names what it needs in its arguments and
//! cannot forget a step: there is no preamble to copy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts, Request,
};
use axum::http::header::{self, HeaderMap};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;

use crate::layout::Refusal;
use crate::service::Portal;
use crate::store::{same, Session};

type Shared = Arc<Portal>;

/// The client's address, as the listener saw it ([`crate::serve`] puts it in every request).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client's IP address (unspecified when the server was not told, as in unit tests).
pub(crate) struct Client(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_ip(parts)))
    }
}

/// Behind a trusted reverse proxy, the client it names: the rightmost `X-Forwarded-For`
/// address that is not a trusted proxy itself (what each proxy appends is believed only from a
/// proxy; anything further left the client could have written). The connection's address stays
/// for everyone else, and when the header names nothing usable.
pub(crate) async fn forwarded_client(
    axum::extract::State(p): axum::extract::State<Shared>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !p.settings.trusted_proxies.is_empty() {
        let proxies: Vec<postern_core::Network> = p
            .settings
            .trusted_proxies
            .iter()
            .filter_map(|n| postern_core::Network::parse(n).ok())
            .collect();
        let trusted = |ip: IpAddr| proxies.iter().any(|n| n.contains(ip));
        let peer = req
            .extensions()
            .get::<ConnectInfo<ClientAddr>>()
            .map(|c| c.0 .0);
        if let Some(peer) = peer.filter(|a| trusted(a.ip())) {
            let named = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(|a| a.parse::<IpAddr>().ok())
                .find(|a| a.is_none_or(|ip| !trusted(ip)))
                .flatten();
            if let Some(client) = named {
                req.extensions_mut()
                    .insert(ConnectInfo(ClientAddr(SocketAddr::new(
                        client,
                        peer.port(),
                    ))));
            }
        }
    }
    next.run(req).await
}

fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0 .0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A request within its network's per-minute limit (every page that writes, signs in or
/// starts a session is one), with the client's address. Over the limit: 429.
pub(crate) struct Limited(pub(crate) IpAddr);

impl FromRequestParts<Shared> for Limited {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, p: &Shared) -> Result<Self, Refusal> {
        let ip = client_ip(parts);
        limit(p, ip)?;
        Ok(Limited(ip))
    }
}

/// Counts one request of `client`'s network; refused once the minute's allowance is spent.
pub(crate) fn limit(p: &Portal, client: IpAddr) -> Result<(), Refusal> {
    if p.limiter.allow(client) {
        Ok(())
    } else {
        Err(Refusal::TooMany(
            "Too many attempts from your network in the last minute. Please wait a minute and try again.".into(),
        ))
    }
}

/// The visitor's session, if the cookie names a live one (anonymous, signed in or an
/// administrator's).
pub(crate) struct Visitor(pub(crate) Option<Session>);

/// The session as loaded once for this request: the extractors after the first (a form's CSRF
/// check after the session it belongs to) read it here instead of the database again.
#[derive(Clone)]
struct Loaded(Option<Session>);

impl FromRequestParts<Shared> for Visitor {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, p: &Shared) -> Result<Self, Refusal> {
        if let Some(Loaded(s)) = parts.extensions.get::<Loaded>() {
            return Ok(Visitor(s.clone()));
        }
        let s = session(p, &parts.headers).await?;
        parts.extensions.insert(Loaded(s.clone()));
        Ok(Visitor(s))
    }
}

/// A recipient signed in (by a link's code or password, or at /login). Otherwise: "please
/// sign in". An administrator's session is not a recipient's.
pub(crate) struct Recipient {
    /// The session.
    pub(crate) session: Session,
    /// The proven address.
    pub(crate) address: String,
}

impl FromRequestParts<Shared> for Recipient {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, p: &Shared) -> Result<Self, Refusal> {
        match Visitor::from_request_parts(parts, p).await?.0 {
            Some(s) if !s.admin => match s.address.clone() {
                Some(address) => Ok(Recipient {
                    session: s,
                    address,
                }),
                None => Err(Refusal::SignIn),
            },
            _ => Err(Refusal::SignIn),
        }
    }
}

/// An administrator signed in. Otherwise: "please sign in" (the administrator's pages send
/// that to their sign-in page).
pub(crate) struct Administrator {
    /// The session.
    pub(crate) session: Session,
    /// The administrator's name.
    pub(crate) user: String,
}

impl FromRequestParts<Shared> for Administrator {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, p: &Shared) -> Result<Self, Refusal> {
        <Self as OptionalFromRequestParts<Shared>>::from_request_parts(parts, p)
            .await?
            .ok_or(Refusal::SignIn)
    }
}

/// `Option<Administrator>`: `None` for anyone else (the dashboard shows them the sign-in form).
impl OptionalFromRequestParts<Shared> for Administrator {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, p: &Shared) -> Result<Option<Self>, Refusal> {
        Ok(match Visitor::from_request_parts(parts, p).await?.0 {
            Some(s) if s.admin => s
                .address
                .clone()
                .map(|user| Administrator { session: s, user }),
            _ => None,
        })
    }
}

/// A form with a CSRF token.
pub(crate) trait CsrfForm {
    /// The token the form carried.
    fn csrf(&self) -> &str;
}

/// A form posted from a page of this session: its token matches the session's (compared in
/// constant time). No session, or another token: 403, before the handler runs.
pub(crate) struct Checked<F>(pub(crate) F);

impl<F: CsrfForm + DeserializeOwned + Send> FromRequest<Shared> for Checked<F> {
    type Rejection = Response;
    async fn from_request(req: Request, p: &Shared) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Visitor(s) = Visitor::from_request_parts(&mut parts, p)
            .await
            .map_err(IntoResponse::into_response)?;
        // A form the framework cannot read answers as it would without us (the layer turns
        // that into a page).
        let Form(f) = Form::<F>::from_request(Request::from_parts(parts, body), p)
            .await
            .map_err(IntoResponse::into_response)?;
        match s {
            Some(s) if csrf_ok(&s, f.csrf()) => Ok(Checked(f)),
            _ => Err(Refusal::Forbidden.into_response()),
        }
    }
}

/// Does `token` match the session's CSRF token?
pub(crate) fn csrf_ok(s: &Session, token: &str) -> bool {
    same(&s.csrf, token)
}

fn cookie_name(p: &Portal) -> &'static str {
    // `__Host-` makes the browser refuse the cookie unless Secure, Path=/ and no Domain.
    if p.secure_cookies {
        "__Host-postern"
    } else {
        "postern"
    }
}

/// The header that sets the session cookie to `value`.
pub(crate) fn cookie_header(p: &Portal, value: &str) -> (header::HeaderName, String) {
    let secure = if p.secure_cookies { "; Secure" } else { "" };
    (
        header::SET_COOKIE,
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}",
            cookie_name(p)
        ),
    )
}

/// The header that removes the session cookie.
pub(crate) fn clear_cookie(p: &Portal) -> (header::HeaderName, String) {
    let secure = if p.secure_cookies { "; Secure" } else { "" };
    (
        header::SET_COOKIE,
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
            cookie_name(p)
        ),
    )
}

fn cookie(p: &Portal, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(p);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() <= 64)
}

/// The live session the request's cookie names, if any.
async fn session(p: &Portal, headers: &HeaderMap) -> Result<Option<Session>, Refusal> {
    let Some(c) = cookie(p, headers) else {
        return Ok(None);
    };
    let s = &p.settings;
    Ok(p.store
        .session(&c, s.idle_timeout_secs, s.absolute_timeout_secs)
        .await?)
}
