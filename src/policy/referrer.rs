//! The Referrer-Policy header.

use super::rendered::SecurityHeader;
use crate::config::referrer::HEADER;
use crate::config::schema::SecurityOptions;
use crate::config::values::on;

pub fn header(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if let Some(rp) = on(&o.referrer_policy) {
        out.push(SecurityHeader::same(HEADER, rp.0.clone()));
    }
}
