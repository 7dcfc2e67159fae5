//! Replying to a message: to its sender only, with attachments, within the reply size limit.

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};

use super::read::owned;
use super::Shared;
use crate::audit::Action;
use crate::extract::{csrf_ok, Limited, Recipient};
use crate::layout::{human, page, too_large, PageResult, Refusal};
use crate::letters::{self, Upload};
use crate::outbox::MailKind;
use crate::render;
use crate::service::Portal;
use crate::store::{MessageMeta, Session};

pub(crate) async fn reply_form(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Recipient {
        session: s,
        address,
    }: Recipient,
) -> PageResult {
    let m = owned(&p, &id, &address).await?;
    Ok(page(&p, "Reply", Some(&s), reply_body(&p, &m, &s, None)).into_response())
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

/// A reply: a multipart form (text and files), so its CSRF token is one of the fields read
/// here, checked before anything is sent.
pub(crate) async fn reply(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Limited(ip): Limited,
    Recipient {
        session: s,
        address,
    }: Recipient,
    mut form: Multipart,
) -> PageResult {
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
            ("files", Some(f)) if !data.is_empty() => uploads.push(Upload {
                name: f,
                data: data.to_vec(),
            }),
            _ => {}
        }
    }
    if !csrf_ok(&s, &csrf) {
        return Err(Refusal::Forbidden);
    }
    if !m.sender.contains('@') {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(&p, "Reply", Some(&s), reply_body(&p, &m, &s, None)),
        )
            .into_response());
    }
    if body.trim().is_empty() && uploads.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(
                &p,
                "Reply",
                Some(&s),
                reply_body(&p, &m, &s, Some("Please write a message or attach a file.")),
            ),
        )
            .into_response());
    }
    let (subject, raw) = p.store.content(&m.id).await?;
    let view = render::render(&raw);
    let n = uploads.len();
    let proof = s.proof.clone().unwrap_or_else(|| "one-time code".into());
    let mail = letters::reply(
        &address,
        &m.sender,
        &subject,
        view.message_id.as_deref(),
        &body,
        uploads,
        &m.id,
        &proof,
    )
    .map_err(|_| Refusal::Internal)?;
    p.send(MailKind::Reply, Some(&address), &m.sender, mail)
        .await?;
    p.audit
        .append(
            &address,
            Action::Replied,
            &m.id,
            Some(ip),
            &format!("to {}, {n} attachment(s)", m.sender),
        )
        .await?;
    Ok(page(&p, "Reply sent", Some(&s), html! {
        h1 { "Reply sent" }
        p class="notice" role="status" { "Your reply was sent to " (m.sender_name) "." }
        p { a href={"/message/" (m.id)} { "Back to the message" } " · " a href="/inbox" { "Inbox" } }
    }).into_response())
}
