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

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn any_origin_where_cookies_are_set() {
        let cors = [("cors_enabled", "true"), ("allowed_origins", "[\"*\"]")];
        let cookies = "    headers: {default: {Set-Cookie: \"seen=1\"}}\n";
        assert_eq!(
            found(&format!("{LISTENERS}{}", app(&cors, cookies))),
            [at("SECGW-E104", "security.allowed_origins")]
        );
        assert_eq!(strict(&cors), []);
    }
}
