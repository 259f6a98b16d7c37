use super::*;
use crate::balancer::{BalancerSettings, Resolver};

fn route(prefix: &str, host: Option<&str>, methods: &[Method]) -> Route {
    Route {
        name: prefix.to_string(),
        path_prefix: prefix.to_string(),
        host: host.map(str::to_string),
        methods: methods.to_vec(),
        balancer: Arc::new(Balancer::new(
            Vec::new(),
            Vec::new(),
            (Resolver::System, None),
            BalancerSettings {
                health_check: None,
                eject_after_failures: 0,
                ejection: Duration::ZERO,
                dns_refresh: Duration::from_secs(1),
                tls: None,
            },
        )),
        tls: None,
        retry_idempotent: true,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
        auth: None,
        rate_limit: None,
        cors: None,
        keep_headers: Vec::new(),
        metrics: Default::default(),
    }
}

fn pick<'a>(t: &'a RouteTable, host: Option<&str>, m: Method, path: &str) -> Option<&'a str> {
    t.select(|| host, &m, path)
        .expect("not refused")
        .map(|r| r.name.as_str())
}

#[test]
fn longest_prefix_wins_segment_wise() {
    let t = RouteTable::new(
        vec![route("/", None, &[]), route("/v1/pets", None, &[])],
        PathCase::Guarded,
    );
    assert_eq!(pick(&t, None, Method::GET, "/v1/pets"), Some("/v1/pets"));
    assert_eq!(pick(&t, None, Method::GET, "/v1/pets/7"), Some("/v1/pets"));
    assert_eq!(pick(&t, None, Method::GET, "/v1/petshop"), Some("/"));
    let t = RouteTable::new(vec![route("/api", None, &[])], PathCase::Guarded);
    assert_eq!(pick(&t, None, Method::GET, "/apix"), None);
}

#[test]
fn host_and_method_narrow_a_route() {
    let t = RouteTable::new(
        vec![
            route("/a", None, &[]),
            route("/a", Some("api.example.com"), &[]),
            route("/a", None, &[Method::POST]),
        ],
        PathCase::Guarded,
    );
    assert_eq!(
        t.select(|| Some("API.example.com"), &Method::GET, "/a")
            .expect("not refused")
            .map(|r| r.host.is_some()),
        Some(true)
    );
    let post = t
        .select(|| None, &Method::POST, "/a")
        .expect("not refused")
        .expect("route");
    assert_eq!(post.methods, vec![Method::POST]);
    let get = t
        .select(|| Some("other"), &Method::GET, "/a")
        .expect("not refused")
        .expect("route");
    assert!(get.host.is_none() && get.methods.is_empty());
}

fn protected(prefix: &str) -> Route {
    Route {
        auth: Some(auth(&[], None)),
        ..route(prefix, None, &[])
    }
}

fn demo_table(case: PathCase) -> RouteTable {
    RouteTable::new(
        vec![
            route("/v1", None, &[]),
            protected("/v1/pets"),
            route("/v1/pets/public", None, &[]),
        ],
        case,
    )
}

fn outcome(t: &RouteTable, path: &str) -> Result<Option<String>, LooseSpelling> {
    t.select(|| None, &Method::GET, path)
        .map(|r| r.map(|r| r.path_prefix.clone()))
}

/// A path that frameworks matching without case, without trailing dots or with format
/// suffixes would take for the protected route is refused, unless it exactly matches a
/// route itself; public spellings pass.
#[test]
fn loose_spellings_of_a_protected_route_are_refused() {
    let t = demo_table(PathCase::Guarded);
    let refused = Err(LooseSpelling("/v1/pets".into()));
    for path in [
        "/v1/PETS",
        "/v1/Pets/7",
        "/V1/pets",
        "/v1/pets.",
        "/v1/pets../7",
        "/v1/pets.json",
        "/v1/PETS.JSON",
    ] {
        assert_eq!(outcome(&t, path), refused, "{path}");
    }
    for (path, route) in [
        ("/v1/pets", "/v1/pets"),
        ("/v1/pets/7.json", "/v1/pets"),
        ("/v1/pets/public", "/v1/pets/public"),
        ("/v1/pets/PUBLIC", "/v1/pets"),
        ("/v1/petshop.json", "/v1"),
        ("/v1/pets.json/7", "/v1"),
        ("/v1/Other", "/v1"),
        ("/v1/.well", "/v1"),
    ] {
        assert_eq!(outcome(&t, path), Ok(Some(route.into())), "{path}");
    }
    // Case-sensitive upstreams everywhere: exact matching, nothing refused.
    let t = demo_table(PathCase::Sensitive);
    assert_eq!(outcome(&t, "/v1/PETS"), Ok(Some("/v1".into())));
    assert_eq!(outcome(&t, "/v1/pets.json"), Ok(Some("/v1".into())));
    // Case-insensitive upstreams everywhere: case ignored in matching, dots guarded.
    let t = demo_table(PathCase::Insensitive);
    assert_eq!(outcome(&t, "/v1/PETS"), Ok(Some("/v1/pets".into())));
    assert_eq!(
        outcome(&t, "/V1/Pets/Public"),
        Ok(Some("/v1/pets/public".into()))
    );
    assert_eq!(outcome(&t, "/v1/Pets.json"), refused);
}

fn auth(method_scopes: &[(&str, &str)], other: Option<&str>) -> RouteAuth {
    RouteAuth {
        required: true,
        scopes: vec!["read".into()],
        method_scopes: method_scopes
            .iter()
            .map(|(m, s)| {
                (
                    Method::from_bytes(m.as_bytes()).expect("method"),
                    vec![s.to_string()],
                )
            })
            .collect(),
        other_methods_scopes: other.map(|s| vec![s.to_string()]),
        forward_authorization: true,
        audience: None,
        upstream_jwt_ttl: None,
    }
}

#[test]
fn scopes_by_method() {
    let m = |s: &str| Method::from_bytes(s.as_bytes()).expect("method");
    let scopes = |a: &RouteAuth, s: &str| a.scopes_for(&m(s)).map(|v| v.join(" "));
    let plain = auth(&[], None);
    assert_eq!(scopes(&plain, "PURGE").as_deref(), Some("read"));
    let listed = auth(&[("POST", "write"), ("PURGE", "admin")], None);
    assert_eq!(scopes(&listed, "GET").as_deref(), Some("read"));
    assert_eq!(scopes(&listed, "POST").as_deref(), Some("write"));
    assert_eq!(scopes(&listed, "PURGE").as_deref(), Some("admin"));
    assert_eq!(scopes(&listed, "PROPFIND"), None);
    assert!(listed.allowed_methods().ends_with("PATCH, PURGE"));
    let star = auth(&[("GET", "read"), ("POST", "write")], Some("write"));
    assert_eq!(scopes(&star, "GET").as_deref(), Some("read"));
    assert_eq!(scopes(&star, "OPTIONS").as_deref(), Some("write"));
    assert_eq!(scopes(&star, "PURGE").as_deref(), Some("write"));
}
