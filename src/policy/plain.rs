//! The one-value headers: X-XSS-Protection, X-Content-Type-Options,
//! Cache-Control, Clear-Site-Data and Expect-CT.

use super::rendered::SecurityHeader;
use crate::config::plain::{
    ClearSiteDataType, XssMode, CACHE_CONTROL, CLEAR_SITE_DATA, EXPECT_CT, NOSNIFF, XSS,
};
use crate::config::schema::SecurityOptions;
use crate::config::values::on;
use crate::config::values::Toggle;

pub fn xss(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    let xss = match (o.xss_protection, &o.xss_mode) {
        (_, Some(Toggle::Off)) => None,
        (Some(true), Some(Toggle::On(XssMode::Filter))) => Some("1"),
        (Some(true), _) => Some("1; mode=block"),
        _ => Some("0"),
    };
    if let Some(xss) = xss {
        out.push(SecurityHeader::same(XSS, xss));
    }
}

pub fn nosniff(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if o.content_type_options == Some(true) {
        out.push(SecurityHeader::same(NOSNIFF, "nosniff"));
    }
}

pub fn caching(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if let Some(cc) = on(&o.cache_control) {
        out.push(SecurityHeader::same(CACHE_CONTROL, cc.0.clone()));
    }
    if let Some(types) = on(&o.clear_site_data).filter(|t| !t.is_empty()) {
        let quoted: Vec<String> = types
            .iter()
            .map(|t| format!("\"{}\"", clear_site_data_name(*t)))
            .collect();
        out.push(SecurityHeader::same(CLEAR_SITE_DATA, quoted.join(", ")));
    }
}

pub fn expect_ct(o: &SecurityOptions, out: &mut Vec<SecurityHeader>) {
    if o.expect_ct == Some(true) {
        let mut v = format!("max-age={}", o.expect_ct_max_age.unwrap_or_default());
        if o.expect_ct_enforce == Some(true) {
            v.push_str(", enforce");
        }
        if let Some(uri) = on(&o.expect_ct_report_uri) {
            v.push_str(&format!(", report-uri=\"{}\"", uri.0));
        }
        out.push(SecurityHeader::same(EXPECT_CT, v));
    }
}

fn clear_site_data_name(t: ClearSiteDataType) -> &'static str {
    match t {
        ClearSiteDataType::Cache => "cache",
        ClearSiteDataType::Cookies => "cookies",
        ClearSiteDataType::Storage => "storage",
        ClearSiteDataType::ExecutionContexts => "executionContexts",
        ClearSiteDataType::ClientHints => "clientHints",
        ClearSiteDataType::PrefetchCache => "prefetchCache",
        ClearSiteDataType::PrerenderCache => "prerenderCache",
        ClearSiteDataType::All => "*",
    }
}
