//! The HSTS family's header: Strict-Transport-Security, never over plain HTTP
//! (RFC 6797 7.2).

use super::rendered::{OverHttp, SecurityHeader};
use crate::config::hsts::HEADER;
use crate::config::schema::SecurityOptions;

pub fn header(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if o.hsts_enabled != Some(true) {
        return;
    }
    // The max-ages are always set: the built-in defaults are the weakest layer.
    let mut v = format!("max-age={}", o.hsts_max_age.unwrap_or_default());
    if o.hsts_include_subdomains == Some(true) {
        v.push_str("; includeSubDomains");
    }
    if o.hsts_preload == Some(true) {
        v.push_str("; preload");
    }
    out.push(SecurityHeader {
        name: HEADER,
        value: v,
        over_http: OverHttp::Never,
    });
}
