//! The cross-origin trio: Cross-Origin-Opener-Policy, -Embedder-Policy and
//! -Resource-Policy.

use super::rendered::SecurityHeader;
use crate::config::cross_origin::{EmbedderPolicy, OpenerPolicy, ResourcePolicy, COEP, COOP, CORP};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;

pub fn headers(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if let Some(p) = on(&o.cross_origin_opener_policy) {
        out.push(SecurityHeader::same(COOP, opener(*p)));
    }
    if let Some(p) = on(&o.cross_origin_embedder_policy) {
        out.push(SecurityHeader::same(COEP, embedder(*p)));
    }
    if let Some(p) = on(&o.cross_origin_resource_policy) {
        out.push(SecurityHeader::same(CORP, resource(*p)));
    }
}

fn opener(p: OpenerPolicy) -> &'static str {
    match p {
        OpenerPolicy::SameOrigin => "same-origin",
        OpenerPolicy::SameOriginAllowPopups => "same-origin-allow-popups",
        OpenerPolicy::NoopenerAllowPopups => "noopener-allow-popups",
        OpenerPolicy::UnsafeNone => "unsafe-none",
    }
}

fn embedder(p: EmbedderPolicy) -> &'static str {
    match p {
        EmbedderPolicy::RequireCorp => "require-corp",
        EmbedderPolicy::Credentialless => "credentialless",
        EmbedderPolicy::UnsafeNone => "unsafe-none",
    }
}

fn resource(p: ResourcePolicy) -> &'static str {
    match p {
        ResourcePolicy::SameOrigin => "same-origin",
        ResourcePolicy::SameSite => "same-site",
        ResourcePolicy::CrossOrigin => "cross-origin",
    }
}
