//! An optional password, for recipients who would rather sign in than use a code each time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::signin::busy;
use super::Shared;
use crate::audit::Action;
use crate::extract::{Checked, Limited, Recipient};
use crate::layout::{page, PageResult, Refusal};
use crate::store::Session;
use postern_store::password::PasswordBudget;

pub(crate) async fn account(
    State(p): State<Shared>,
    Recipient { session: s, .. }: Recipient,
) -> PageResult {
    Ok(page(&p, "Password", Some(&s), password_body(&s, None)).into_response())
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
pub(crate) struct NewPasswordForm {
    csrf: String,
    password: String,
    confirm: String,
}
csrf_form!(NewPasswordForm);

pub(crate) async fn set_password(
    State(p): State<Shared>,
    Limited(ip): Limited,
    Recipient {
        session: s,
        address,
    }: Recipient,
    Checked(f): Checked<NewPasswordForm>,
) -> PageResult {
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
