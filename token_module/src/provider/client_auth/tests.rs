use super::*;

#[test]
fn who_passes_without_a_secret() {
    let confidential = Client::for_tests("c");
    let public = Client {
        public: true,
        ..Client::for_tests("p")
    };
    let password_only = Client {
        password_grant_without_secret: true,
        ..Client::for_tests("w")
    };
    let purposes = [
        AuthPurpose::Grant(Grant::AuthorizationCode),
        AuthPurpose::Grant(Grant::RefreshToken),
        AuthPurpose::Grant(Grant::Password),
        AuthPurpose::Grant(Grant::ClientCredentials),
        AuthPurpose::Grant(Grant::ClientAuthenticatedUser),
        AuthPurpose::Revocation,
        AuthPurpose::Introspection,
    ];
    let table: [(&Client, [bool; 7]); 3] = [
        (&confidential, [false; 7]),
        (&public, [true, true, false, false, false, true, false]),
        (
            &password_only,
            [false, false, true, false, false, false, false],
        ),
    ];
    for (client, row) in table {
        for (purpose, want) in purposes.iter().zip(row) {
            assert_eq!(
                passes_without_secret(client, *purpose),
                want,
                "{} for {purpose:?}",
                client.client_id
            );
        }
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    Params::parse(ser.finish().as_bytes()).expect("form")
}

#[test]
fn credentials_come_from_basic_or_the_body_never_both() {
    use base64::Engine;
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let long = "x".repeat(MAX_IDENTIFIER_BYTES + 1);
    let header = basic("app", "s");
    let long_header = basic(&long, "s");
    type Row<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let rows: [Row; 8] = [
        (Some(&header), vec![], "basic app s"),
        (Some(&header), vec![("client_id", "app")], "basic app s"),
        (
            Some(&header),
            vec![("client_id", "other")],
            "invalid_request",
        ),
        (
            Some(&header),
            vec![("client_secret", "s")],
            "invalid_request",
        ),
        (
            None,
            vec![("client_id", "app"), ("client_secret", "s")],
            "body app s",
        ),
        (None, vec![("client_id", "app")], "body app -"),
        (None, vec![("client_secret", "s")], "invalid_client"),
        (Some(&long_header), vec![], "invalid_request"),
    ];
    for (i, (authorization, pairs, want)) in rows.into_iter().enumerate() {
        let got = match presented_client(authorization, &params(&pairs)) {
            Ok(p) => format!(
                "{} {} {}",
                if p.basic { "basic" } else { "body" },
                p.id,
                p.secret.as_deref().unwrap_or("-")
            ),
            Err(e) => e.code().to_string(),
        };
        assert_eq!(got, want, "row {i}");
    }
}
