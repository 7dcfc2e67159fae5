//! The stylesheet (in the organisation's colour) and the logo.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Shared;

pub(crate) async fn css(State(p): State<Shared>) -> Response {
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
pub(crate) async fn logo(State(p): State<Shared>) -> Response {
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
