//! The recipients' pages, one module each: how they sign in, read, reply, set a password, and
//! how a sender withdraws a message. What a page needs before it runs (limit, session, CSRF) is
//! in its arguments ([`crate::extract`]); its refusals are drawn by [`crate::web`]'s layer.

use std::sync::Arc;

use serde::Deserialize;

use crate::service::Portal;

pub(crate) type Shared = Arc<Portal>;

pub(crate) mod account;
pub(crate) mod assets;
pub(crate) mod read;
pub(crate) mod reply;
pub(crate) mod signin;
pub(crate) mod withdraw;

/// A form with nothing but its CSRF token (sign out, withdraw, revoke).
#[derive(Deserialize)]
pub(crate) struct TokenOnly {
    csrf: String,
}
csrf_form!(TokenOnly);
