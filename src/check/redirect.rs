//! The HTTPS-redirect lints: plain HTTP served, a redirect to another host, and a
//! redirect that loops.

use super::finding::{hit, Hit, Scope};
use crate::codes::{NO_REDIRECT, REDIRECT_LOOP, REDIRECT_OFF_HOST};
use crate::config::schema::SecurityOptions;
use crate::config::values::{HostPattern, Toggle};

pub(super) fn lint(s: &SecurityOptions, at: &Scope, out: &mut Vec<Hit>) {
    let on_redirect = s.ssl_redirect == Some(true);
    if !on_redirect && at.reach.plain {
        out.push(hit(
            &NO_REDIRECT,
            "security.ssl_redirect",
            "plain-HTTP requests are served, not redirected to HTTPS (ssl_redirect is off)",
            "set ssl_redirect: true",
        ));
    }
    // With preload on, SECGW-E102 already says it.
    let preload = s.hsts_preload == Some(true);
    if let (true, false, Some(Toggle::On(HostPattern::Exact(to)))) =
        (on_redirect, preload, &s.ssl_host)
    {
        let own = at.hosts.iter().any(|h| match h {
            HostPattern::Exact(e) => e.eq_ignore_ascii_case(to),
            _ => false,
        });
        if !own {
            out.push(hit(
                &REDIRECT_OFF_HOST,
                "security.ssl_host",
                format!(
                    "plain-HTTP requests are redirected to {to}, another host: a browser never \
                     gets this host's HSTS over HTTPS before it leaves (the Observatory deducts \
                     for it)"
                ),
                "redirect to the same host first (no ssl_host), and from its HTTPS side to \
                 the other host",
            ));
        }
    }
    // A redirect to a host no vhost here serves leaves the gateway: no loop.
    let elsewhere =
        matches!(&s.ssl_host, Some(Toggle::On(HostPattern::Exact(h))) if !at.reach.serves(h));
    if on_redirect && !at.reach.https && !elsewhere {
        out.push(hit(
            &REDIRECT_LOOP,
            "security.ssl_redirect",
            "ssl_redirect is on, but no listener has `tls` and no trusted_proxies may report \
             HTTPS: every request counts as plain HTTP and is redirected again, forever",
            "add a listener with `tls`, or list the TLS-terminating proxy in trusted_proxies \
             (it must send X-Forwarded-Proto: https)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::lints::testing::*;

    #[test]
    fn redirects_that_loop_or_are_missing() {
        assert_eq!(
            strict(&[("ssl_redirect", "false"), ("hsts_preload", "false")]),
            [
                at("SECGW-W021", "security.hsts_preload"),
                at("SECGW-W008", "security.ssl_redirect")
            ]
        );
        let plain = "listeners: [{address: \"127.0.0.1:80\"}]\n";
        let all = findings(&load(&format!("{plain}{}", app(&[], ""))));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(
            (all[0].code, all[0].severity, all[0].key.as_str()),
            (
                "SECGW-E105",
                Severity::Error,
                "vhosts[0].security.ssl_redirect"
            )
        );
        let proxied = format!("{plain}trusted_proxies: [10.0.0.1]\n{}", app(&[], ""));
        assert_eq!(found(&proxied), []);
        let elsewhere = format!("{plain}{}", app(&[("ssl_host", "secure.other.test")], ""));
        assert_eq!(
            found(&elsewhere),
            [at("SECGW-E102", "security.hsts_preload")]
        );
    }
}
