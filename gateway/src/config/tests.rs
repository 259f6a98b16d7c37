//! The configuration, in-process: `validate` key by key (a valid base, one mutation per row,
//! the key and the words expected), `build` on files in a temporary directory, the state a
//! rebuild carries over, and the reload report's comparison.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::diff::diff;
use super::{
    parse, validate, AdminToken, ConfigError, GatewayConfig, Previous, UpstreamAddress,
    ValidConfig, STORE_URL_ENV,
};
use crate::access_log::Destination;
use crate::routes::Route;

/// Where the validation tests' file lives: nowhere. `validate` never looks.
const NOWHERE: &str = "/nonexistent/tollgate/gateway.yaml";

/// A valid configuration in which every section is present, so one edit reaches any key. It
/// names files that exist only in [`Fixture`]'s directory (`ca.pem`, `key.pem`).
fn base() -> Value {
    json!({
        "server": {"threads": 2, "log_level": "info"},
        "listeners": [{"address": "127.0.0.1:6882"}],
        "admin": {"address": "127.0.0.1:9090"},
        "store": {"url": "memory://", "timeout_ms": 1000},
        "routes": [
            {"name": "open", "path_prefix": "/a", "upstreams": ["127.0.0.1:1"]},
            {
                "name": "pets",
                "path_prefix": "/v1/pets",
                "host": "API.example.com",
                "upstreams": [{"address": "127.0.0.1:2", "weight": 2}],
                "tls": {"sni": "pets.internal", "ca": "ca.pem"},
                "health_check": {"http_path": "/healthz"},
                "auth": {
                    "scopes": ["pets.r"],
                    "method_scopes": {"POST": ["pets.w"]},
                    "audience": "https://pets.example"
                },
                "rate_limit": {"requests": 10},
                "cors": {"allowed_origins": ["https://app.example"]},
                "keep_headers": ["x-http-method-override"]
            }
        ],
        "oauth": {
            "keys": [{"kid": "a", "private_key": "key.pem", "active": true}],
            "clients": [{
                "client_id": "c",
                "public": true,
                "grants": ["authorization_code"],
                "redirect_uris": ["https://c.example/cb"],
                "scopes": ["pets.r"]
            }]
        },
        "bearer": {"identity_headers": {"user_id": "X-User-Id"}},
        "oauth_rate_limit": {"requests": 100}
    })
}

/// One step of a path into a document: `routes[1].auth` is `routes`, 1, `auth`.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let name_end = part.find('[').unwrap_or(part.len());
        if name_end > 0 {
            steps.push(Step::Key(&part[..name_end]));
        }
        let mut rest = &part[name_end..];
        while let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').expect("a closing bracket");
            steps.push(Step::Index(inner[..end].parse().expect("an index")));
            rest = &inner[end + 1..];
        }
    }
    steps
}

/// Sets `path` in `doc` to `value`, making the objects on the way; an index one past an
/// array's end appends.
fn set(doc: &mut Value, path: &str, value: Value) {
    let steps = steps(path);
    let (last, on_the_way) = steps.split_last().expect("a path");
    let mut node = doc;
    for step in on_the_way {
        node = match step {
            Step::Key(k) => node
                .as_object_mut()
                .expect("an object")
                .entry(*k)
                .or_insert_with(|| json!({})),
            Step::Index(i) => &mut node[*i],
        };
    }
    match last {
        Step::Key(k) => {
            node.as_object_mut()
                .expect("an object")
                .insert(k.to_string(), value);
        }
        Step::Index(i) => {
            let array = node.as_array_mut().expect("an array");
            if *i == array.len() {
                array.push(value);
            } else {
                array[*i] = value;
            }
        }
    }
}

/// An edit of the base: the path of a key (`routes[1].tls.ca`) and its new value.
type Edit = (&'static str, Value);

type Edits<'a> = &'a [Edit];

/// The base with `edits`, as the YAML text of a file (JSON is YAML).
fn text(edits: Edits<'_>) -> String {
    let mut doc = base();
    for (path, value) in edits {
        set(&mut doc, path, value.clone());
    }
    serde_json::to_string_pretty(&doc).expect("JSON")
}

/// Parses and validates the base with `edits` as the file `source`.
fn validated(source: &Path, edits: Edits<'_>) -> Result<ValidConfig, ConfigError> {
    validate(parse::parse_file(&text(edits), source)?, source, None)
}

/// Asserts that `result` failed at `key` with words `fragment`, naming `file`.
fn assert_refused<T>(
    what: &str,
    result: Result<T, ConfigError>,
    file: &Path,
    key: &str,
    fragment: &str,
) {
    let Err(e) = result else {
        panic!("{what}: accepted; expected `{key}`: {fragment}");
    };
    assert_eq!(e.file, file, "{what}: {e}");
    assert_eq!(e.key, key, "{what}: {e}");
    assert!(e.message.contains(fragment), "{what}: `{fragment}` in: {e}");
}

/// A row of a refusal table: the base with `edits` is refused at `key`, with words
/// `fragment` in the message.
struct Refusal {
    edits: Vec<Edit>,
    key: &'static str,
    fragment: &'static str,
}

/// One edit, refused at the key it edits.
fn at(path: &'static str, value: Value, fragment: &'static str) -> Refusal {
    under(path, value, path, fragment)
}

/// One edit, refused at `key`.
fn under(path: &'static str, value: Value, key: &'static str, fragment: &'static str) -> Refusal {
    all(vec![(path, value)], key, fragment)
}

/// Several edits, refused at `key`.
fn all(edits: Vec<Edit>, key: &'static str, fragment: &'static str) -> Refusal {
    Refusal {
        edits,
        key,
        fragment,
    }
}

mod build;
mod carry_over;
mod reload_diff;
mod validation;
