//! The administrator's pages, behind their own sign-in: the quarantine (review, release,
//! reject — through [`crate::AdminDesk`], the same library calls the CLI makes) and portal
//! messages (revoke, audit trail).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use postern_store::HeldState;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::audit::Action;
use crate::desk::DeskError;
use crate::extract::{cookie_header, limit, Administrator, Checked, Client, Limited, Visitor};
use crate::layout::{page, PageResult, Refusal};
use crate::letters;
use crate::pages::signin::busy;
use crate::service::Portal;
use crate::store::{Attempt, LockOn, Session};
use postern_store::password::PasswordBudget;

type Shared = Arc<Portal>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/login", post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/portal/{id}", get(trail))
        .route("/admin/portal/{id}/revoke", post(revoke))
        .route("/admin/quarantine/{id}/{decision}", post(decide))
}

/// A refusal on an administrator's page: "sign in" is the sign-in page, anything else a short
/// page with the status and the way back.
pub(crate) fn refusal(p: &Portal, r: Refusal) -> Response {
    let status = match r {
        Refusal::SignIn => return Redirect::to("/admin").into_response(),
        Refusal::NotFound => StatusCode::NOT_FOUND,
        Refusal::Forbidden => StatusCode::FORBIDDEN,
        Refusal::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Conflict => StatusCode::CONFLICT,
        Refusal::BadRequest => StatusCode::BAD_REQUEST,
        Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Gone(_) => StatusCode::GONE,
        Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, page(p, "Administration", None, html! { h1 { "Not possible" } p { "The request was refused (" (status.as_u16()) "). " a href="/admin" { "Back" } } })).into_response()
}

async fn dashboard(
    State(p): State<Shared>,
    Client(ip): Client,
    admin: Option<Administrator>,
) -> PageResult {
    let Some(Administrator { session: s, user }) = admin else {
        // A new session is a database row: bounded per client.
        limit(&p, ip)?;
        let (cookie, s) = p.store.new_session(None, false).await?;
        return Ok(login_page(&p, &s, &cookie, None));
    };
    let quarantine = match &p.admin {
        Some(desk) => desk.quarantine().await.map_err(desk_refusal)?,
        None => Vec::new(),
    };
    let messages = p.store.list(None).await?;
    Ok(page(&p, "Administration", Some(&s), html! {
        h1 { "Administration" }
        p { "Signed in as " (user) "." }
        h2 { "Quarantine" }
        @if quarantine.is_empty() { p { "Nothing is held." } } @else {
            table {
                thead { tr { th scope="col" { "Held" } th scope="col" { "From → to" } th scope="col" { "Why" } th scope="col" { "Decision" } } }
                tbody {
                    @for q in &quarantine {
                        tr {
                            td { (letters::moment(q.created_at)) br; small { (q.id) } }
                            td { (q.sender) " → " (q.recipients.join(", ")) }
                            td { (q.reason) @if !q.verdict.is_empty() { br; small { (q.verdict) } } }
                            td {
                                @if q.state == HeldState::Held {
                                    form method="post" action={"/admin/quarantine/" (q.id) "/release"} {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        label for={"r-" (q.id)} { "Reason" }
                                        input type="text" id={"r-" (q.id)} name="reason" required;
                                        button type="submit" { "Release" }
                                    }
                                    form method="post" action={"/admin/quarantine/" (q.id) "/reject"} {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        label for={"j-" (q.id)} { "Reason" }
                                        input type="text" id={"j-" (q.id)} name="reason" required;
                                        button type="submit" { "Reject" }
                                    }
                                } @else { (q.state) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Portal messages" }
        @if messages.is_empty() { p { "No portal messages." } } @else {
            table {
                thead { tr { th scope="col" { "Stored" } th scope="col" { "From → to" } th scope="col" { "State" } th scope="col" { "" } } }
                tbody {
                    @for m in &messages {
                        tr {
                            td { (letters::moment(m.created_at)) br; small { a href={"/admin/portal/" (m.id)} { (m.reference) } } }
                            td { (m.sender) " → " (m.recipient) }
                            td { (m.state) @if let Some(o) = m.opened_at { br; small { "opened " (letters::moment(o)) } } br; small { "expires " (letters::day(m.expires_at)) } }
                            td {
                                @if m.state == crate::store::MessageState::Active {
                                    form method="post" action={"/admin/portal/" (m.id) "/revoke"} {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        button type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }).into_response())
}

fn login_page(p: &Portal, s: &Session, cookie: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (
        status,
        [cookie_header(p, cookie)],
        page(p, "Administrator sign-in", None, html! {
            h1 { "Administrator sign-in" }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="user" { "User name" }
                input type="text" id="user" name="user" autocomplete="username" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    user: String,
    password: String,
}
csrf_form!(LoginForm);

async fn login(
    State(p): State<Shared>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(f): Checked<LoginForm>,
) -> PageResult {
    let s = s.ok_or(Refusal::Forbidden)?;
    let Some(desk) = p.admin.clone() else {
        return Err(Refusal::NotFound);
    };
    let user = letters::one_line(&f.user, 100);
    let generic =
        "Wrong user name or password, or sign-in is locked for a while after several wrong tries.";
    let admission = PasswordBudget::global().admit().map_err(busy)?;
    let cfg = &p.settings;
    // The same lock as recipients' passwords, counted before the check.
    let attempt = if desk.is_admin(&user) {
        p.store
            .begin_attempt(LockOn::Admin(&user), cfg.max_failures, cfg.lock_secs)
            .await?
    } else {
        Attempt::Allowed { locks: false }
    };
    let Attempt::Allowed { locks } = attempt else {
        p.audit
            .append(
                &user,
                Action::AdminLogin,
                "admin",
                Some(ip),
                "locked, not checked",
            )
            .await?;
        let (cookie, fresh) = p.store.new_session(None, false).await?;
        return Ok(login_page(&p, &fresh, &cookie, Some(generic)));
    };
    let (u, pw) = (user.clone(), Zeroizing::new(f.password));
    let ok = admission
        .run(move |h| desk.check_password(h, &u, &pw))
        .await
        .map_err(busy)?;
    p.audit
        .append(
            &user,
            Action::AdminLogin,
            "admin",
            Some(ip),
            if ok { "signed in" } else { "wrong password" },
        )
        .await?;
    if !ok {
        if locks {
            p.audit
                .append(
                    &user,
                    Action::Locked,
                    "admin",
                    Some(ip),
                    "administrator sign-in locked",
                )
                .await?;
        }
        let (cookie, fresh) = p.store.new_session(None, false).await?;
        return Ok(login_page(&p, &fresh, &cookie, Some(generic)));
    }
    p.store.attempt_succeeded(LockOn::Admin(&user)).await?;
    let (cookie, _) = p.store.prove(&s, &user, "password", true).await?;
    Ok(([cookie_header(&p, &cookie)], Redirect::to("/admin")).into_response())
}

#[derive(Deserialize)]
struct TokenOnly {
    csrf: String,
}
csrf_form!(TokenOnly);

async fn logout(
    State(p): State<Shared>,
    admin: Option<Administrator>,
    Checked(_): Checked<TokenOnly>,
) -> PageResult {
    if let Some(Administrator { session: s, .. }) = admin {
        p.store.end_session(&s.id_hash).await?;
    }
    Ok(Redirect::to("/admin").into_response())
}

async fn trail(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Administrator { session: s, .. }: Administrator,
) -> PageResult {
    let m = p.store.meta(&id).await?;
    let rows = p.audit.list(Some(&m.id)).await?;
    Ok(page(&p, "Audit trail", Some(&s), html! {
        h1 { "Audit trail of " (m.reference) }
        p { (m.sender) " → " (m.recipient) ", " (m.state) }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "From" } th scope="col" { "Detail" } } }
            tbody {
                @for a in &rows {
                    tr { td { (letters::moment(a.at)) } td { (a.actor) } td { (a.action) } td { (a.client) } td { (a.detail) } }
                }
            }
        }
        p { a href="/admin" { "Back" } }
    }).into_response())
}

async fn revoke(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    Administrator { user, .. }: Administrator,
    Checked(_): Checked<TokenOnly>,
) -> PageResult {
    p.revoke(&id, &format!("admin:{user}"), Some(ip)).await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    reason: String,
}
csrf_form!(DecisionForm);

async fn decide(
    State(p): State<Shared>,
    Path((id, decision)): Path<(String, String)>,
    Administrator { user, .. }: Administrator,
    Checked(f): Checked<DecisionForm>,
) -> PageResult {
    let release = match decision.as_str() {
        "release" => true,
        "reject" => false,
        _ => return Err(Refusal::NotFound),
    };
    let desk = p.admin.clone().ok_or(Refusal::NotFound)?;
    desk.decide(
        &id,
        release,
        &format!("admin:{user}"),
        &letters::one_line(&f.reason, 300),
    )
    .await
    .map_err(desk_refusal)?;
    Ok(Redirect::to("/admin").into_response())
}

/// What the desk's answer means for the page (an unavailable desk's reason goes to the log).
fn desk_refusal(e: DeskError) -> Refusal {
    match e {
        DeskError::NotFound(_) => Refusal::NotFound,
        DeskError::Decided { .. } => Refusal::Conflict,
        e => {
            tracing::warn!(error = %e, "quarantine desk refused");
            Refusal::Internal
        }
    }
}
