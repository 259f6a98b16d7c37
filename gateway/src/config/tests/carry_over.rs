//! What a configuration built with `previous` takes over from it: a route's balancer (its
//! upstream health, ejections and addresses) exactly when its upstreams are found and judged
//! the same way, a rate limit (its counts) exactly when it is the same limit.

use serde_json::{json, Value};

use super::build::Fixture;
use super::*;

fn route<'a>(config: &'a GatewayConfig, name: &str) -> &'a Arc<Route> {
    config
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("route {name}"))
}

/// Whether the second configuration's `name` route holds the first one's balancer and rate
/// limit.
fn kept(first: &GatewayConfig, second: &GatewayConfig, name: &str) -> (bool, bool) {
    let (before, after) = (route(first, "pets"), route(second, name));
    let limit = match (&before.rate_limit, &after.rate_limit) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    (Arc::ptr_eq(&before.balancer, &after.balancer), limit)
}

#[test]
fn a_route_keeps_what_did_not_change() {
    let fixture = Fixture::new();
    let first = fixture.build(&[], None).expect("built");
    // (what, edits, balancer kept, rate limit kept)
    let rows: Vec<(&str, Vec<Edit>, bool, bool)> = vec![
        ("nothing changed", vec![], true, true),
        (
            "a timeout",
            vec![("routes[1].read_timeout_ms", json!(5))],
            true,
            true,
        ),
        (
            "the scopes",
            vec![("routes[1].auth.scopes", json!(["other"]))],
            true,
            true,
        ),
        (
            "the methods",
            vec![("routes[1].methods", json!(["GET"]))],
            true,
            true,
        ),
        (
            "the prefix",
            vec![("routes[1].path_prefix", json!("/v2/pets"))],
            true,
            true,
        ),
        (
            "CORS",
            vec![("routes[1].cors.max_age_seconds", json!(5))],
            true,
            true,
        ),
        (
            "another route",
            vec![("routes[0].upstreams", json!(["127.0.0.1:9"]))],
            true,
            true,
        ),
        (
            "a weight",
            vec![("routes[1].upstreams[0].weight", json!(3))],
            false,
            true,
        ),
        (
            "an upstream",
            vec![("routes[1].upstreams", json!(["127.0.0.1:3"]))],
            false,
            true,
        ),
        (
            "one more upstream",
            vec![("routes[1].upstreams[1]", json!("127.0.0.1:3"))],
            false,
            true,
        ),
        (
            "the health check",
            vec![("routes[1].health_check.interval_ms", json!(6000))],
            false,
            true,
        ),
        (
            "no health check",
            vec![("routes[1].health_check", Value::Null)],
            false,
            true,
        ),
        (
            "the ejection threshold",
            vec![("routes[1].eject_after_failures", json!(5))],
            false,
            true,
        ),
        (
            "the ejection time",
            vec![("routes[1].ejection_ms", json!(5))],
            false,
            true,
        ),
        (
            "the DNS refresh",
            vec![("routes[1].dns_refresh_ms", json!(1000))],
            false,
            true,
        ),
        (
            "the SNI",
            vec![("routes[1].tls.sni", json!("other.internal"))],
            false,
            true,
        ),
        (
            "verification",
            vec![("routes[1].tls.verify", json!(false))],
            false,
            true,
        ),
        (
            "the system's CAs",
            vec![("routes[1].tls.ca", Value::Null)],
            false,
            true,
        ),
        (
            "plain HTTP",
            vec![("routes[1].tls", Value::Null)],
            false,
            true,
        ),
        (
            "the DNS server",
            vec![("server.dns_resolver", json!("127.0.0.1:53"))],
            false,
            true,
        ),
        (
            "the quota",
            vec![("routes[1].rate_limit.requests", json!(11))],
            true,
            false,
        ),
        (
            "the window",
            vec![("routes[1].rate_limit.window_seconds", json!(2))],
            true,
            false,
        ),
        (
            "the key",
            vec![("routes[1].rate_limit.key", json!("client"))],
            true,
            false,
        ),
        (
            "sharing",
            vec![("routes[1].rate_limit.shared", json!(true))],
            true,
            false,
        ),
        (
            "no limit",
            vec![("routes[1].rate_limit", Value::Null)],
            true,
            false,
        ),
    ];
    for (what, edits, balancer, limit) in rows {
        let second = fixture.build(&edits, Some(&first)).expect("built");
        assert_eq!(kept(&first, &second, "pets"), (balancer, limit), "{what}");
    }
}

/// Routes are matched by name, wherever they stand in the file.
#[test]
fn a_route_is_known_by_its_name() {
    let fixture = Fixture::new();
    let first = fixture.build(&[], None).expect("built");
    let renamed = fixture
        .build(&[("routes[1].name", json!("cats"))], Some(&first))
        .expect("built");
    assert_eq!(kept(&first, &renamed, "cats"), (false, false));
    let mut moved = base()["routes"].clone();
    moved.as_array_mut().expect("routes").reverse();
    let moved = fixture
        .build(&[("routes", moved)], Some(&first))
        .expect("built");
    assert_eq!(kept(&first, &moved, "pets"), (true, true));
    let fresh = fixture.build(&[], None).expect("built");
    assert_eq!(kept(&first, &fresh, "pets"), (false, false), "no previous");
}

/// The CA bundle counts by its certificates: the same path with other certificates is a new
/// balancer (its health checks trust the new ones).
#[test]
fn a_rewritten_ca_bundle_is_not_kept() {
    let fixture = Fixture::new();
    let first = fixture.build(&[], None).expect("built");
    let same = fixture.build(&[], Some(&first)).expect("built");
    assert_eq!(kept(&first, &same, "pets"), (true, true));
    std::fs::copy(fixture.path("cert.pem"), fixture.path("ca.pem")).expect("rewrite");
    let rewritten = fixture.build(&[], Some(&first)).expect("built");
    assert_eq!(kept(&first, &rewritten, "pets"), (false, true));
}

#[test]
fn the_oauth_rate_limit_is_kept_while_the_same() {
    let fixture = Fixture::new();
    let first = fixture.build(&[], None).expect("built");
    let limit = |c: &GatewayConfig| Arc::clone(c.oauth_rate_limit.as_ref().expect("limit"));
    let same = fixture.build(&[], Some(&first)).expect("built");
    assert!(Arc::ptr_eq(&limit(&first), &limit(&same)));
    let other = fixture
        .build(&[("oauth_rate_limit.requests", json!(5))], Some(&first))
        .expect("built");
    assert!(!Arc::ptr_eq(&limit(&first), &limit(&other)));
    assert_eq!(limit(&other).quota, 5);
}
