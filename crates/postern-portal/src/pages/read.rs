//! Reading: the inbox, a message, its attachments and the whole message as a file.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, PreEscaped};

use super::Shared;
use crate::audit::Action;
use crate::extract::{Client, Recipient};
use crate::layout::{human, page, PageResult, Refusal};
use crate::letters;
use crate::outbox::MailKind;
use crate::render;
use crate::service::Portal;
use crate::store::{MessageMeta, MessageState};

/// A message that belongs to `address`; anything else is "not found" (never "forbidden",
/// which would confirm that the ID exists).
pub(crate) async fn owned(p: &Portal, id: &str, address: &str) -> Result<MessageMeta, Refusal> {
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

pub(crate) async fn inbox(
    State(p): State<Shared>,
    Recipient {
        session: s,
        address,
    }: Recipient,
) -> PageResult {
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

pub(crate) async fn message(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    Recipient {
        session: s,
        address,
    }: Recipient,
) -> PageResult {
    let m = owned(&p, &id, &address).await?;
    let (_, raw) = p.store.content(&m.id).await?;
    let view = render::render(&raw);
    // Only the first opening writes to the message row.
    let first = m.opened_at.is_none() && p.store.mark_opened(&m.id).await?;
    p.audit
        .append(
            &address,
            Action::Opened,
            &m.id,
            Some(ip),
            if first {
                "first opening"
            } else {
                "opened again"
            },
        )
        .await?;
    if first && m.read_receipt && m.sender.contains('@') {
        let subject = if view.subject.is_empty() {
            "(no subject)"
        } else {
            &view.subject
        };
        if let Ok(mail) = letters::read_receipt(
            &p.settings,
            &m.sender,
            &address,
            &m.reference,
            subject,
            crate::now(),
        ) {
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

pub(crate) async fn download(
    State(p): State<Shared>,
    Path((id, n)): Path<(String, usize)>,
    Client(ip): Client,
    Recipient { address, .. }: Recipient,
) -> PageResult {
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

pub(crate) async fn download_eml(
    State(p): State<Shared>,
    Path(id): Path<String>,
    Client(ip): Client,
    Recipient { address, .. }: Recipient,
) -> PageResult {
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
