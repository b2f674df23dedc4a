//! The Permissions-Policy header, serialized as an RFC 8941 dictionary.

use super::rendered::SecurityHeader;
use crate::config::permissions::{Allow, PermissionsPolicy, HEADER};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;

pub fn header(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if let Some(v) = on(&o.permissions_policy).and_then(permissions_policy) {
        out.push(SecurityHeader::same(HEADER, v));
    }
}

/// Permissions-Policy as an RFC 8941 dictionary: `camera=(), geolocation=(self "https://x")`.
fn permissions_policy(pp: &PermissionsPolicy) -> Option<String> {
    let mut ser = sfv::DictSerializer::new();
    for (feature, allowlist) in &pp.0 {
        let Some(allowlist) = allowlist else { continue };
        // Names and origins were checked at load, so these conversions cannot fail.
        let Ok(key) = sfv::KeyRef::from_str(feature) else {
            continue;
        };
        let mut inner = ser.inner_list(key);
        for allow in &allowlist.0 {
            match allow {
                Allow::SelfOrigin => inner.bare_item(sfv::token_ref("self")),
                Allow::Src => inner.bare_item(sfv::token_ref("src")),
                Allow::All => inner.bare_item(sfv::token_ref("*")),
                Allow::Origin(o) => match sfv::StringRef::from_str(o) {
                    Ok(s) => inner.bare_item(s),
                    Err(_) => continue,
                },
            };
        }
        let _ = inner.finish();
    }
    ser.finish()
}
