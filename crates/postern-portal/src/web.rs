//! The portal's HTTP surface: its routes, and the layer every response passes through (the
//! refusal pages, the security headers). The pages themselves are in [`crate::pages`] and
//! [`crate::admin`]; what they need before they run, in [`crate::extract`].

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{HeaderMap, HeaderValue};
use axum::http::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use crate::extract::ClientAddr;
use crate::layout::{framework_error, refusal_page, Refusal};
use crate::pages::{account, assets, read, reply, signin, withdraw};
use crate::service::Portal;

type Shared = Arc<Portal>;

/// The portal's routes (recipient and administrator pages).
pub fn router(portal: Shared) -> Router {
    let reply_limit = portal.settings.max_reply_bytes + 64 * 1024;
    Router::new()
        .route("/", get(signin::home))
        .route("/login", post(signin::login))
        .route("/logout", post(signin::logout))
        .route("/m/{token}", get(signin::link))
        .route("/m/{token}/code", post(signin::send_code))
        .route("/m/{token}/verify", post(signin::verify_code))
        .route("/m/{token}/password", post(signin::link_password))
        .route("/inbox", get(read::inbox))
        .route("/message/{id}", get(read::message))
        .route("/message/{id}/attachment/{n}", get(read::download))
        .route("/message/{id}/eml", get(read::download_eml))
        .route(
            "/message/{id}/reply",
            get(reply::reply_form)
                .post(reply::reply)
                .layer(DefaultBodyLimit::max(reply_limit)),
        )
        .route(
            "/account",
            get(account::account).post(account::set_password),
        )
        .route(
            "/revoke/{token}",
            get(withdraw::revoke_page).post(withdraw::revoke),
        )
        .route("/static/portal.css", get(assets::css))
        .route("/static/logo", get(assets::logo))
        .merge(crate::admin::routes())
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(
            portal.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn_with_state(
            portal.clone(),
            crate::extract::forwarded_client,
        ))
        .with_state(portal)
}

async fn security_headers(
    State(p): State<Shared>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let admin_area = req.uri().path().starts_with("/admin");
    let mut resp = next.run(req).await;
    resp = match resp.extensions_mut().remove::<Refusal>() {
        Some(r) if admin_area => crate::admin::refusal(&p, r),
        Some(r) => refusal_page(&p, r),
        None => framework_error(&p, resp),
    };
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
