//! One header the security options produce, with what it is over plain HTTP: what
//! each family file renders and the response plan compiles.

/// One header the security options produce, in the canonical case it is sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeader {
    pub name: &'static str,
    /// The value over HTTPS.
    pub value: String,
    pub over_http: OverHttp,
}

impl SecurityHeader {
    /// A header sent alike over both schemes.
    pub fn same(name: &'static str, value: impl Into<String>) -> SecurityHeader {
        SecurityHeader {
            name,
            value: value.into(),
            over_http: OverHttp::Same,
        }
    }
}

/// What a header is over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverHttp {
    Same,
    /// Not sent: HSTS (RFC 6797 7.2), and `Reporting-Endpoints`, which browsers
    /// only take from secure contexts.
    Never,
    /// Another value: a CSP without `report-to`, since a browser that supports
    /// `report-to` then ignores `report-uri` and, on an insecure page, reports nothing.
    Other(String),
}
