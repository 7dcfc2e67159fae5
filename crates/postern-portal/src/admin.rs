//! The administrator's pages, behind their own sign-in: the quarantine (review, release,
//! reject — through [`AdminDesk`], the same library calls the CLI makes) and portal messages
//! (revoke, audit trail).

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use crate::audit::Action;
use crate::letters;
use crate::password::PasswordBudget;
use crate::service::Portal;
use crate::store::{Attempt, LockOn, Session};
use crate::web::{busy, cookie_header, csrf_ok, limit, page, session, Client, Refusal};
use zeroize::Zeroizing;

type Shared = Arc<Portal>;

/// One quarantined message as the review page shows it (masked values only).
#[derive(Debug, Clone)]
pub struct QuarantineLine {
    /// Quarantine ID.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Envelope sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Why it is held.
    pub reason: String,
    /// The inspection verdict in words (masked).
    pub verdict: String,
    /// `held`, `released`, `rejected`.
    pub state: String,
}

/// What the administrator pages need from the gateway they run in.
#[async_trait]
pub trait AdminDesk: Send + Sync + std::fmt::Debug {
    /// Checks an administrator's password (Argon2: slow; called off the async threads, within
    /// the process's password budget). An unknown name must cost what a wrong password costs.
    fn check_password(&self, user: &str, password: &str) -> bool;
    /// Whether `user` is an administrator (the sign-in lock counts only on real names, so made-up
    /// ones cannot fill the lock table).
    fn is_admin(&self, user: &str) -> bool;
    /// Quarantined messages, newest first.
    async fn quarantine(&self) -> Result<Vec<QuarantineLine>, String>;
    /// Releases (`release`) or rejects a quarantined message, as `actor`, for `reason`.
    async fn decide(
        &self,
        id: &str,
        release: bool,
        actor: &str,
        reason: &str,
    ) -> Result<(), String>;
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/login", post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/portal/{id}", get(trail))
        .route("/admin/portal/{id}/revoke", post(revoke))
        .route("/admin/quarantine/{id}/{decision}", post(decide))
}

async fn admin_session(
    p: &Portal,
    headers: &HeaderMap,
) -> Result<Option<(Session, String)>, Refusal> {
    Ok(session(p, headers)
        .await?
        .and_then(|s| match (&s.address, s.admin) {
            (Some(a), true) => {
                let a = a.clone();
                Some((s, a))
            }
            _ => None,
        }))
}

async fn finish(p: &Portal, r: Result<Response, Refusal>) -> Response {
    match r {
        Ok(r) => r,
        Err(Refusal::SignIn) => Redirect::to("/admin").into_response(),
        Err(e) => {
            let status = match e {
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, page(p, "Administration", None, html! { h1 { "Not possible" } p { "The request was refused (" (status.as_u16()) "). " a href="/admin" { "Back" } } })).into_response()
        }
    }
}

async fn dashboard(State(p): State<Shared>, Client(ip): Client, headers: HeaderMap) -> Response {
    let r = async {
        let Some((s, user)) = admin_session(&p, &headers).await? else {
            limit(&p, ip)?;
            let (cookie, s) = p.store.new_session(None, false).await?;
            return Ok(login_page(&p, &s, &cookie, None));
        };
        let quarantine = match &p.admin {
            Some(desk) => desk.quarantine().await.map_err(|e| {
                tracing::error!(error = %e, "quarantine list failed");
                Refusal::Internal
            })?,
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
                                    @if q.state == "held" {
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
    .await;
    finish(&p, r).await
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
        let Some(desk) = p.admin.clone() else {
            return Err(Refusal::NotFound);
        };
        let user = letters::one_line(&f.user, 100);
        let generic = "Wrong user name or password, or sign-in is locked for a while after several wrong tries.";
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
                .append(&user, Action::AdminLogin, "admin", Some(ip), "locked, not checked")
                .await?;
            let (cookie, fresh) = p.store.new_session(None, false).await?;
            return Ok(login_page(&p, &fresh, &cookie, Some(generic)));
        };
        let (u, pw) = (user.clone(), Zeroizing::new(f.password));
        let ok = admission
            .run(move || desk.check_password(&u, &pw))
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
                    .append(&user, Action::Locked, "admin", Some(ip), "administrator sign-in locked")
                    .await?;
            }
            let (cookie, fresh) = p.store.new_session(None, false).await?;
            return Ok(login_page(&p, &fresh, &cookie, Some(generic)));
        }
        p.store.attempt_succeeded(LockOn::Admin(&user)).await?;
        let (cookie, _) = p.store.prove(&s, &user, "password", true).await?;
        Ok(([cookie_header(&p, &cookie)], Redirect::to("/admin")).into_response())
    }
    .await;
    finish(&p, r).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(p): State<Shared>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let r = async {
        if let Some((s, _)) = admin_session(&p, &headers).await? {
            if !csrf_ok(&s, &f.csrf) {
                return Err(Refusal::Forbidden);
            }
            p.store.end_session(&s.id_hash).await?;
        }
        Ok(Redirect::to("/admin").into_response())
    }
    .await;
    finish(&p, r).await
}

async fn trail(State(p): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let r = async {
        let (s, _) = admin_session(&p, &headers).await?.ok_or(Refusal::SignIn)?;
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
    .await;
    finish(&p, r).await
}

async fn revoke(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let r = async {
        let (s, user) = admin_session(&p, &headers).await?.ok_or(Refusal::SignIn)?;
        if !csrf_ok(&s, &f.csrf) {
            return Err(Refusal::Forbidden);
        }
        p.revoke(&id, &format!("admin:{user}"), Some(ip)).await?;
        Ok(Redirect::to("/admin").into_response())
    }
    .await;
    finish(&p, r).await
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    reason: String,
}

async fn decide(
    State(p): State<Shared>,
    Path((id, decision)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<DecisionForm>,
) -> Response {
    let r = async {
        let (s, user) = admin_session(&p, &headers).await?.ok_or(Refusal::SignIn)?;
        if !csrf_ok(&s, &f.csrf) {
            return Err(Refusal::Forbidden);
        }
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
        .map_err(|e| {
            tracing::warn!(error = %e, quarantine_id = %id, "quarantine decision refused");
            Refusal::NotFound
        })?;
        Ok(Redirect::to("/admin").into_response())
    }
    .await;
    finish(&p, r).await
}
