//! The normal-form rules, spelling by spelling.

use super::*;

const KEEP_ALL: PathRules = PathRules {
    merge_slashes: true,
    escaped_slashes: EscapedSlashes::Keep,
    path_parameters: PathParameters::Keep,
};

const STRICT: PathRules = PathRules {
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::Reject,
    path_parameters: PathParameters::Reject,
};

fn normal(path: &[u8], rules: &PathRules) -> Result<(String, String), PathError> {
    normalize_path(path, rules).map(|p| (p.matching.into_owned(), p.forward.into_owned()))
}

/// Spellings under the default rules: the input, then the path matched and forwarded
/// (one path: with parameters refused they are the same), or the refusal.
#[test]
fn spellings_under_the_default_rules() {
    use PathError::*;
    let ok = |p: &'static str| Ok::<&str, PathError>(p);
    let table: &[(&[u8], Result<&str, PathError>)] = &[
        (b"/v1/pets", ok("/v1/pets")),
        (b"/", ok("/")),
        (b"/v1/pets/", ok("/v1/pets/")),
        (b"/v1/%70ets", ok("/v1/pets")),
        (b"/v1/pet%73", ok("/v1/pets")),
        (b"/v1/%50ETS", ok("/v1/PETS")),
        (b"/%76%31/%70%65%74%73", ok("/v1/pets")),
        (b"/v1/pets%7E1", ok("/v1/pets~1")),
        (b"/v1/pets%2d%5f%2E", ok("/v1/pets-_.")),
        (b"/v1//pets", ok("/v1/pets")),
        (b"//v1/pets", ok("/v1/pets")),
        (b"/v1///pets//", ok("/v1/pets/")),
        (b"/v1/pets;x=1", Err(PathParameter)),
        (b"/v1/pets/..;/admin", Err(PathParameter)),
        (b"/v1/pets%2f7", Err(EscapedSlash)),
        (b"/v1/pets%2F7", Err(EscapedSlash)),
        (b"/v1/pets%5c7", Err(EscapedSlash)),
        (b"/v1/pets\\7", Err(Backslash)),
        (b"/v1/pets%00", Err(ControlCharacter)),
        (b"/v1/pets%0a", Err(ControlCharacter)),
        (b"/v1/pets%7f", Err(ControlCharacter)),
        (b"/v1/pets\x01", Err(ControlCharacter)),
        (b"/v1/./pets", Err(DotSegment)),
        (b"/v1/../pets", Err(DotSegment)),
        (b"/v1/%2e%2e/v1/pets", Err(DotSegment)),
        (b"/v1/%2e%2E/v1/pets", Err(DotSegment)),
        (b"/v1/.%2e/pets", Err(DotSegment)),
        (b"/v1/%2e/pets", Err(DotSegment)),
        (b"/v1/pets/..", Err(DotSegment)),
        (b"/v1/..pets/.x", ok("/v1/..pets/.x")),
        (b"/v1/%2570ets", Err(DoubleEncoded)),
        (b"/v1/%252e%252e/pets", Err(DoubleEncoded)),
        (b"/v1/100%25", ok("/v1/100%25")),
        (b"/v1/100%25off", ok("/v1/100%25off")),
        (b"/v1/pets%20", Err(Whitespace)),
        (b"/v1/%20pets", Err(Whitespace)),
        (b"/v1/my%20pets", ok("/v1/my%20pets")),
        (b"/v1/pets%", Err(BadEscape)),
        (b"/v1/pets%7", Err(BadEscape)),
        (b"/v1/pets%zz", Err(BadEscape)),
        (b"/v1/caf%c3%a9", ok("/v1/caf%C3%A9")),
        (b"/v1/caf\xc3\xa9", ok("/v1/caf%C3%A9")),
        (b"/v1/%C0%AF", Err(NotUtf8)),
        (b"/v1/%c0%ae%c0%ae/pets", Err(NotUtf8)),
        (b"/v1/%e0%80%af", Err(NotUtf8)),
        (b"/v1/\xff", Err(NotUtf8)),
        (b"/v1/a\"b<c>{d}", ok("/v1/a%22b%3Cc%3E%7Bd%7D")),
        (b"/v1/a%3bb", Err(PathParameter)),
        (b"/v1/pets%3Bx=1", Err(PathParameter)),
        (b"/v1/a%3Fb", Err(EncodedDelimiter)),
        (b"/v1/pets%3f/x", Err(EncodedDelimiter)),
        (b"/v1/a%23b", Err(EncodedDelimiter)),
        (b"/v1/a#b", Err(EncodedDelimiter)),
        (b"/v1/:id@x!$&'()*+,=", ok("/v1/:id@x!$&'()*+,=")),
        (b"/v1/a%3Ab%40c%2B%21", ok("/v1/a:b@c+!")),
        (b"/v1/%24%26%27%28%29%2A%2C%3D", ok("/v1/$&'()*,=")),
        // Double encodings however spelled: each half of the escape encoded or not.
        (b"/v1/%25%37%30ets", Err(DoubleEncoded)),
        (b"/v1/%257%30ets", Err(DoubleEncoded)),
        (b"/v1/%25%370ets", Err(DoubleEncoded)),
        (b"/v1/%25%32%65%25%32%65/admin", Err(DoubleEncoded)),
        (b"/v1/%25%32%66admin", Err(DoubleEncoded)),
        (b"/v1/100%25%7A", ok("/v1/100%25z")),
        (b"/v1/a%25/b", ok("/v1/a%25/b")),
        (b"v1/pets", Err(NotAPath)),
        (b"*", Err(NotAPath)),
        (b"", Err(NotAPath)),
    ];
    assert!(table.len() >= 40);
    for (input, want) in table {
        let label = String::from_utf8_lossy(input);
        let got = normal(input, &PathRules::default());
        match want {
            Ok(path) => assert_eq!(got, Ok((path.to_string(), path.to_string())), "{label}"),
            Err(e) => assert_eq!(got, Err(*e), "{label}"),
        }
    }
}

#[test]
fn kept_parameters_are_matched_without_them() {
    for (input, matching, forward) in [
        ("/v1/pets;x=1", "/v1/pets", "/v1/pets;x=1"),
        ("/v1/pets;x=1/7", "/v1/pets/7", "/v1/pets;x=1/7"),
        ("/v1;a/pets;b;c", "/v1/pets", "/v1;a/pets;b;c"),
        ("/v1/;x/pets", "/v1/pets", "/v1/;x/pets"),
        ("/v1/%70ets;%70", "/v1/pets", "/v1/pets;p"),
    ] {
        assert_eq!(
            normal(input.as_bytes(), &KEEP_ALL),
            Ok((matching.to_string(), forward.to_string())),
            "{input}"
        );
    }
    // A parameter never hides a dot segment or a trailing space from the check.
    for (input, e) in [
        ("/v1/pets/..;/admin", PathError::DotSegment),
        ("/v1/.;x/pets", PathError::DotSegment),
        ("/v1/pets%20;x", PathError::Whitespace),
        ("/v1/x;%2F..", PathError::DotSegment),
        ("/v1/x%3B%2F../admin", PathError::DotSegment),
    ] {
        assert_eq!(normal(input.as_bytes(), &KEEP_ALL), Err(e), "{input}");
    }
}

#[test]
fn kept_escaped_slashes_stay_opaque_but_never_hide_dots() {
    assert_eq!(
        normal(b"/v1/pets%2f7", &KEEP_ALL),
        Ok(("/v1/pets%2F7".into(), "/v1/pets%2F7".into()))
    );
    assert_eq!(
        normal(b"/v1/a%5Cb", &KEEP_ALL),
        Ok(("/v1/a%5Cb".into(), "/v1/a%5Cb".into()))
    );
    for p in ["/v1/..%2Fadmin", "/v1/x%2F..", "/v1/%2e%2e%5cadmin"] {
        assert_eq!(
            normal(p.as_bytes(), &KEEP_ALL),
            Err(PathError::DotSegment),
            "{p}"
        );
    }
}

#[test]
fn without_merging_repeated_slashes_are_refused() {
    for p in ["/v1//pets", "//v1", "/v1/pets//"] {
        assert_eq!(
            normal(p.as_bytes(), &STRICT),
            Err(PathError::EmptySegment),
            "{p}"
        );
    }
    assert_eq!(
        normal(b"/v1/pets/", &STRICT),
        Ok(("/v1/pets/".into(), "/v1/pets/".into()))
    );
    let keep_params = PathRules {
        path_parameters: PathParameters::Keep,
        ..STRICT
    };
    assert_eq!(
        normal(b"/v1/;x/pets", &keep_params),
        Err(PathError::EmptySegment)
    );
}

#[test]
fn normal_paths_are_borrowed() {
    let p = normalize_path(b"/v1/pets/7", &PathRules::default()).expect("normal");
    assert!(matches!(p.forward, Cow::Borrowed(_)) && matches!(p.matching, Cow::Borrowed(_)));
    // Normal, but not plain enough for the fast path.
    let p = normalize_path(b"/v1/caf%C3%A9", &PathRules::default()).expect("normal");
    assert!(matches!(p.forward, Cow::Borrowed(_)));
    let p = normalize_path(b"/v1/%70ets", &PathRules::default()).expect("normal");
    assert!(matches!(p.forward, Cow::Owned(_)));
}

#[test]
fn standard_methods_have_one_spelling() {
    for m in [
        "GET", "POST", "DELETE", "PATCH", "OPTIONS", "PURGE", "FOO", "post-it",
    ] {
        let method = Method::from_bytes(m.as_bytes()).expect("method");
        assert!(check_method(&method).is_ok(), "{m}");
    }
    for (m, standard) in [
        ("post", "POST"),
        ("Post", "POST"),
        ("delete", "DELETE"),
        ("Delete", "DELETE"),
        ("get", "GET"),
        ("pAtCh", "PATCH"),
    ] {
        let method = Method::from_bytes(m.as_bytes()).expect("method");
        assert_eq!(
            check_method(&method),
            Err(MethodSpelling(m.into(), standard)),
            "{m}"
        );
    }
    assert!(!is_standard_method(
        &Method::from_bytes(b"PURGE").expect("method")
    ));
}

#[test]
fn hosts_compare_without_case_port_or_trailing_dot() {
    for (raw, want) in [
        ("api.example.com", "api.example.com"),
        ("API.Example.COM", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("API.example.com.:8443", "api.example.com"),
        ("api.example.com:80", "api.example.com"),
        ("[::1]:6882", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
    ] {
        assert_eq!(normalize_host(raw), want, "{raw}");
    }
}

/// Decodes every well-formed escape once, as an upstream (or a second proxy) that decodes
/// the path would; anything else is left as it is.
fn decode_once(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match escaped(b.get(i + 1), b.get(i + 2)).filter(|_| b[i] == b'%') {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

const PARAMS_KEPT: PathRules = PathRules {
    merge_slashes: true,
    escaped_slashes: EscapedSlashes::Reject,
    path_parameters: PathParameters::Keep,
};

/// Pieces a path is made of: plain text, every kind of escape (of dots, slashes, `%`,
/// delimiters, controls, hex digits), raw delimiters and non-ASCII bytes.
fn piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::sample::select(vec![
            "a", "P", "7", "e", "F", "-", "~", ".", "..", "/", "//", ";", ";x=1", "%", "%25",
            "%2e", "%2E", "%2f", "%5c", "%3b", "%3f", "%23", "%00", "%20", " ", "%41", "%7a",
            "%32", "%35", "%37", "%30", "%66", "%c3%a9", "\\", "#", ":", "@", "+", "%2B", "%3A",
            "\"", "%22", "%7f", "%ff",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
        any::<u8>().prop_map(|b| format!("%{b:02x}").into_bytes()),
    ]
}

fn arbitrary_path() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    proptest::collection::vec(piece(), 0..14).prop_map(|pieces| {
        let mut path = vec![b'/'];
        for p in pieces {
            path.extend(p);
        }
        path
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

    /// The normal form is a fixed point under every rule set: normalising what the upstream
    /// receives gives it back, matched on the same path.
    #[test]
    fn the_normal_form_is_a_fixed_point(path in arbitrary_path()) {
        for rules in [PathRules::default(), STRICT, PARAMS_KEPT, KEEP_ALL] {
            if let Ok((matching, forward)) = normal(&path, &rules) {
                proptest::prop_assert_eq!(
                    normal(forward.as_bytes(), &rules),
                    Ok((matching.clone(), forward.clone())),
                    "{:?} under {:?}", String::from_utf8_lossy(&path), rules
                );
            }
        }
    }

    /// Decoding the forwarded path once more (a second proxy, a framework) yields no escape,
    /// no dot segment, no slash, backslash, NUL, query or fragment that was not there, and
    /// what it yields is matched on the same path: the route an upstream that decodes twice
    /// acts on is the one Tollgate matched.
    #[test]
    fn decoding_the_normal_form_once_more_changes_no_route(path in arbitrary_path()) {
        for rules in [PathRules::default(), STRICT, PARAMS_KEPT] {
            let Ok((matching, forward)) = normal(&path, &rules) else { continue };
            let decoded = decode_once(&forward);
            let label = format!("{:?} -> {forward:?} under {rules:?}", String::from_utf8_lossy(&path));
            let slashes = |b: &[u8]| b.iter().filter(|&&c| c == b'/').count();
            proptest::prop_assert_eq!(slashes(&decoded), slashes(forward.as_bytes()), "{}", label);
            for bad in [b'\\', 0, b'?', b'#'] {
                proptest::prop_assert!(!decoded.contains(&bad), "{}", label);
            }
            proptest::prop_assert!(
                !decoded.split(|&b| b == b'/').any(is_dot_segment),
                "{}", label
            );
            proptest::prop_assert!(
                !decoded.windows(3).any(|w| w[0] == b'%' && escaped(w.get(1), w.get(2)).is_some()),
                "another escape after decoding: {}", label
            );
            if let Ok((again, _)) = normal(&decoded, &rules) {
                proptest::prop_assert_eq!(again, matching, "{}", label);
            }
        }
    }

    /// With escaped slashes kept (the operator's choice), a decoding upstream may see other
    /// segments, but never a dot segment.
    #[test]
    fn kept_escaped_slashes_never_decode_to_a_dot_segment(path in arbitrary_path()) {
        if let Ok((_, forward)) = normal(&path, &KEEP_ALL) {
            let decoded = decode_once(&forward);
            proptest::prop_assert!(
                !decoded.split(|&b| b == b'/' || b == b'\\').any(|s| {
                    is_dot_segment(s.split(|&b| b == b';').next().unwrap_or(s))
                }),
                "{:?} -> {:?}", String::from_utf8_lossy(&path), forward
            );
        }
    }
}
