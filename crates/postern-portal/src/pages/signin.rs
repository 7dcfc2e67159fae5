//! The way in: the first page, a message's link, the one-time code, a password, signing out.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Shared, TokenOnly};
use crate::audit::Action;
use crate::extract::{clear_cookie, cookie_header, limit, Checked, Client, Limited, Visitor};
use crate::layout::{page, PageResult, Refusal};
use crate::letters;
use crate::outbox::MailKind;
use crate::service::Portal;
use crate::store::{Attempt, CodeCheck, LockOn, MessageMeta, MessageState, Session};
use postern_store::password::{Busy, PasswordBudget};

pub(crate) async fn home(
    State(p): State<Shared>,
    Client(ip): Client,
    Visitor(s): Visitor,
) -> PageResult {
    if let Some(s) = s {
        if s.address.is_some() && !s.admin {
            return Ok(Redirect::to("/inbox").into_response());
        }
    }
    // Every anonymous page that starts a session writes a row: bounded per client.
    limit(&p, ip)?;
    let (cookie, s) = p.store.new_session(None, false).await?;
    Ok(login_page(&p, &s, cookie, None))
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
pub(crate) struct LoginForm {
    csrf: String,
    address: String,
    password: String,
}
csrf_form!(LoginForm);

pub(crate) async fn login(
    State(p): State<Shared>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(f): Checked<LoginForm>,
) -> PageResult {
    let s = s.ok_or(Refusal::Forbidden)?;
    let address = f.address.trim().to_ascii_lowercase();
    let generic = "That address and password do not match, or sign-in is locked for a while after several wrong tries. You can always open a message from the link in your email.";
    match check_account_password(&p, &address, f.password).await? {
        PasswordCheck::Right => {}
        PasswordCheck::Locked => {
            let (cookie, fresh) = p.store.new_session(None, false).await?;
            return Ok(login_page(&p, &fresh, cookie, Some(generic)));
        }
        PasswordCheck::Wrong { locks } => {
            p.audit
                .append(
                    &address,
                    Action::CodeFailed,
                    &address,
                    Some(ip),
                    "wrong password at sign-in",
                )
                .await?;
            if locks {
                p.audit
                    .append(
                        &address,
                        Action::Locked,
                        &address,
                        Some(ip),
                        "password sign-in locked",
                    )
                    .await?;
            }
            let (cookie, fresh) = p.store.new_session(None, false).await?;
            return Ok(login_page(&p, &fresh, cookie, Some(generic)));
        }
    }
    let (cookie, _) = p.store.prove(&s, &address, "password", false).await?;
    p.audit
        .append(&address, Action::SignedIn, &address, Some(ip), "password")
        .await?;
    Ok(([cookie_header(&p, &cookie)], Redirect::to("/inbox")).into_response())
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

pub(crate) fn valid_token(t: &str) -> bool {
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

pub(crate) async fn link(
    State(p): State<Shared>,
    Path(token): Path<String>,
    _: Limited,
    Visitor(s): Visitor,
) -> PageResult {
    let m = by_token(&p, &token).await?;
    if let Some(s) = s {
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

/// The session that came through this message's link (its form's token is already checked).
pub(crate) fn link_session(s: Option<Session>, m: &MessageMeta) -> Result<Session, Refusal> {
    match s {
        Some(s) if s.message_id.as_deref() == Some(m.id.as_str()) => Ok(s),
        _ => Err(Refusal::Forbidden),
    }
}

pub(crate) async fn send_code(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(_): Checked<TokenOnly>,
) -> PageResult {
    let m = by_token(&p, &token).await?;
    let s = link_session(s, &m)?;
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

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    csrf: String,
    code: String,
}
csrf_form!(CodeForm);

pub(crate) async fn verify_code(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(f): Checked<CodeForm>,
) -> PageResult {
    let m = by_token(&p, &token).await?;
    let s = link_session(s, &m)?;
    let cfg = &p.settings;
    match p
        .store
        .check_code(&m.id, &f.code, cfg.max_failures, cfg.lock_secs)
        .await?
    {
        CodeCheck::Accepted => signed_in_by_link(&p, &s, &m, ip, "one-time code").await,
        CodeCheck::Wrong { locked } => {
            let note = "That code is not right, or it has expired or was already used. Check the newest email, or ask for a new code.";
            failed_on_link(&p, &token, &m, &s, ip, locked, "code", note).await
        }
        CodeCheck::Locked(_) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            link_page(&p, &token, &m, &s, Note::None).await?,
        )
            .into_response()),
    }
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
pub(crate) struct PasswordForm {
    csrf: String,
    password: String,
}
csrf_form!(PasswordForm);

pub(crate) async fn link_password(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(f): Checked<PasswordForm>,
) -> PageResult {
    let m = by_token(&p, &token).await?;
    let s = link_session(s, &m)?;
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

pub(crate) async fn logout(
    State(p): State<Shared>,
    Visitor(s): Visitor,
    Checked(_): Checked<TokenOnly>,
) -> PageResult {
    if let Some(s) = s {
        p.store.end_session(&s.id_hash).await?;
    }
    Ok(([clear_cookie(&p)], Redirect::to("/")).into_response())
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
