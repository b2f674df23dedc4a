//! The redirection test: where `http://HOST/` leads.

use super::{Expectation, Retrieval, TestResult};

/// `redirectionTest`. Without a preload list, "all redirects preloaded" never holds.
pub fn test(r: &Retrieval) -> TestResult {
    use Expectation::*;
    let route = &r.http_redirects;
    let result = match &r.http {
        None => RedirectionNotNeededNoHttp,
        Some(resp) if !resp.verified => RedirectionInvalidCert,
        Some(_) if route.len() <= 1 => RedirectionMissing,
        Some(_) if route[route.len() - 1].url.scheme() != "https" => RedirectionNotToHttps,
        Some(_) if route[1].url.scheme() == "http" => RedirectionNotToHttpsOnInitialRedirection,
        Some(_)
            if route[0].url.scheme() == "http"
                && route[1].url.scheme() == "https"
                && route[0].url.host_str() != route[1].url.host_str() =>
        {
            RedirectionOffHostFromHttp
        }
        Some(_) => RedirectionToHttps,
    };
    TestResult::new(
        "redirection",
        result,
        matches!(result, RedirectionNotNeededNoHttp | RedirectionToHttps),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::site;
    use super::super::Hop;
    use super::*;
    use url::Url;

    fn hop(url: &str, status: u16) -> Hop {
        Hop {
            url: Url::parse(url).unwrap(),
            status,
        }
    }

    #[test]
    fn each_route_shape() {
        let mut r = site(&[]);
        assert_eq!(test(&r).result, Expectation::RedirectionToHttps);
        r.http_redirects = vec![hop("http://example.com/", 200)];
        assert_eq!(test(&r).result, Expectation::RedirectionMissing);
        r.http_redirects = vec![
            hop("http://example.com/", 301),
            hop("http://www.example.com/", 301),
            hop("https://www.example.com/", 200),
        ];
        assert_eq!(
            test(&r).result,
            Expectation::RedirectionNotToHttpsOnInitialRedirection
        );
        r.http_redirects = vec![
            hop("http://example.com/", 301),
            hop("https://www.example.com/", 200),
        ];
        assert_eq!(test(&r).result, Expectation::RedirectionOffHostFromHttp);
        r.http_redirects = vec![
            hop("http://example.com/", 301),
            hop("https://example.com/", 302),
            hop("http://example.com/x", 200),
        ];
        assert_eq!(test(&r).result, Expectation::RedirectionNotToHttps);
        r.http = None;
        assert_eq!(test(&r).result, Expectation::RedirectionNotNeededNoHttp);
    }
}
