//! The sender withdraws a message, from the link in the notice it was sent.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use maud::html;

use super::signin::{link_session, valid_token};
use super::{Shared, TokenOnly};
use crate::extract::{cookie_header, Checked, Limited, Visitor};
use crate::layout::{page, PageResult, Refusal};
use crate::letters;
use crate::service::Portal;
use crate::store::{MessageMeta, MessageState};

/// A withdrawal link's message, active or not (the page says which).
async fn by_revoke_token(p: &Portal, token: &str) -> Result<MessageMeta, Refusal> {
    if !valid_token(token) {
        return Err(Refusal::NotFound);
    }
    Ok(p.store.by_revoke_token(token).await?)
}

pub(crate) async fn revoke_page(
    State(p): State<Shared>,
    Path(token): Path<String>,
    _: Limited,
) -> PageResult {
    let m = by_revoke_token(&p, &token).await?;
    if m.state != MessageState::Active {
        return Err(Refusal::Gone(m.state));
    }
    // A confirmation step: mail scanners follow links; only a person submits the form.
    let (cookie, s) = p.store.new_session(Some(&m.id), false).await?;
    let body = page(
        &p,
        "Withdraw a message",
        None,
        html! {
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
        },
    );
    Ok(([cookie_header(&p, &cookie)], body).into_response())
}

pub(crate) async fn revoke(
    State(p): State<Shared>,
    Path(token): Path<String>,
    Limited(ip): Limited,
    Visitor(s): Visitor,
    Checked(_): Checked<TokenOnly>,
) -> PageResult {
    let m = by_revoke_token(&p, &token).await?;
    link_session(s, &m)?;
    p.revoke(&m.id, &m.sender, Some(ip)).await?;
    Ok(page(&p, "Withdrawn", None, html! {
        h1 { "Message withdrawn" }
        p class="notice" role="status" { "The message " (m.reference) " to " (m.recipient) " can no longer be opened." }
    })
    .into_response())
}
