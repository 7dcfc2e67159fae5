//! What every page shares: the layout around it, and the refusals (a page that could not be
//! served, with its status and its words).

use axum::http::header;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::service::Portal;
use crate::store::{MessageState, Session, StoreError};

/// What a handler returns: its page, or why not.
pub(crate) type PageResult = Result<Response, Refusal>;

/// The refusal travels in the response's extensions to the layer that has the portal and draws
/// the page; the status is set already so that nothing can answer 200 with it.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, _, _) = refusal_text(&self);
        let mut r = status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// A page that could not be served, with the status it gets. Handlers and extractors return
/// it as their error; [`crate::web`]'s layer turns it into a page in the portal's layout (or,
/// on the administrator's pages, their own), since only there is the portal at hand.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// No such link, message or page (also what a message of someone else's gets).
    NotFound,
    /// The message was withdrawn or expired.
    Gone(MessageState),
    /// A form without a valid CSRF token, or from another session.
    Forbidden,
    /// A limit was reached: the text says which and for how long.
    TooMany(String),
    /// No session, or not signed in.
    SignIn,
    /// The request was right but its subject has moved on (a quarantine entry already decided).
    Conflict,
    /// Our fault: logged where it happened.
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
        Refusal::Conflict => (
            StatusCode::CONFLICT,
            "Already decided",
            "Someone has already decided this. Reload the page to see where it stands.".into(),
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
pub(crate) fn too_large(p: &Portal) -> Refusal {
    Refusal::TooLarge(format!(
        "The reply is too large. A reply with its attachments may be at most {}. Remove an attachment, or send it in more than one reply.",
        human(p.settings.max_reply_bytes)
    ))
}

/// Errors that the framework answers itself (a form it cannot read, a body over the limit, a
/// method not allowed) come as bare text; they become a page in the portal's layout with a true
/// message, like every refusal of ours.
pub(crate) fn framework_error(p: &Portal, resp: Response) -> Response {
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

pub(crate) fn refusal_page(p: &Portal, r: Refusal) -> Response {
    let (status, title, text) = refusal_text(&r);
    (
        status,
        page(p, title, None, html! { h1 { (title) } p { (text) } }),
    )
        .into_response()
}

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

/// A size in words (`12 KB`).
pub(crate) fn human(n: usize) -> String {
    match n {
        n if n < 1024 => format!("{n} bytes"),
        n if n < 1024 * 1024 => format!("{} KB", n / 1024),
        n => format!("{:.1} MB", n as f64 / 1048576.0),
    }
}
