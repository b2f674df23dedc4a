//! TLS termination: SNI certificates, HTTP/2, protocol versions, HTTPS semantics
//! (HSTS, the redirect chain) and TLS to the upstream.

mod common;

use std::process::Command;

use common::tls::{client_config, handshake, https_client, server_config, Leaf, TestPki};
use common::*;

struct Setup {
    pki: TestPki,
    default: Leaf,
    a: Leaf,
    b: Leaf,
    upstream: Upstream,
    gw: Gateway,
}

fn setup() -> Setup {
    let pki = TestPki::new();
    let default = pki.leaf(&["default.test"]);
    let a = pki.leaf(&["a.test"]);
    let b = pki.leaf(&["b.test", "*.b.test"]);
    let upstream = Upstream::start("plain");
    let yaml = format!(
        r#"
listeners:
  - address: "{{listen}}"
  - address: "{{tls}}"
    tls: {{cert: certs/default.pem, key: certs/default.key}}
vhosts:
  - name: a
    hosts: [a.test]
    upstreams: ["{up}"]
    tls: {{cert: certs/a.pem, key: certs/a.key}}
    security: {{ssl_redirect: true, ssl_port: {{tls_port}}, hsts_preload: true}}
  - name: b
    hosts: [b.test, "*.b.test"]
    upstreams: ["{up}"]
    tls: {{cert: certs/b.pem, key: certs/b.key}}
  - name: c
    hosts: [c.test]
    upstreams: ["{up}"]
"#,
        up = upstream.addr
    );
    let ca = pki.ca_pem();
    let files = [
        ("certs/ca.pem", ca.as_str()),
        ("certs/default.pem", default.cert_pem.as_str()),
        ("certs/default.key", default.key_pem.as_str()),
        ("certs/a.pem", a.cert_pem.as_str()),
        ("certs/a.key", a.key_pem.as_str()),
        ("certs/b.pem", b.cert_pem.as_str()),
        ("certs/b.key", b.key_pem.as_str()),
    ];
    let mut gw = Gateway::launch(&yaml, &files, free_port());
    gw.wait_for(gw.tls_addr);
    gw.wait_for(gw.addr);
    Setup {
        pki,
        default,
        a,
        b,
        upstream,
        gw,
    }
}

fn https_url(s: &Setup, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", s.gw.tls_addr.port())
}

#[test]
fn sni_chooses_the_vhost_certificate_and_falls_back_to_the_listener_default() {
    let s = setup();
    let ca = s.pki.ca_pem();
    let cfg = || client_config(&ca, &[b"http/1.1"]);
    assert_eq!(handshake(s.gw.tls_addr, "a.test", cfg()).leaf, s.a.der);
    assert_eq!(handshake(s.gw.tls_addr, "b.test", cfg()).leaf, s.b.der);
    assert_eq!(handshake(s.gw.tls_addr, "x.b.test", cfg()).leaf, s.b.der);
    // Routing matches wildcards at any depth; the certificate is chosen the same way
    // (a *.b.test certificate itself only covers one label, so pin it here).
    let shown = handshake(s.gw.tls_addr, "deep.x.b.test", cfg_accepting(&s.b));
    assert_eq!(shown.leaf, s.b.der);
    // c.test has no certificate of its own; unknown.test matches no vhost.
    // (The client then rejects the default certificate's name; the server's choice
    // is what is checked here, so these use a verifier-free read of the chain.)
    for name in ["c.test", "unknown.test"] {
        let err = std::panic::catch_unwind(|| handshake(s.gw.tls_addr, name, cfg()));
        assert!(
            err.is_err(),
            "{name}: the default certificate does not name it"
        );
    }
    // No SNI at all (an IP address as the server name sends none): the default,
    // which this client is told to expect by name.
    let shown = handshake(s.gw.tls_addr, "127.0.0.1", cfg_accepting(&s.default));
    assert_eq!(shown.leaf, s.default.der);
    let shown = handshake(s.gw.tls_addr, "unknown.test", cfg_accepting(&s.default));
    assert_eq!(shown.leaf, s.default.der);
}

/// A client that accepts exactly this certificate, whatever name it is asked for.
fn cfg_accepting(leaf: &Leaf) -> rustls::ClientConfig {
    #[derive(Debug)]
    struct Pinned(Vec<u8>);
    impl rustls::client::danger::ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_slice() {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("unexpected certificate".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let mut config = client_config("", &[b"http/1.1"]);
    config
        .dangerous()
        .set_certificate_verifier(std::sync::Arc::new(Pinned(leaf.der.clone())));
    config
}

#[test]
fn alpn_offers_h2_and_both_protocols_carry_identical_security_headers() {
    let s = setup();
    let ca = s.pki.ca_pem();
    let shown = handshake(
        s.gw.tls_addr,
        "b.test",
        client_config(&ca, &[b"h2", b"http/1.1"]),
    );
    assert_eq!(shown.alpn.as_deref(), Some(&b"h2"[..]));
    let shown = handshake(s.gw.tls_addr, "b.test", client_config(&ca, &[b"http/1.1"]));
    assert_eq!(shown.alpn.as_deref(), Some(&b"http/1.1"[..]));

    let url = https_url(&s, "b.test", "/conflict");
    let h2 = https_client(&ca, true, &[("b.test", s.gw.tls_addr)])
        .get(&url)
        .send()
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h2 = reply(h2);
    let h1 = https_client(&ca, false, &[("b.test", s.gw.tls_addr)])
        .get(&url)
        .send()
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    let h1 = reply(h1);
    for r in [&h1, &h2] {
        assert_eq!(r.status, 200);
        assert_default_headers(r, true);
    }
    let security = |r: &Reply| -> Vec<(String, Vec<String>)> {
        let mut v: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| {
                // The request id is new on every request; each has its one.
                ![
                    "date",
                    "content-length",
                    "connection",
                    "transfer-encoding",
                    "x-request-id",
                ]
                .contains(&n.as_str())
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(security(&h1), security(&h2));
    assert_ne!(h1.one("x-request-id"), h2.one("x-request-id"));
}

#[test]
fn tls_1_1_is_refused_and_1_2_and_1_3_are_offered() {
    let s = setup();
    let ca = s.pki.ca_pem();
    assert_eq!(
        handshake(s.gw.tls_addr, "b.test", client_config(&ca, &[])).version,
        rustls::ProtocolVersion::TLSv1_3
    );
    let s_client = |version: &str| -> String {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &s.gw.tls_addr.to_string(),
                "-servername",
                "b.test",
            ])
            .args([version, "-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is needed: run scripts/deps.sh test");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // rustls answers a TLS 1.1 ClientHello with a handshake_failure alert: no
    // certificate, no cipher.
    let old = s_client("-tls1_1");
    assert!(old.contains("New, (NONE), Cipher is (NONE)"), "{old}");
    assert!(old.contains("no peer certificate available"), "{old}");
    assert!(old.contains("SSL alert number 40"), "{old}");
    let tls12 = s_client("-tls1_2");
    assert!(tls12.contains("New, TLSv1.2, Cipher is ECDHE-"), "{tls12}");
}

#[test]
fn hsts_is_sent_over_tls_and_never_over_plain_http() {
    let s = setup();
    let ca = s.pki.ca_pem();
    let r = reply(
        https_client(&ca, true, &[("b.test", s.gw.tls_addr)])
            .get(https_url(&s, "b.test", "/"))
            .send()
            .unwrap(),
    );
    assert_eq!(r.all("strict-transport-security"), [DEFAULT_HSTS]);
    let r = get(&s.gw, "b.test", "/", &[]);
    assert_eq!(r.status, 200);
    assert!(!r.has("strict-transport-security"));
    // The upstream learns the scheme from the gateway.
    reply(
        https_client(&ca, false, &[("b.test", s.gw.tls_addr)])
            .get(https_url(&s, "b.test", "/"))
            .send()
            .unwrap(),
    );
    assert_eq!(
        s.upstream.last_request().header("x-forwarded-proto"),
        ["https"]
    );
}

#[test]
fn the_redirect_chain_ends_on_https_with_hsts() {
    let s = setup();
    let first = get(&s.gw, "a.test", "/x?y=1", &[]);
    assert_eq!(first.status, 301);
    let location = first.one("location").to_string();
    assert_eq!(location, https_url(&s, "a.test", "/x?y=1"));
    assert!(!first.has("strict-transport-security"));

    let r = reply(
        https_client(&s.pki.ca_pem(), true, &[("a.test", s.gw.tls_addr)])
            .get(&location)
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.one("strict-transport-security"),
        "max-age=31536000; includeSubDomains; preload"
    );
    assert_eq!(s.upstream.last_request().path, "/x");
}

/// The seed's "Verification & Diagnostic Workflows" recipes, run with real curl.
#[test]
fn the_seed_curl_recipes_pass_over_https() {
    let s = setup();
    let ca = s.gw.dir.path().join("certs/ca.pem");
    let url = https_url(&s, "a.test", "/");
    let resolve = format!("a.test:{}:127.0.0.1", s.gw.tls_addr.port());
    let curl = format!("curl -sI --cacert {} --resolve {resolve}", ca.display());
    let run = |pipeline: &str| -> String {
        let out = Command::new("bash")
            .args(["-c", &pipeline.replace("CURL", &curl).replace("URL", &url)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let baseline = run(
        "CURL URL | grep -iE '(strict-transport|x-content-type|x-frame|referrer-policy|content-security-policy|permissions-policy)'",
    );
    assert_eq!(baseline.lines().count(), 6, "{baseline}");
    assert_eq!(
        run(
            r#"CURL URL | grep -i "strict-transport-security" | grep -q "preload" && echo "PRELOAD READY" || echo "PRELOAD MISSING""#
        ),
        "PRELOAD READY"
    );
    assert_eq!(
        run(
            r#"CURL URL | awk '/^[Ss]trict-Transport-Security/ {count++} END {if(count>1) print "FAIL: Duplicate HSTS"; else print "PASS: Unique HSTS"}'"#
        ),
        "PASS: Unique HSTS"
    );
    // `grep -c` is case-sensitive: over HTTP/2 header names are lower case, so the
    // seed's count is taken over HTTP/1.1, where the gateway writes canonical case.
    assert_eq!(
        run(r#"CURL --http1.1 URL | grep -c "Strict-Transport-Security""#),
        "1"
    );
    assert_eq!(
        run(r#"CURL URL | grep -ci "strict-transport-security""#),
        "1"
    );
}

#[test]
fn tls_upstreams_are_verified_with_sni_and_the_configured_ca() {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["upstream.test"]);
    let up = Upstream::start_tls("secure", server_config(&leaf));
    let ca = pki.ca_pem();
    let yaml = format!(
        r#"
listeners: [{{address: "{{listen}}"}}]
vhosts:
  - name: trusted
    hosts: [trusted.test]
    upstreams: ["tls://{up}"]
    upstream_tls: {{sni: upstream.test, ca_file: ca.pem}}
  - name: system-roots
    hosts: [roots.test]
    upstreams: ["tls://{up}"]
    upstream_tls: {{sni: upstream.test}}
  - name: wrong-name
    hosts: [wrong.test]
    upstreams: ["tls://{up}"]
    upstream_tls: {{sni: other.test, ca_file: ca.pem}}
"#,
        up = up.addr
    );
    let gw = Gateway::start_with_files(&yaml, &[("ca.pem", ca.as_str())]);
    let r = get(&gw, "trusted.test", "/", &[]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "hello from upstream secure\n")
    );
    assert_default_headers(&r, false);
    assert_eq!(up.hits(), 1);
    for host in ["roots.test", "wrong.test"] {
        let r = get(&gw, host, "/", &[]);
        assert_eq!(r.status, 502, "{host}: an unverified upstream is not used");
        assert_default_headers(&r, false);
    }
    assert_eq!(up.hits(), 1);
}

#[test]
fn bad_certificates_are_refused_at_load_naming_the_vhost_and_file() {
    let pki = TestPki::new();
    let a = pki.leaf(&["a.test"]);
    let b = pki.leaf(&["b.test"]);
    let files = [
        ("a.pem", a.cert_pem.as_str()),
        ("a.key", a.key_pem.as_str()),
        ("b.key", b.key_pem.as_str()),
        ("junk.pem", "not a certificate\n"),
    ];
    let vhost = |tls: &str| {
        format!("listeners: [{{address: \"{{listen}}\"}}]\nvhosts:\n  - name: a\n    hosts: [a.test]\n    respond: {{}}\n    tls: {tls}\n")
    };
    for (tls, key, reason) in [
        (
            "{cert: a.pem, key: b.key}",
            "vhosts[0].tls.key",
            "b.key: this private key does not match the certificate in",
        ),
        (
            "{cert: missing.pem, key: a.key}",
            "vhosts[0].tls.cert",
            "missing.pem: cannot read",
        ),
        (
            "{cert: junk.pem, key: a.key}",
            "vhosts[0].tls.cert",
            "junk.pem: no PEM certificate found",
        ),
        (
            "{cert: a.pem, key: a.pem}",
            "vhosts[0].tls.key",
            "a.pem: no PEM private key found",
        ),
    ] {
        let (code, out, dir) = check_config(&vhost(tls), &files);
        assert_eq!(code, 1, "{out}");
        let expected = format!(
            "{}: {key}: {}",
            dir.path().join("gw.yaml").display(),
            dir.path().display()
        );
        assert!(out.contains(&expected), "expected {expected}\n got {out}");
        assert!(out.contains(reason), "expected {reason}\n got {out}");
    }
    let listener =
        "listeners: [{address: \"{listen}\", tls: {cert: a.pem, key: b.key}}]\nvhosts: []\n";
    let (code, out, _dir) = check_config(listener, &files);
    assert_eq!(code, 1);
    assert!(out.contains(": listeners[0].tls.key: "), "{out}");

    let ip_upstream = "listeners: [{address: \"{listen}\"}]\nvhosts:\n  - {name: u, hosts: [u.test], upstreams: [\"tls://127.0.0.1:9\"]}\n";
    let (code, out, _dir) = check_config(ip_upstream, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("vhosts[0].upstream_tls.sni: upstream 127.0.0.1 is an IP address"),
        "{out}"
    );
}
