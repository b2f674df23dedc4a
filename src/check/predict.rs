//! The MDN HTTP Observatory grade each vhost will get, from its configuration:
//! the headers the route serving `/` puts on an HTML page over HTTPS, the
//! plain-HTTP chain its redirect makes (to whichever vhost and route serve the
//! target), and its CORS answer to the Observatory's probe, graded by
//! [`crate::observatory`].

use indexmap::IndexMap;
use pingora_http::ResponseHeader;
use serde::Serialize;
use url::Url;

use super::finding::Reach;
use crate::audit::fetch::PROBE_ORIGIN;
use crate::config::schema::VhostConfig;
use crate::config::values::HostPattern;
use crate::config::LoadedConfig;
use crate::observatory::{scan, Hop, Response, Retrieval};
use crate::policy::{Plan, RoutePlan};

/// One deduction (or bonus) of the predicted score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deduction {
    pub test: &'static str,
    pub result: &'static str,
    pub modifier: i32,
}

/// A vhost's predicted grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    pub grade: &'static str,
    pub score: i32,
    /// Every test whose modifier is not 0, in the Observatory's order.
    pub deductions: Vec<Deduction>,
}

/// A host name the vhost answers, for the predicted URLs.
fn sample_host(v: &VhostConfig) -> String {
    match v.hosts.first() {
        Some(HostPattern::Exact(h)) => h.clone(),
        Some(HostPattern::Suffix(s)) => format!("www.{s}"),
        _ => "example.com".into(),
    }
}

/// A nonce of the real length, for policies that carry one.
const SAMPLE_NONCE: &str = "AAAAAAAAAAAAAAAAAAAAAA";

fn response_of(route: &RoutePlan, https: bool, url: &Url) -> Response {
    let mut resp = ResponseHeader::build(200, None).expect("200 is a status");
    resp.insert_header("content-type", "text/html; charset=utf-8")
        .expect("a static header");
    route.apply_response(&mut resp, https, None);
    if let Some(nonce) = &route.nonce {
        for (name, value) in nonce.csp_headers(SAMPLE_NONCE, https) {
            resp.insert_header(name, value).expect("a compiled header");
        }
    }
    observed(&resp, 200, url)
}

/// A built response as the Observatory would receive it.
fn observed(resp: &ResponseHeader, status: u16, url: &Url) -> Response {
    Response {
        url: url.clone(),
        status,
        headers: resp
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        verified: true,
    }
}

/// The route that serves `url` (a redirect's target: `ssl_host` may name another
/// vhost's host), when a vhost takes its host.
fn served_at<'p>(plan: &'p Plan, url: &Url) -> Option<&'p RoutePlan> {
    let host = crate::routing::normalize_host(url.host_str()?)?;
    let (i, _) = plan.router.route(&host)?;
    let vhost = plan.vhosts.get(i)?;
    vhost.routes.get(vhost.route_of_reported(url.path())?)
}

/// The answer to the CORS probe, when the route answers CORS at the edge.
fn probe_answer(route: &RoutePlan, url: &Url) -> Option<Response> {
    let cors = route.cors.as_ref()?;
    let mut req = http::HeaderMap::new();
    req.insert("origin", http::HeaderValue::from_static(PROBE_ORIGIN));
    let origin = cors.allowed_origin(&req)?;
    let mut resp = ResponseHeader::build(204, None).expect("204 is a status");
    cors.apply(&mut resp, Some(&origin));
    Some(observed(&resp, 204, url))
}

/// Predicts each vhost's grade, by name, in configuration order. Plain HTTP is
/// reachable when a listener without TLS exists; HTTPS when a TLS listener
/// exists or a trusted proxy may terminate it.
pub fn predict(loaded: &LoadedConfig, plan: &Plan) -> IndexMap<String, Prediction> {
    let g = &loaded.gateway;
    let reach = Reach::of(g);
    let (plain, tls) = (reach.plain, reach.https);
    g.vhosts
        .iter()
        .zip(&plan.vhosts)
        .map(|(v, vp)| {
            let host = sample_host(v);
            let http_url = Url::parse(&format!("http://{host}/")).expect("a valid host");
            let https_url = Url::parse(&format!("https://{host}/")).expect("a valid host");
            // The Observatory fetches `/`, through whatever route serves it.
            let route = &vp.routes[vp.route_index("/", None)];
            let https = tls.then(|| response_of(route, true, &https_url));
            let mut http_redirects = Vec::new();
            let mut http = None;
            if plain {
                let redirect = route
                    .redirect
                    .as_ref()
                    .filter(|r| r.applies_to("/"))
                    .and_then(|r| r.location(Some(&host), "/"))
                    .and_then(|l| Url::parse(&l).ok());
                match redirect {
                    Some(to) => {
                        http_redirects.push(Hop {
                            url: http_url.clone(),
                            status: 301,
                        });
                        http_redirects.push(Hop {
                            url: to.clone(),
                            status: 200,
                        });
                        let served = served_at(plan, &to).unwrap_or(route);
                        http = Some(response_of(served, to.scheme() == "https", &to));
                    }
                    None => {
                        http_redirects.push(Hop {
                            url: http_url.clone(),
                            status: 200,
                        });
                        http = Some(response_of(route, false, &http_url));
                    }
                }
            }
            let scored = if tls { &https_url } else { &http_url };
            let retrieval = Retrieval {
                hostname: host,
                cors: probe_answer(route, scored),
                http,
                https,
                http_redirects,
                page: Some(Default::default()),
                cookies: Vec::new(),
            };
            let prediction = match scan(&retrieval) {
                Ok(s) => Prediction {
                    grade: s.grade,
                    score: s.score,
                    deductions: s
                        .tests
                        .iter()
                        .filter(|t| t.modifier != 0)
                        .map(|t| Deduction {
                            test: t.name,
                            result: t.result.name(),
                            modifier: t.modifier,
                        })
                        .collect(),
                },
                Err(_) => Prediction {
                    grade: "F",
                    score: 0,
                    deductions: Vec::new(),
                },
            };
            (v.name.0.clone(), prediction)
        })
        .collect()
}
