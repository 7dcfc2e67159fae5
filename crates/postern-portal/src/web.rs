//! The web side: server-rendered pages (no JavaScript), a session cookie that is `HttpOnly`,
//! `SameSite=Lax` and `Secure` on TLS, a CSRF token in every form, and security headers on
//! every response (a CSP without inline script or style, no framing, no referrer, no caching).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Multipart, Path, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::audit::Action;
use crate::letters::{self, Upload};
use crate::outbox::MailKind;
use crate::password::{Busy, PasswordBudget};
use crate::render;
use crate::service::Portal;
use crate::store::{
    same, Attempt, CodeCheck, LockOn, MessageMeta, MessageState, Session, StoreError,
};
use zeroize::Zeroizing;

type Shared = Arc<Portal>;

/// The client's address, as the listener saw it ([`crate::serve`] puts it in every request).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client's IP address (unspecified when the server was not told, as in unit tests).
pub(crate) struct Client(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<ClientAddr>>()
                .map(|c| c.0 .0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// A page that could not be served, with the status it gets.
#[derive(Debug)]
pub(crate) enum Refusal {
    NotFound,
    Gone(MessageState),
    Forbidden,
    TooMany(String),
    SignIn,
    Internal,
    /// A request the framework could not read (a form with a field missing, a wrong type).
    BadRequest,
    /// A body over the limit: the text says how large it may be.
    TooLarge(String),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Refusal::NotFound,
            StoreError::Gone(s) => Refusal::Gone(s),
            StoreError::TooManyCodes => Refusal::TooMany(e.to_string()),
            e => {
                tracing::error!(error = %e, "portal store error");
                Refusal::Internal
            }
        }
    }
}

impl From<crate::service::PortalError> for Refusal {
    fn from(e: crate::service::PortalError) -> Self {
        match e {
            crate::service::PortalError::Store(s) => s.into(),
            e => {
                tracing::error!(error = %e, "portal error");
                Refusal::Internal
            }
        }
    }
}

impl From<crate::db::DbError> for Refusal {
    fn from(e: crate::db::DbError) -> Self {
        StoreError::Db(e).into()
    }
}

/// Page bodies the refusal shows; the layout around them needs the portal, added by
/// [`refusal_page`].
fn refusal_text(r: &Refusal) -> (StatusCode, &'static str, String) {
    match r {
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "This link or message does not exist. Check that you copied the whole link from the email.".into(),
        ),
        Refusal::Gone(MessageState::Revoked) => (
            StatusCode::GONE,
            "Message withdrawn",
            "The sender has withdrawn this message. Contact them if you still need it.".into(),
        ),
        Refusal::Gone(_) => (
            StatusCode::GONE,
            "Message expired",
            "This message has expired and was deleted. Ask the sender to send it again.".into(),
        ),
        Refusal::Forbidden => (
            StatusCode::FORBIDDEN,
            "Please try again",
            "This form had expired or did not come from this site. Go back, reload the page and try again.".into(),
        ),
        Refusal::TooMany(why) => (StatusCode::TOO_MANY_REQUESTS, "Please wait", why.clone()),
        Refusal::SignIn => (
            StatusCode::UNAUTHORIZED,
            "Please sign in",
            "Your session has ended (after 15 minutes without activity, or when you signed out). Open the link in your email again.".into(),
        ),
        Refusal::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The portal could not do this just now. Please try again in a few minutes.".into(),
        ),
        Refusal::BadRequest => (
            StatusCode::BAD_REQUEST,
            "Please try again",
            "This form was incomplete or could not be read. Go back, reload the page and try again.".into(),
        ),
        Refusal::TooLarge(why) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", why.clone()),
    }
}

/// The refusal for a reply over the size limit, with the limit.
fn too_large(p: &Portal) -> Refusal {
    Refusal::TooLarge(format!(
        "The reply is too large. A reply with its attachments may be at most {}. Remove an attachment, or send it in more than one reply.",
        human(p.settings.max_reply_bytes)
    ))
}

/// Errors that the framework answers itself (a form it cannot read, a body over the limit, a
/// method not allowed) come as bare text; they become a page in the portal's layout with a true
/// message, like every refusal of ours.
fn framework_error(p: &Portal, resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let refusal = match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(p),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Refusal::NotFound,
        s if s.is_server_error() => Refusal::Internal,
        _ => Refusal::BadRequest,
    };
    let mut page = refusal_page(p, refusal);
    // The status the framework chose stays (405 stays 405).
    *page.status_mut() = status;
    page
}

fn refusal_page(p: &Portal, r: Refusal) -> Response {
    let (status, title, text) = refusal_text(&r);
    (
        status,
        page(p, title, None, html! { h1 { (title) } p { (text) } }),
    )
        .into_response()
}

type PageResult = Result<Response, Refusal>;

/// Wraps a handler result into a response with the portal's layout for refusals.
async fn done(p: Shared, r: PageResult) -> Response {
    match r {
        Ok(resp) => resp,
        Err(e) => refusal_page(&p, e),
    }
}

/// The portal's routes (recipient and administrator pages).
pub fn router(portal: Shared) -> Router {
    let reply_limit = portal.settings.max_reply_bytes + 64 * 1024;
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/m/{token}", get(link))
        .route("/m/{token}/code", post(send_code))
        .route("/m/{token}/verify", post(verify_code))
        .route("/m/{token}/password", post(link_password))
        .route("/inbox", get(inbox))
        .route("/message/{id}", get(message))
        .route("/message/{id}/attachment/{n}", get(download))
        .route("/message/{id}/eml", get(download_eml))
        .route(
            "/message/{id}/reply",
            get(reply_form)
                .post(reply)
                .layer(DefaultBodyLimit::max(reply_limit)),
        )
        .route("/account", get(account).post(set_password))
        .route("/revoke/{token}", get(revoke_page).post(revoke))
        .route("/static/portal.css", get(css))
        .route("/static/logo", get(logo))
        .merge(crate::admin::routes())
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(
            portal.clone(),
            security_headers,
        ))
        .with_state(portal)
}

async fn security_headers(
    State(p): State<Shared>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let mut resp = framework_error(&p, next.run(req).await);
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    if !h.contains_key("content-security-policy") {
        set(
            h,
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        );
    }
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    if p.secure_cookies {
        set(
            h,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    resp
}

// ---- sessions and CSRF ----------------------------------------------------------------------

fn cookie_name(p: &Portal) -> &'static str {
    // `__Host-` makes the browser refuse the cookie unless Secure, Path=/ and no Domain.
    if p.secure_cookies {
        "__Host-postern"
    } else {
        "postern"
    }
}

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

fn clear_cookie(p: &Portal) -> (header::HeaderName, String) {
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

pub(crate) async fn session(p: &Portal, headers: &HeaderMap) -> Result<Option<Session>, Refusal> {
    let Some(c) = cookie(p, headers) else {
        return Ok(None);
    };
    let s = &p.settings;
    Ok(p.store
        .session(&c, s.idle_timeout_secs, s.absolute_timeout_secs)
        .await?)
}

/// The signed-in recipient's session, or a refusal.
async fn signed_in(p: &Portal, headers: &HeaderMap) -> Result<(Session, String), Refusal> {
    match session(p, headers).await? {
        Some(s) if !s.admin => match s.address.clone() {
            Some(a) => Ok((s, a)),
            None => Err(Refusal::SignIn),
        },
        _ => Err(Refusal::SignIn),
    }
}

pub(crate) fn csrf_ok(s: &Session, token: &str) -> bool {
    same(&s.csrf, token)
}

/// A message that belongs to `address`; anything else is "not found" (never "forbidden",
/// which would confirm that the ID exists).
async fn owned(p: &Portal, id: &str, address: &str) -> Result<MessageMeta, Refusal> {
    let m = p.store.meta(id).await?;
    if !m.recipient.eq_ignore_ascii_case(address) {
        return Err(Refusal::NotFound);
    }
    if m.state != MessageState::Active {
        return Err(Refusal::Gone(m.state));
    }
    if m.expires_at <= crate::now() {
        return Err(Refusal::Gone(MessageState::Expired));
    }
    Ok(m)
}

pub(crate) fn limit(p: &Portal, client: IpAddr) -> Result<(), Refusal> {
    if p.limiter.allow(client) {
        Ok(())
    } else {
        Err(Refusal::TooMany(
            "Too many attempts from your network in the last minute. Please wait a minute and try again.".into(),
        ))
    }
}

// ---- layout --------------------------------------------------------------------------------

pub(crate) fn page(p: &Portal, title: &str, s: Option<&Session>, body: Markup) -> Html<String> {
    let org = &p.settings.organisation;
    let signed = s.and_then(|s| s.address.clone().map(|a| (a, s.csrf.clone(), s.admin)));
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " – " (org) }
                    link rel="stylesheet" href="/static/portal.css";
                }
                body {
                    a class="skip" href="#main" { "Skip to content" }
                    header class="bar" {
                        span class="org" {
                            @if p.logo.is_some() { img class="logo" src="/static/logo" alt=""; }
                            (org) " secure mail"
                        }
                        @if let Some((addr, csrf, admin)) = &signed {
                            nav aria-label="Account" {
                                @if !admin {
                                    a href="/inbox" { "Inbox" }
                                    a href="/account" { "Password" }
                                }
                                span class="who" { (addr) }
                                form method="post" action=(if *admin { "/admin/logout" } else { "/logout" }) class="inline" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                    main id="main" { (body) }
                    footer {
                        @if !p.settings.support.is_empty() {
                            p { "Help: " (p.settings.support) }
                        }
                        p { "Messages here are encrypted and deleted when they expire. We never ask for your password by email." }
                    }
                }
            }
        }
        .into_string(),
    )
}

async fn css(State(p): State<Shared>) -> Response {
    let c = &p.settings.colour;
    let css = format!(
        "*{{box-sizing:border-box}}body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff}}\
.bar{{background:{c};color:#fff;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between}}\
.bar nav{{display:flex;flex-wrap:wrap;align-items:center;gap:.25rem 1rem;min-width:0;max-width:100%}}\
.bar a,.bar .who{{color:#fff}}.bar .who{{overflow-wrap:anywhere;min-width:0}}.bar button{{background:#fff;color:{c};border:0;padding:.3rem .7rem;border-radius:4px;font:inherit;cursor:pointer}}\
.org{{font-weight:700;display:flex;align-items:center;gap:.5rem}}.logo{{height:2rem;width:auto}}main{{max-width:48rem;margin:0 auto;padding:1rem}}footer{{max-width:48rem;margin:2rem auto;padding:0 1rem;color:#444;font-size:.9rem}}\
a{{color:{c}}}a:focus,button:focus,input:focus,textarea:focus{{outline:3px solid #f4b400;outline-offset:2px}}\
.skip{{position:absolute;left:-999px}}.skip:focus{{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem;z-index:9}}\
label{{display:block;font-weight:600;margin:.75rem 0 .25rem}}input[type=text],input[type=password],input[type=email],textarea{{width:100%;padding:.6rem;font:inherit;border:1px solid #555;border-radius:4px}}\
textarea{{min-height:10rem}}button{{background:{c};color:#fff;border:0;padding:.6rem 1.2rem;border-radius:4px;font:inherit;cursor:pointer;margin-top:.75rem}}\
.inline{{display:inline}}.ref{{font:700 1.25rem monospace;letter-spacing:.1em}}.notice{{background:#e8f0fe;border-left:4px solid {c};padding:.75rem}}\
.error{{background:#fdecea;border-left:4px solid #b3261e;padding:.75rem}}table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.5rem;border-bottom:1px solid #ccc;vertical-align:top}}\
.body{{border:1px solid #ccc;padding:1rem;overflow-wrap:anywhere;margin:1rem 0}}pre.text{{white-space:pre-wrap;font:inherit;margin:0}}\
.meta dt{{font-weight:600}}.meta dd{{margin:0 0 .5rem}}main,footer,.body{{overflow-wrap:anywhere}}\
@media (max-width:40rem){{table{{display:block;overflow-x:auto}}\
table.cards{{display:table}}.cards thead{{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}}\
.cards tr{{display:block;border-bottom:1px solid #ccc;padding:.25rem 0}}.cards td{{display:flex;gap:.5rem;border:0;padding:.15rem 0}}\
.cards td::before{{content:attr(data-label);font-weight:600;flex:0 0 8.5rem}}}}"
    );
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

/// The configured logo. An SVG cannot run script here: the CSP has no script source, and the
/// response is sandboxed as well.
async fn logo(State(p): State<Shared>) -> Response {
    match &p.logo {
        Some((ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (
                    header::HeaderName::from_static("content-security-policy"),
                    "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                ),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

// ---- the way in: link, code, password -------------------------------------------------------

async fn home(State(p): State<Shared>, Client(ip): Client, headers: HeaderMap) -> Response {
    let r = async {
        if let Some(s) = session(&p, &headers).await? {
            if s.address.is_some() && !s.admin {
                return Ok(Redirect::to("/inbox").into_response());
            }
        }
        // Every anonymous page that starts a session writes a row: bounded per client.
        limit(&p, ip)?;
        let (cookie, s) = p.store.new_session(None, false).await?;
        Ok(login_page(&p, &s, cookie, None))
    }
    .await;
    done(p, r).await
}

fn login_page(p: &Portal, s: &Session, cookie: String, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Secure mail" }
        p { "To read a secure message, open the link in the email that told you about it. You will be sent a one-time code; no account is needed." }
        h2 { "Sign in with a password" }
        p { "If you set a password on an earlier visit, you can sign in here to see all your messages." }
        @if let Some(e) = error { p class="error" role="alert" { (e) } }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(s.csrf);
            label for="address" { "Email address" }
            input type="email" id="address" name="address" autocomplete="username" required;
            label for="password" { "Password" }
            input type="password" id="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (
        status,
        [cookie_header(p, &cookie)],
        page(p, "Sign in", None, body),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    address: String,
    password: String,
}

async fn login(
    State(p): State<Shared>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let s = session(&p, &headers).await?.ok_or(Refusal::Forbidden)?;
        if !csrf_ok(&s, &f.csrf) {
            return Err(Refusal::Forbidden);
        }
        let address = f.address.trim().to_ascii_lowercase();
        let generic = "That address and password do not match, or sign-in is locked for a while after several wrong tries. You can always open a message from the link in your email.";
        match check_account_password(&p, &address, f.password).await? {
            PasswordCheck::Right => {}
            PasswordCheck::Locked => {
                let (cookie, fresh) = p.store.new_session(None, false).await?;
                return Ok(login_page(&p, &fresh, cookie, Some(generic)));
            }
            PasswordCheck::Wrong { locks } => {
                p.audit.append(&address, Action::CodeFailed, &address, Some(ip), "wrong password at sign-in").await?;
                if locks {
                    p.audit.append(&address, Action::Locked, &address, Some(ip), "password sign-in locked").await?;
                }
                let (cookie, fresh) = p.store.new_session(None, false).await?;
                return Ok(login_page(&p, &fresh, cookie, Some(generic)));
            }
        }
        let (cookie, _) = p.store.prove(&s, &address, "password", false).await?;
        p.audit.append(&address, Action::SignedIn, &address, Some(ip), "password").await?;
        Ok(([cookie_header(&p, &cookie)], Redirect::to("/inbox")).into_response())
    }
    .await;
    done(p, r).await
}

/// What a password typed for a recipient's account came to.
enum PasswordCheck {
    /// Right (the account's count starts again).
    Right,
    /// Wrong; `locks` when this attempt used up the last try.
    Wrong { locks: bool },
    /// The account's password sign-in is locked: nothing was checked.
    Locked,
}

/// Checks `password` for `address`: a place in the process's password budget first (a flood is
/// refused before it costs a database write or a hash), then the attempt is counted on the
/// account's lock — the one lock for /login and a link's password form, since the password is
/// the same secret — then the hash. An address without a password has no lock to count on; it
/// is checked against a decoy (the same cost) and is never right.
async fn check_account_password(
    p: &Portal,
    address: &str,
    password: String,
) -> Result<PasswordCheck, Refusal> {
    let admission = PasswordBudget::global().admit().map_err(busy)?;
    let hash = p.store.password_hash(address).await?;
    let cfg = &p.settings;
    let attempt = match hash {
        Some(_) => {
            p.store
                .begin_attempt(LockOn::Account(address), cfg.max_failures, cfg.lock_secs)
                .await?
        }
        None => Attempt::Allowed { locks: false },
    };
    let Attempt::Allowed { locks } = attempt else {
        return Ok(PasswordCheck::Locked);
    };
    let right = admission
        .verify(hash, Zeroizing::new(password.into_bytes()))
        .await
        .map_err(busy)?;
    if !right {
        return Ok(PasswordCheck::Wrong { locks });
    }
    p.store.attempt_succeeded(LockOn::Account(address)).await?;
    Ok(PasswordCheck::Right)
}

/// The refusal when the process's password budget is spent.
pub(crate) fn busy(_: Busy) -> Refusal {
    Refusal::TooMany(
        "Too many sign-ins are being checked right now. Please try again in a few seconds.".into(),
    )
}

fn valid_token(t: &str) -> bool {
    (20..=100).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn by_token(p: &Portal, token: &str) -> Result<MessageMeta, Refusal> {
    if !valid_token(token) {
        return Err(Refusal::NotFound);
    }
    let m = p.store.by_token(token).await?;
    if m.state != MessageState::Active {
        return Err(Refusal::Gone(m.state));
    }
    if m.expires_at <= crate::now() {
        return Err(Refusal::Gone(MessageState::Expired));
    }
    Ok(m)
}

/// What the link page says above its forms.
enum Note<'a> {
    None,
    Sent(&'a str),
    Error(String),
}

async fn link_page(
    p: &Portal,
    token: &str,
    m: &MessageMeta,
    s: &Session,
    note: Note<'_>,
) -> Result<Html<String>, Refusal> {
    let has_password = p.store.password_hash(&m.recipient).await?.is_some();
    let locked = m.locked_until > crate::now();
    let minutes = p.settings.code_lifetime_secs / 60;
    Ok(page(
        p,
        "Secure message",
        None,
        html! {
            h1 { "A secure message for you" }
            dl class="meta" {
                dt { "From" } dd { (m.sender_name) " (" (p.settings.organisation) ")" }
                dt { "Reference" } dd class="ref" { (m.reference) }
                dt { "Available until" } dd { (letters::day(m.expires_at)) }
            }
            p { "Check that the reference above is the one in your email. If it is not, close this page." }
            @match &note {
                Note::Sent(to) => p class="notice" role="status" { "We sent a one-time code to " (to) ". It works once, for " (minutes) " minutes." },
                Note::Error(e) => p class="error" role="alert" { (e) },
                Note::None => {},
            }
            @if locked {
                p class="error" role="alert" { "Too many wrong codes were entered for this message. Please try again after " (letters::moment(m.locked_until)) "." }
            } @else {
                h2 { "1. Get a one-time code" }
                form method="post" action={"/m/" (token) "/code"} {
                    input type="hidden" name="csrf" value=(s.csrf);
                    p { "We will email a code to " (mask(&m.recipient)) "." }
                    button type="submit" { "Email me a code" }
                }
                h2 { "2. Enter the code" }
                form method="post" action={"/m/" (token) "/verify"} {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label for="code" { "One-time code (8 digits)" }
                    input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="20";
                    button type="submit" { "Open the message" }
                }
                @if has_password {
                    h2 { "Or use your password" }
                    form method="post" action={"/m/" (token) "/password"} {
                        input type="hidden" name="csrf" value=(s.csrf);
                        label for="password" { "Password" }
                        input type="password" id="password" name="password" autocomplete="current-password" required;
                        button type="submit" { "Open with password" }
                    }
                }
            }
        },
    ))
}

async fn link(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_token(&p, &token).await?;
        if let Some(s) = session(&p, &headers).await? {
            if s.address
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&m.recipient))
                && !s.admin
            {
                return Ok(Redirect::to(&format!("/message/{}", m.id)).into_response());
            }
        }
        let (cookie, s) = p.store.new_session(Some(&m.id), false).await?;
        let body = link_page(&p, &token, &m, &s, Note::None).await?;
        Ok(([cookie_header(&p, &cookie)], body).into_response())
    }
    .await;
    done(p, r).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// The session that came through this message's link, with a valid CSRF token.
async fn link_session(
    p: &Portal,
    headers: &HeaderMap,
    m: &MessageMeta,
    csrf: &str,
) -> Result<Session, Refusal> {
    let s = session(p, headers).await?.ok_or(Refusal::Forbidden)?;
    if s.message_id.as_deref() != Some(m.id.as_str()) || !csrf_ok(&s, csrf) {
        return Err(Refusal::Forbidden);
    }
    Ok(s)
}

async fn send_code(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_token(&p, &token).await?;
        let s = link_session(&p, &headers, &m, &f.csrf).await?;
        if m.locked_until > crate::now() {
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                link_page(&p, &token, &m, &s, Note::None).await?,
            )
                .into_response());
        }
        let cfg = &p.settings;
        let code = p
            .store
            .issue_code(
                &m.id,
                cfg.code_lifetime_secs,
                cfg.max_codes,
                cfg.code_window_secs,
            )
            .await?;
        let mail = letters::code(
            cfg,
            &m.recipient,
            &code,
            &m.reference,
            cfg.code_lifetime_secs / 60,
        )
        .map_err(|_| Refusal::Internal)?;
        p.send(MailKind::Code, None, &m.recipient, mail).await?;
        p.audit
            .append(
                &m.recipient,
                Action::CodeSent,
                &m.id,
                Some(ip),
                "one-time code emailed",
            )
            .await?;
        Ok(
            link_page(&p, &token, &m, &s, Note::Sent(&mask(&m.recipient)))
                .await?
                .into_response(),
        )
    }
    .await;
    done(p, r).await
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn verify_code(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_token(&p, &token).await?;
        let s = link_session(&p, &headers, &m, &f.csrf).await?;
        let cfg = &p.settings;
        match p.store.check_code(&m.id, &f.code, cfg.max_failures, cfg.lock_secs).await? {
            CodeCheck::Accepted => signed_in_by_link(&p, &s, &m, ip, "one-time code").await,
            CodeCheck::Wrong { locked } => {
                let note = "That code is not right, or it has expired or was already used. Check the newest email, or ask for a new code.";
                failed_on_link(&p, &token, &m, &s, ip, locked, "code", note).await
            }
            CodeCheck::Locked(_) => Ok((StatusCode::TOO_MANY_REQUESTS, link_page(&p, &token, &m, &s, Note::None).await?).into_response()),
        }
    }
    .await;
    done(p, r).await
}

/// The address is proven through a link: a new session (new cookie), audited, on to the message.
async fn signed_in_by_link(
    p: &Portal,
    s: &Session,
    m: &MessageMeta,
    ip: IpAddr,
    proof: &str,
) -> PageResult {
    let (cookie, _) = p.store.prove(s, &m.recipient, proof, false).await?;
    p.audit
        .append(&m.recipient, Action::SignedIn, &m.id, Some(ip), proof)
        .await?;
    Ok((
        [cookie_header(p, &cookie)],
        Redirect::to(&format!("/message/{}", m.id)),
    )
        .into_response())
}

/// A wrong code or password on a link (already counted by the store): audited, and the link
/// page again, 429 once this failure locked the link.
#[allow(clippy::too_many_arguments)]
async fn failed_on_link(
    p: &Portal,
    token: &str,
    m: &MessageMeta,
    s: &Session,
    ip: IpAddr,
    locked: bool,
    what: &str,
    message: &str,
) -> PageResult {
    p.audit
        .append(
            &m.recipient,
            Action::CodeFailed,
            &m.id,
            Some(ip),
            &format!("wrong {what}"),
        )
        .await?;
    if locked {
        p.audit
            .append(
                "postern",
                Action::Locked,
                &m.id,
                Some(ip),
                &format!("too many wrong {what}s"),
            )
            .await?;
    }
    let m = p.store.meta(&m.id).await?;
    let status = if locked {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = link_page(p, token, &m, s, Note::Error(message.into())).await?;
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    password: String,
}

async fn link_password(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_token(&p, &token).await?;
        let s = link_session(&p, &headers, &m, &f.csrf).await?;
        let locked = match check_account_password(&p, &m.recipient, f.password).await? {
            PasswordCheck::Right => return signed_in_by_link(&p, &s, &m, ip, "password").await,
            PasswordCheck::Wrong { locks } => locks,
            PasswordCheck::Locked => {
                let note = Note::Error("Password sign-in is locked for a while after several wrong tries. Ask for a one-time code instead.".into());
                return Ok((
                    StatusCode::TOO_MANY_REQUESTS,
                    link_page(&p, &token, &m, &s, note).await?,
                )
                    .into_response());
            }
        };
        failed_on_link(
            &p,
            &token,
            &m,
            &s,
            ip,
            locked,
            "password",
            "That password is not right.",
        )
        .await
    }
    .await;
    done(p, r).await
}

async fn logout(State(p): State<Shared>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let r = async {
        if let Some(s) = session(&p, &headers).await? {
            if !csrf_ok(&s, &f.csrf) {
                return Err(Refusal::Forbidden);
            }
            p.store.end_session(&s.id_hash).await?;
        }
        Ok(([clear_cookie(&p)], Redirect::to("/")).into_response())
    }
    .await;
    done(p, r).await
}

// ---- reading --------------------------------------------------------------------------------

async fn inbox(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let r = async {
        let (s, address) = signed_in(&p, &headers).await?;
        let mut rows = Vec::new();
        for m in p.store.list(Some(&address)).await? {
            let subject = p.store.subject(&m.id).await.unwrap_or_default();
            rows.push((m, subject));
        }
        Ok(page(&p, "Inbox", Some(&s), html! {
            h1 { "Your secure messages" }
            @if rows.is_empty() {
                p { "There are no messages for you at the moment." }
            } @else {
                table class="cards" {
                    caption class="skip" { "Messages" }
                    thead { tr { th scope="col" { "From" } th scope="col" { "Subject" } th scope="col" { "Received" } th scope="col" { "Available until" } } }
                    tbody {
                        @for (m, subject) in &rows {
                            tr {
                                // At phone width each value shows its column's name beside it.
                                td data-label="From" { (m.sender_name) }
                                td data-label="Subject" { span { a href={"/message/" (m.id)} { @if subject.is_empty() { "(no subject)" } @else { (letters::one_line(subject, 150)) } } @if m.opened_at.is_none() { " (new)" } } }
                                td data-label="Received" { (letters::day(m.created_at)) }
                                td data-label="Available until" { (letters::day(m.expires_at)) }
                            }
                        }
                    }
                }
            }
        }).into_response())
    }
    .await;
    done(p, r).await
}

async fn message(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let (s, address) = signed_in(&p, &headers).await?;
        let m = owned(&p, &id, &address).await?;
        let (_, raw) = p.store.content(&m.id).await?;
        let view = render::render(&raw);
        // Only the first opening writes to the message row.
        let first = m.opened_at.is_none() && p.store.mark_opened(&m.id).await?;
        p.audit.append(&address, Action::Opened, &m.id, Some(ip), if first { "first opening" } else { "opened again" }).await?;
        if first && m.read_receipt && m.sender.contains('@') {
            let subject = if view.subject.is_empty() { "(no subject)" } else { &view.subject };
            if let Ok(mail) = letters::read_receipt(&p.settings, &m.sender, &address, &m.reference, subject, crate::now()) {
                if let Err(e) = p.send(MailKind::ReadReceipt, None, &m.sender, mail).await {
                    tracing::warn!(error = %e, portal_id = %m.id, "read receipt not queued");
                }
            }
        }
        Ok(page(&p, "Message", Some(&s), html! {
            h1 { @if view.subject.is_empty() { "(no subject)" } @else { (view.subject) } }
            dl class="meta" {
                dt { "From" } dd { (view.from) }
                @if !view.date.is_empty() { dt { "Date" } dd { (view.date) } }
                dt { "Reference" } dd class="ref" { (m.reference) }
                dt { "Available until" } dd { (letters::day(m.expires_at)) }
            }
            div class="body" {
                @if let Some(h) = &view.html { (PreEscaped(h)) } @else { pre class="text" { (view.text) } }
            }
            @if !view.attachments.is_empty() {
                h2 { "Attachments" }
                ul {
                    @for (n, (name, size)) in view.attachments.iter().enumerate() {
                        li { a href={"/message/" (m.id) "/attachment/" (n)} download { (name) } " (" (human(*size)) ")" }
                    }
                }
            }
            p {
                a href={"/message/" (m.id) "/reply"} { "Reply securely" }
                " · "
                a href={"/message/" (m.id) "/eml"} download { "Download the whole message (.eml)" }
                " · "
                a href="/inbox" { "Back to inbox" }
            }
        }).into_response())
    }
    .await;
    done(p, r).await
}

fn human(n: usize) -> String {
    match n {
        n if n < 1024 => format!("{n} bytes"),
        n if n < 1024 * 1024 => format!("{} KB", n / 1024),
        n => format!("{:.1} MB", n as f64 / 1048576.0),
    }
}

/// A download: never rendered by the browser (octet-stream, attachment, nosniff, sandbox).
fn file_response(name: &str, data: Vec<u8>) -> Response {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
            ),
        ],
        data,
    )
        .into_response()
}

async fn download(
    State(p): State<Shared>,
    Path((id, n)): Path<(String, usize)>,
    Client(ip): Client,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let (_, address) = signed_in(&p, &headers).await?;
        let m = owned(&p, &id, &address).await?;
        let (_, raw) = p.store.content(&m.id).await?;
        let (name, data) = render::attachment(&raw, n).ok_or(Refusal::NotFound)?;
        p.audit
            .append(
                &address,
                Action::Downloaded,
                &m.id,
                Some(ip),
                // Indexes and sizes only: a file name is message content.
                &format!("attachment {n}, {} bytes", data.len()),
            )
            .await?;
        Ok(file_response(&name, data))
    }
    .await;
    done(p, r).await
}

async fn download_eml(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let (_, address) = signed_in(&p, &headers).await?;
        let m = owned(&p, &id, &address).await?;
        let (_, raw) = p.store.content(&m.id).await?;
        p.audit
            .append(
                &address,
                Action::Downloaded,
                &m.id,
                Some(ip),
                "whole message (.eml)",
            )
            .await?;
        Ok(file_response(&format!("{}.eml", m.reference), raw))
    }
    .await;
    done(p, r).await
}

// ---- replying -------------------------------------------------------------------------------

async fn reply_form(
    State(p): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let (s, address) = signed_in(&p, &headers).await?;
        let m = owned(&p, &id, &address).await?;
        Ok(page(&p, "Reply", Some(&s), reply_body(&p, &m, &s, None)).into_response())
    }
    .await;
    done(p, r).await
}

fn reply_body(p: &Portal, m: &MessageMeta, s: &Session, error: Option<&str>) -> Markup {
    html! {
        h1 { "Reply securely" }
        @if m.sender.contains('@') {
            p { "Your reply goes to " strong { (m.sender) } " at " (p.settings.organisation) " only." }
        } @else {
            p class="error" role="alert" { "This message cannot be answered here: it did not come from an address of " (p.settings.organisation) ". Contact the sender another way." }
        }
        @if let Some(e) = error { p class="error" role="alert" { (e) } }
        form method="post" action={"/message/" (m.id) "/reply"} enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(s.csrf);
            label for="body" { "Your message" }
            textarea id="body" name="body" required {}
            label for="files" { "Attachments (optional, up to " (human(p.settings.max_reply_bytes)) " in all)" }
            input type="file" id="files" name="files" multiple;
            button type="submit" { "Send reply" }
        }
    }
}

async fn reply(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let (s, address) = signed_in(&p, &headers).await?;
        let m = owned(&p, &id, &address).await?;
        let mut csrf = String::new();
        let mut body = String::new();
        let mut uploads = Vec::new();
        let mut total = 0usize;
        // A body over the limit is a reply too large, not an expired form.
        let unreadable = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(&p)
            } else {
                Refusal::BadRequest
            }
        };
        while let Some(field) = form.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(unreadable)?;
            total += data.len();
            if total > p.settings.max_reply_bytes {
                return Err(too_large(&p));
            }
            match (name.as_str(), file_name) {
                ("csrf", _) => csrf = String::from_utf8_lossy(&data).into_owned(),
                ("body", _) => body = String::from_utf8_lossy(&data).into_owned(),
                ("files", Some(f)) if !data.is_empty() => uploads.push(Upload { name: f, data: data.to_vec() }),
                _ => {}
            }
        }
        if !csrf_ok(&s, &csrf) {
            return Err(Refusal::Forbidden);
        }
        if !m.sender.contains('@') {
            return Ok((StatusCode::BAD_REQUEST, page(&p, "Reply", Some(&s), reply_body(&p, &m, &s, None))).into_response());
        }
        if body.trim().is_empty() && uploads.is_empty() {
            return Ok((StatusCode::BAD_REQUEST, page(&p, "Reply", Some(&s), reply_body(&p, &m, &s, Some("Please write a message or attach a file.")))).into_response());
        }
        let (subject, raw) = p.store.content(&m.id).await?;
        let view = render::render(&raw);
        let n = uploads.len();
        let proof = s.proof.clone().unwrap_or_else(|| "one-time code".into());
        let mail = letters::reply(&address, &m.sender, &subject, view.message_id.as_deref(), &body, uploads, &m.id, &proof)
            .map_err(|_| Refusal::Internal)?;
        p.send(MailKind::Reply, Some(&address), &m.sender, mail).await?;
        p.audit.append(&address, Action::Replied, &m.id, Some(ip), &format!("to {}, {n} attachment(s)", m.sender)).await?;
        Ok(page(&p, "Reply sent", Some(&s), html! {
            h1 { "Reply sent" }
            p class="notice" role="status" { "Your reply was sent to " (m.sender_name) "." }
            p { a href={"/message/" (m.id)} { "Back to the message" } " · " a href="/inbox" { "Inbox" } }
        }).into_response())
    }
    .await;
    done(p, r).await
}

// ---- the sender withdraws a message -----------------------------------------------------------

/// A withdrawal link's message, active or not (the page says which).
async fn by_revoke_token(p: &Portal, token: &str) -> Result<MessageMeta, Refusal> {
    if !valid_token(token) {
        return Err(Refusal::NotFound);
    }
    Ok(p.store.by_revoke_token(token).await?)
}

async fn revoke_page(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_revoke_token(&p, &token).await?;
        if m.state != MessageState::Active {
            return Err(Refusal::Gone(m.state));
        }
        // A confirmation step: mail scanners follow links; only a person submits the form.
        let (cookie, s) = p.store.new_session(Some(&m.id), false).await?;
        let body = page(&p, "Withdraw a message", None, html! {
            h1 { "Withdraw a secure message" }
            dl class="meta" {
                dt { "To" } dd { (m.recipient) }
                dt { "Reference" } dd class="ref" { (m.reference) }
                dt { "Sent" } dd { (letters::day(m.created_at)) }
            }
            p { "After this the recipient can no longer open the message; its key is destroyed and this cannot be undone." }
            form method="post" action={"/revoke/" (token)} {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { "Withdraw the message" }
            }
        });
        Ok(([cookie_header(&p, &cookie)], body).into_response())
    }
    .await;
    done(p, r).await
}

async fn revoke(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let m = by_revoke_token(&p, &token).await?;
        let s = session(&p, &headers).await?.ok_or(Refusal::Forbidden)?;
        if s.message_id.as_deref() != Some(m.id.as_str()) || !csrf_ok(&s, &f.csrf) {
            return Err(Refusal::Forbidden);
        }
        p.revoke(&m.id, &m.sender, Some(ip)).await?;
        Ok(page(&p, "Withdrawn", None, html! {
            h1 { "Message withdrawn" }
            p class="notice" role="status" { "The message " (m.reference) " to " (m.recipient) " can no longer be opened." }
        })
        .into_response())
    }
    .await;
    done(p, r).await
}

// ---- an optional password -------------------------------------------------------------------

async fn account(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let r = async {
        let (s, _) = signed_in(&p, &headers).await?;
        Ok(page(&p, "Password", Some(&s), password_body(&s, None)).into_response())
    }
    .await;
    done(p, r).await
}

fn password_body(s: &Session, note: Option<(&str, bool)>) -> Markup {
    html! {
        h1 { "A password for later visits (optional)" }
        p { "You never need one: every message can be opened with a one-time code. With a password you can sign in on the portal's first page and see all your messages." }
        @if let Some((text, ok)) = note { p class=(if ok { "notice" } else { "error" }) role="status" { (text) } }
        form method="post" action="/account" {
            input type="hidden" name="csrf" value=(s.csrf);
            label for="password" { "New password (at least 12 characters)" }
            input type="password" id="password" name="password" autocomplete="new-password" minlength="12" required;
            label for="confirm" { "The same password again" }
            input type="password" id="confirm" name="confirm" autocomplete="new-password" minlength="12" required;
            button type="submit" { "Set password" }
        }
    }
}

#[derive(Deserialize)]
struct NewPasswordForm {
    csrf: String,
    password: String,
    confirm: String,
}

async fn set_password(
    State(p): State<Shared>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> Response {
    let r = async {
        limit(&p, ip)?;
        let (s, address) = signed_in(&p, &headers).await?;
        if !csrf_ok(&s, &f.csrf) {
            return Err(Refusal::Forbidden);
        }
        let len = f.password.chars().count();
        let problem = if f.password != f.confirm {
            Some("The two passwords are not the same.")
        } else if !(12..=256).contains(&len) {
            Some("Please choose a password of 12 to 256 characters.")
        } else {
            None
        };
        if let Some(why) = problem {
            return Ok((
                StatusCode::BAD_REQUEST,
                page(
                    &p,
                    "Password",
                    Some(&s),
                    password_body(&s, Some((why, false))),
                ),
            )
                .into_response());
        }
        let hash = PasswordBudget::global()
            .hash(Zeroizing::new(f.password.into_bytes()))
            .await
            .map_err(busy)?
            .ok_or(Refusal::Internal)?;
        p.store.set_password(&address, &hash).await?;
        p.audit
            .append(&address, Action::PasswordSet, &address, Some(ip), "")
            .await?;
        Ok(page(
            &p,
            "Password",
            Some(&s),
            password_body(&s, Some(("Your password is set.", true))),
        )
        .into_response())
    }
    .await;
    done(p, r).await
}
