//! The CORS lint: any origin where responses set cookies.

use super::finding::{hit, Hit, Sent};
use crate::codes::CORS_ANY_WITH_COOKIES;
use crate::config::cors::CorsOrigin;
use crate::config::schema::SecurityOptions;

pub(super) fn lint(s: &SecurityOptions, sent: &Sent, out: &mut Vec<Hit>) {
    let any = s
        .allowed_origins
        .iter()
        .flatten()
        .any(|o| *o == CorsOrigin::Any);
    if s.cors_enabled == Some(true) && any && sent.by_hand("Set-Cookie") {
        out.push(hit(
            &CORS_ANY_WITH_COOKIES,
            "security.allowed_origins",
            "allowed_origins has `*` while `headers` sets cookies: every site may read \
             responses of a vhost that keeps sessions",
            "list the origins that may read these responses in allowed_origins",
        ));
    }
}
