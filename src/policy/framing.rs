//! The framing family's header: X-Frame-Options, unless `frame_options_allow_from`
//! turns it into CSP `frame-ancestors` (see [`super::csp::Csp::from_options`]).

use super::rendered::SecurityHeader;
use crate::config::framing::{FrameOptions, HEADER};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;

pub fn header(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if on(&o.frame_options_allow_from).is_some() {
        return;
    }
    if let Some(fo) = on(&o.frame_options) {
        let v = match fo {
            FrameOptions::Deny => "DENY",
            FrameOptions::SameOrigin => "SAMEORIGIN",
        };
        out.push(SecurityHeader::same(HEADER, v));
    }
}
