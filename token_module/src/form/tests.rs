//! Form parameters and Basic credentials: the spellings, then properties over generated
//! input (round trips through a correct encoder, the rules on repeated and empty parameters,
//! no panic on any input).

use std::collections::HashMap;

// The RFC 7617 alphabet named here, not taken from the parser.
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;

use super::*;

#[test]
fn repeated_parameters_are_errors_and_empty_ones_absent() {
    assert!(Params::parse(b"a=1&a=2").is_err());
    let p = Params::parse(b"a=1&b=&c=x%20y+z").expect("parse");
    assert_eq!(p.get("a"), Some("1"));
    assert_eq!(p.get("b"), None);
    assert_eq!(p.get("c"), Some("x y z"));
    assert!(!format!("{p:?}").contains('1'), "Debug shows no values");
}

#[test]
fn basic_credentials_in_both_forms() {
    let raw =
        basic_credentials("Basic f7d42348-c647-4efb-a52d-4c5787421e72:f6h1FTI8Q3-7UScPZDzfXA")
            .expect("basic")
            .expect("valid");
    assert_eq!(raw.id, "f7d42348-c647-4efb-a52d-4c5787421e72");
    assert_eq!(raw.secret, "f6h1FTI8Q3-7UScPZDzfXA");
    // RFC 6749 2.3.1: the id and secret are form-urlencoded before base64.
    let encoded = B64.encode("my%3Aclient:p%40ss+word");
    let rfc = basic_credentials(&format!("basic {encoded}"))
        .expect("basic")
        .expect("valid");
    assert_eq!(
        (rfc.id.as_str(), rfc.secret.as_str()),
        ("my:client", "p@ss word")
    );
    let plus = basic_credentials(&format!("Basic {}", B64.encode("client:pass+word")))
        .expect("basic")
        .expect("valid");
    assert_eq!(plus.secret, "pass word");
    assert!(basic_credentials("Bearer abc").is_none());
    assert!(basic_credentials("Basic !!!").expect("basic").is_err());
    assert!(
        basic_credentials(&format!("Basic {}", B64.encode("nocolon")))
            .expect("basic")
            .is_err()
    );
}

/// Characters forms and credentials trip on, with any other character now and then.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::sample::select(vec![
            'a', 'Z', '0', '9', '-', '.', '_', '~', '*', '&', '=', '+', '%', ' ', ':', ';', '#',
            '/', '?', '"', '\\', '\t', '\n', '\0', 'é', '€', '😀', '\u{feff}', '\u{fffd}',
        ]),
        1 => any::<char>(),
    ];
    proptest::collection::vec(c, 0..12).prop_map(String::from_iter)
}

/// Text an encoder leaves mostly as it is: letters, digits, `-._*` and spaces.
fn plain() -> impl Strategy<Value = String> {
    let c = proptest::sample::select(vec!['a', 'Z', '0', '-', '.', '_', '*', ' ']);
    proptest::collection::vec(c, 0..10).prop_map(String::from_iter)
}

/// `s` form-urlencoded (WHATWG URL 5.2) in one of its valid spellings: every byte
/// percent-encoded in either case or, where `raw` says so and the byte means nothing to the
/// form, written as it is (a space as `+`).
fn spell(s: &str, raw: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let raw = raw.get(i % raw.len().max(1)).copied().unwrap_or(false);
        let lower = i % 3 == 0;
        match b {
            b' ' if raw => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' if raw => {
                out.push(char::from(b))
            }
            _ if lower => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One form-urlencoded value decoded as WHATWG URL 5.1 says, written apart from the
/// parser: `+` is a space, `%XX` the byte, anything else itself (a `%` without two hex
/// digits too), the bytes read as UTF-8 with a bad sequence as U+FFFD.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(h)) => {
                let digits = std::str::from_utf8(h).expect("hex digits");
                out.push(u8::from_str_radix(digits, 16).expect("hex"));
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a client may put in Basic credentials, encoded or not: escapes good and bad, the
/// characters form-decoding changes or could take for separators, other characters.
fn credential_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(vec![
            "a", "Z", ":", "&", "=", "+", "%", "%2", "%41", "%3A", "%3a", "%26", "%2B", "%25",
            "%ff", "%C3%A9", " ", "\t", "é", "#", ";",
        ])
        .prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// `Basic` in any case.
fn basic_scheme() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), 5).prop_map(|upper| {
        "basic"
            .chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn credentials(header: &str) -> Option<Result<(String, String), String>> {
    basic_credentials(header).map(|r| r.map(|c| (c.id, c.secret)).map_err(|e| e.to_string()))
}

/// The inputs the properties found wrong, kept as rows.
#[test]
fn credentials_found_by_the_properties() {
    // A raw `&` cut the value short: `a&b` was read as `a`, `&` as an empty secret.
    for (header, want) in [
        ("basic a:&", ("a", "&")),
        ("Basic client:pass&word", ("client", "pass&word")),
        ("Basic cli&ent:secret", ("cli&ent", "secret")),
        ("Basic a&b%20c:x&y+z", ("a&b c", "x&y z")),
    ] {
        let want = (want.0.to_string(), want.1.to_string());
        assert_eq!(credentials(header), Some(Ok(want.clone())), "{header}");
        let (_, raw) = header.split_once(' ').expect("a scheme");
        let encoded = format!("Basic {}", B64.encode(raw));
        assert_eq!(credentials(&encoded), Some(Ok(want)), "{encoded}");
    }
}

proptest! {
    /// Any bytes, any content type, any `Authorization`: an answer, never a panic.
    #[test]
    fn no_input_makes_the_parsers_panic(
        body in proptest::collection::vec(any::<u8>(), 0..64),
        form_ish in text(),
        content_type in proptest::option::of(text()),
        authorization in proptest::option::of(text()),
    ) {
        let _ = Params::parse(&body);
        let _ = Params::parse(form_ish.as_bytes());
        let _ = Params::from_form_body(content_type.as_deref(), &body);
        let _ = is_form(content_type.as_deref());
        let _ = authorization.as_deref().map(basic_credentials);
        let _ = named_client(authorization.as_deref(), content_type.as_deref(), &body);
        let _ = basic_credentials(&format!("Basic {form_ish}"));
    }

    /// Pairs with distinct names, encoded by a correct encoder, parse back to the same
    /// pairs, less those with an empty value (RFC 6749 3.2: those count as absent).
    #[test]
    fn encoded_pairs_parse_back(pairs in proptest::collection::hash_map(text(), text(), 0..8)) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let content_type = Some("Application/X-WWW-Form-Urlencoded ; charset=UTF-8");
        let params = Params::from_form_body(content_type, body.as_bytes());
        let params = params.map_err(|e| TestCaseError::fail(format!("{body:?}: {e}")))?;
        let mut want = pairs.clone();
        want.retain(|_, v| !v.is_empty());
        prop_assert_eq!(&params.0, &want, "{:?}", body);
        for (name, value) in &pairs {
            let want = (!value.is_empty()).then_some(value.as_str());
            prop_assert_eq!(params.get(name), want);
            prop_assert_eq!(params.contains(name), !value.is_empty());
            prop_assert_eq!(params.require(name).ok(), want);
        }
    }

    /// A parameter that comes twice is refused, however each is spelled (`a`, `%61`) and
    /// whether or not either value is empty; a form without one parses to its non-empty
    /// pairs. Empty sequences between `&` are nothing.
    #[test]
    fn a_repeated_parameter_is_refused_however_spelled(
        pairs in proptest::collection::vec(
            (
                proptest::sample::select(vec!["a", "A", "client_id", "x y", "é", "&", "=", "+", "%", ""]),
                text(),
                proptest::collection::vec(any::<bool>(), 1..4),
                proptest::sample::select(vec!["&", "&", "&&", "&&&"]),
            ),
            0..6,
        )
    ) {
        let mut body = String::new();
        for (name, value, raw, separator) in &pairs {
            body.push_str(&format!("{}={}{separator}", spell(name, raw), spell(value, raw)));
        }
        let mut want = HashMap::new();
        let mut repeated = false;
        for (name, value, _, _) in &pairs {
            repeated |= want.insert(name.to_string(), value.clone()).is_some();
        }
        want.retain(|_, v: &mut String| !v.is_empty());
        match Params::parse(body.as_bytes()) {
            Ok(params) => {
                prop_assert!(!repeated, "{:?} was taken", body);
                prop_assert_eq!(params.0, want, "{:?}", body);
            }
            Err(e) => prop_assert!(repeated, "{:?} was refused: {}", body, e),
        }
    }

    /// `application/x-www-form-urlencoded` in any case, with parameters and spaces, is a
    /// form; the type with any character left out is not, and its body is refused.
    #[test]
    fn only_the_form_type_is_a_form(
        upper in proptest::collection::vec(any::<bool>(), 33),
        space in proptest::sample::select(vec!["", " ", "\t", "  "]),
        parameters in proptest::sample::select(vec!["", ";charset=UTF-8", "; charset=utf-8;x=y"]),
        cut in 0usize..33,
    ) {
        let mime: String = "application/x-www-form-urlencoded"
            .chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect();
        let content_type = format!("{space}{mime}{space}{parameters}");
        prop_assert!(is_form(Some(&content_type)), "{:?}", content_type);
        let mut cut_short = mime.clone();
        cut_short.remove(cut);
        let content_type = format!("{space}{cut_short}{space}{parameters}");
        prop_assert!(!is_form(Some(&content_type)), "{:?}", content_type);
        prop_assert!(Params::from_form_body(Some(&content_type), b"a=1").is_err());
    }

    /// RFC 6749 2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))` gives back the id
    /// and secret, whatever they hold and however correctly encoded; the named client is
    /// that id.
    #[test]
    fn rfc_6749_basic_credentials_round_trip(
        scheme in basic_scheme(),
        id in prop_oneof![text(), plain()].prop_filter("an id", |id| !id.is_empty()),
        secret in prop_oneof![text(), plain()],
        raw in proptest::collection::vec(any::<bool>(), 1..4),
    ) {
        let encoded = B64.encode(format!("{}:{}", spell(&id, &raw), spell(&secret, &raw)));
        let header = format!("{scheme} {encoded}");
        prop_assert_eq!(credentials(&header), Some(Ok((id.clone(), secret))), "{:?}", header);
        prop_assert_eq!(named_client(Some(&header), None, b""), Some(id));
    }


    /// What is not base64 and holds no `:` is an error.
    #[test]
    fn a_value_that_is_not_base64_is_an_error(
        scheme in basic_scheme(),
        value in text().prop_filter("not base64", |v| {
            !v.contains(':') && !v.trim().is_empty() && B64.decode(v.trim()).is_err()
        }),
    ) {
        let header = format!("{scheme} {value}");
        prop_assert!(matches!(basic_credentials(&header), Some(Err(_))), "{:?}", header);
    }
}

proptest! {
    // Most generated values hold no `:` or escape worth testing: more cases.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the client put before base64 (encoded or not, valid UTF-8 or not), and
    /// whatever it sent raw (`Basic id:secret`): the id is what comes before the first `:`,
    /// the secret what follows, each form-decoded as a whole; an empty id, no `:`, bytes
    /// that are not UTF-8 or a value that is not base64 are errors. A `Basic` header is
    /// never taken for no credentials.
    #[test]
    fn basic_credentials_are_the_decoded_halves_or_an_error(
        scheme in basic_scheme(),
        bytes in prop_oneof![
            credential_text().prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..24),
        ],
        as_base64 in any::<bool>(),
    ) {
        let text = String::from_utf8(bytes.clone()).ok();
        let value = match (&text, as_base64) {
            (Some(text), false) if text.contains(':') => text.clone(),
            _ => B64.encode(&bytes),
        };
        prop_assume!(value.trim() == value && !value.is_empty());
        let header = format!("{scheme} {value}");
        let want = text
            .as_deref()
            .and_then(|t| t.split_once(':'))
            .map(|(id, secret)| (decode(id), decode(secret)))
            .filter(|(id, _)| !id.is_empty())
            .ok_or(());
        let got = credentials(&header).map(|r| r.map_err(|_| ()));
        prop_assert_eq!(got, Some(want), "{:?}", header);
    }
}
