//! One vhost's compiled plan: its routes, the path table that picks one, and its
//! certificate.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::access_log::{ConfigFiles, LogPlan};
use super::csp::collect_path;
use super::route::{RouteParts, RoutePlan};
use super::rules::{Asked, Conditions, RedirectTo, Rewrite};
use super::target::{route_target, split_target, vhost_target, TargetKeys};
use crate::config::resolve::EffectiveVhost;
use crate::config::route_rules::PathRewrite;
use crate::config::schema::{EscapedSlashes, RouteConfig};
use crate::config::values::HostPattern;
use crate::config::KeyError;
use crate::metrics::{Metrics, RouteLabels, VHOST_ROUTE};
use crate::reports::Collector;
use crate::routing::paths::{normalize_path, prefix_key, PathTable};

#[derive(Debug)]
pub struct VhostPlan {
    pub name: String,
    /// The vhost's own certificate, for SNI matching its hosts.
    pub cert: Option<Arc<CertifiedKey>>,
    /// `escaped_slashes: keep`.
    pub keep_escaped_slashes: bool,
    paths: PathTable,
    /// Whether a route has conditions beyond its path (an HTTPRoute's).
    conditional: bool,
    /// By local port: the vhost a request none of the routes takes tries next
    /// (indices into the plan's vhosts, set once they are all compiled).
    pub fallback: Vec<(u16, usize)>,
    /// By route (as in `paths`): the route that takes a request of the same path
    /// that this one's conditions refuse.
    next: Vec<Option<usize>>,
    /// `[0]` is the vhost's own settings (`_vhost`); the configured routes follow.
    pub routes: Vec<RoutePlan>,
    /// The CSP report collector, when a route has `csp_report_collect`.
    pub reports: Option<Collector>,
}

impl VhostPlan {
    /// Compiles one vhost's effective settings and its routes'.
    pub fn compile(
        ev: &EffectiveVhost,
        log_files: &ConfigFiles,
        metrics: &Metrics,
    ) -> Result<VhostPlan, KeyError> {
        let base_dir = log_files.base_dir.as_path();
        let v = ev.config;
        let layer = ev.layer.as_ref().map_err(Clone::clone)?;
        let name = v.name.0.as_str();
        let catch_all = v.hosts.contains(&HostPattern::Any);
        let keep_escaped_slashes = v.escaped_slashes == EscapedSlashes::Keep;
        let vhost_keys = TargetKeys {
            upstreams: &v.upstreams,
            upstream_tls: v.upstream_tls.as_ref(),
            respond: v.respond.as_ref(),
            timeouts: [v.connect_timeout_ms, v.read_timeout_ms, v.write_timeout_ms],
        };
        let target = vhost_target(&vhost_keys, base_dir)?;
        let own = RouteParts {
            labels: RouteLabels {
                vhost: name,
                route: VHOST_ROUTE,
            },
            target: target.clone(),
            rewrite: None,
            upstream_host: None,
            when: None,
            redirect_to: None,
            catch_all,
            access_log: LogPlan::compile(&ev.access_log, log_files)?,
        };
        let mut routes = vec![RoutePlan::compile(layer, own, metrics)?];
        let mut collect_paths = vec![collect_path(&layer.security)];

        let mut paths = PathTable::default();
        let mut next: Vec<Option<usize>> = Vec::with_capacity(ev.routes.len());
        let mut names: HashMap<String, usize> = HashMap::new();
        for (j, er) in ev.routes.iter().enumerate() {
            let r = er.config;
            next.push(None);
            let compiled = (|| {
                let matched = RouteMatch::of(r, keep_escaped_slashes)?;
                if let Err(prev) = matched.insert(&mut paths, j) {
                    // The rules of HTTPRoutes share paths, told apart by their
                    // conditions; they come in the Gateway API's precedence order,
                    // so a later one only takes what the earlier ones leave.
                    if r.rules.is_none() {
                        return Err(KeyError::new(
                            matched.key(),
                            format!("`{}` is already matched by routes[{prev}]", matched.text),
                        ));
                    }
                    let mut tail = prev;
                    while let Some(n) = next[tail] {
                        tail = n;
                    }
                    next[tail] = Some(j);
                }
                let route_name = er.config.label();
                let (key, hint) = match r.name {
                    Some(_) => ("name", ""),
                    None => (matched.key(), "; give the route a `name`"),
                };
                if route_name == VHOST_ROUTE {
                    return Err(KeyError::new(
                        key,
                        format!("`{VHOST_ROUTE}` is the label of the vhost's own settings{hint}"),
                    ));
                }
                // The paths of one Ingress share its name on purpose.
                let unique = r.object.is_none();
                if let Some(prev) = names.insert(route_name.to_string(), j).filter(|_| unique) {
                    return Err(KeyError::new(
                        key,
                        format!(
                            "route name `{route_name}` is already used by routes[{prev}]{hint}"
                        ),
                    ));
                }
                let prefix_len =
                    (matched.kind == MatchKind::Prefix).then(|| prefix_key(matched.text).len());
                let rules = r.rules.as_deref();
                let rewrite = match (r.strip_prefix, rules.and_then(|x| x.rewrite_path.as_ref())) {
                    (false, None) => None,
                    (false, Some(p)) => Some(Rewrite::of(p, prefix_len)?),
                    (true, _) => Some(
                        Rewrite::of(&PathRewrite::Prefix(String::new()), prefix_len).map_err(
                            |_| {
                                KeyError::new("strip_prefix", "strip_prefix needs a `prefix` route")
                            },
                        )?,
                    ),
                };
                let keys = TargetKeys {
                    upstreams: &r.upstreams,
                    upstream_tls: r.upstream_tls.as_ref(),
                    respond: r.respond.as_ref(),
                    timeouts: [r.connect_timeout_ms, r.read_timeout_ms, r.write_timeout_ms],
                };
                let route_target = match rules.filter(|x| !x.backends.is_empty()) {
                    Some(x) => split_target(&x.backends, &keys, &vhost_keys, base_dir)?,
                    None => route_target(&keys, &vhost_keys, &target, base_dir)?,
                };
                if rewrite.is_some() && matches!(route_target, super::Target::Respond(_)) {
                    return Err(KeyError::new(
                        "strip_prefix",
                        "strip_prefix changes the path sent upstream; this route answers itself",
                    ));
                }
                let redirect_to = rules
                    .and_then(|x| x.redirect.as_ref())
                    .map(|x| RedirectTo::compile(x, prefix_len).map(Box::new))
                    .transpose()?;
                let route_layer = er.layer.as_ref().map_err(Clone::clone)?;
                collect_paths.push(collect_path(&route_layer.security));
                let parts = RouteParts {
                    labels: RouteLabels {
                        vhost: name,
                        route: route_name,
                    },
                    target: route_target,
                    rewrite,
                    upstream_host: rules.and_then(|x| x.rewrite_host.clone()),
                    when: rules.and_then(Conditions::of),
                    redirect_to,
                    catch_all,
                    access_log: LogPlan::compile(&er.access_log, log_files)?,
                };
                RoutePlan::compile(route_layer, parts, metrics)
            })()
            .map_err(|e| e.under(&er.key))?;
            routes.push(compiled);
        }
        let collecting: Vec<(&str, Option<&str>)> = routes
            .iter()
            .zip(&collect_paths)
            .map(|(r, p)| (r.name.as_str(), *p))
            .collect();
        let reports = Collector::new(name, &collecting, metrics);
        let paths = paths.build().map_err(|(e, last)| {
            // On the last regex route: the one a translation leaves out
            // first (regex routes from the cluster come oldest route first).
            KeyError::new(
                format!("routes[{last}].regex"),
                format!("the route regexes together, with this one: {e}"),
            )
        })?;
        Ok(VhostPlan {
            name: name.to_string(),
            cert: v
                .tls
                .as_ref()
                .map(|t| crate::pem::certified_key(t, base_dir).map_err(|e| e.under("tls")))
                .transpose()?
                .or_else(|| v.certificate.clone()),
            keep_escaped_slashes,
            paths,
            conditional: routes.iter().any(|r| r.when.is_some()),
            fallback: Vec::new(),
            next,
            routes,
            reports,
        })
    }

    /// The index in `routes` of the route for a normalized path: among routes
    /// of one path, the first whose conditions the request meets (without a
    /// request, the first).
    pub fn route_index(&self, path: &str, req: Option<Asked>) -> usize {
        let pick = |head: usize| {
            if !self.conditional {
                return Some(head);
            }
            let mut i = head;
            loop {
                let met = match (&self.routes[i + 1].when, req) {
                    (Some(when), Some(asked)) => when.matches(asked),
                    _ => true,
                };
                if met {
                    return Some(i);
                }
                i = self.next[i]?;
            }
        };
        self.paths.lookup(path, pick).map_or(0, |i| i + 1)
    }

    /// The route for a path as a browser reports it (not yet normalized); `None`
    /// for a path no request could route by.
    pub fn route_of_reported(&self, path: &str) -> Option<usize> {
        let normal = normalize_path(path, self.keep_escaped_slashes).ok()?;
        Some(self.route_index(&normal, None))
    }
}

/// Which of the three match keys a route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
enum MatchKind {
    Prefix,
    Exact,
    Regex,
}

/// A route's one match key, checked.
struct RouteMatch<'a> {
    kind: MatchKind,
    text: &'a str,
    /// `case_insensitive`: ASCII letters match in either case.
    ci: bool,
}

impl<'a> RouteMatch<'a> {
    fn of(r: &'a RouteConfig, keep_escaped_slashes: bool) -> Result<RouteMatch<'a>, KeyError> {
        let given = [
            (MatchKind::Prefix, r.prefix.as_deref()),
            (MatchKind::Exact, r.exact.as_deref()),
            (MatchKind::Regex, r.regex.as_deref()),
        ];
        let mut set = given.into_iter().filter_map(|(kind, text)| {
            text.map(|text| RouteMatch {
                kind,
                text,
                ci: r.case_insensitive,
            })
        });
        let (Some(m), None) = (set.next(), set.next()) else {
            return Err(KeyError::here(
                "a route has exactly one of `prefix`, `exact` or `regex`",
            ));
        };
        if m.kind == MatchKind::Regex {
            regex::RegexBuilder::new(m.text)
                .case_insensitive(m.ci)
                .build()
                .map_err(|e| KeyError::new(m.key(), format!("not a valid regex: {e}")))?;
            return Ok(m);
        }
        if m.text.contains(['?', '#']) {
            return Err(KeyError::new(
                m.key(),
                format!("`{}`: a path, without query or fragment", m.text),
            ));
        }
        match normalize_path(m.text, keep_escaped_slashes) {
            Ok(normal) if normal == m.text => Ok(m),
            Ok(normal) => Err(KeyError::new(
                m.key(),
                format!(
                    "`{}` is not a normalized path and would never match; write `{normal}`",
                    m.text
                ),
            )),
            Err(why) => Err(KeyError::new(
                m.key(),
                format!("`{}` cannot match a request path: {why}", m.text),
            )),
        }
    }

    /// The key's name, for errors.
    fn key(&self) -> &'static str {
        self.kind.into()
    }

    /// Adds the route; returns the route that already has this match.
    fn insert(&self, paths: &mut PathTable, route: usize) -> Result<(), usize> {
        match self.kind {
            MatchKind::Prefix => paths.insert_prefix(self.text, route, self.ci),
            MatchKind::Exact => paths.insert_exact(self.text, route, self.ci),
            MatchKind::Regex if self.ci => paths.push_regex(&format!("(?i:{})", self.text), route),
            MatchKind::Regex => paths.push_regex(self.text, route),
        }
    }
}
