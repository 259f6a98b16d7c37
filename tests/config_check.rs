//! `tollgate --check` as a user runs it: every shipped config passes with exit code 0, and a
//! mistake (a file that cannot be read, broken YAML, a key validation refuses, a file the
//! configuration names that build cannot find) exits 1 with the file and the key. Each key's
//! checks are unit tests of `validate` and `build` (`gateway/src/config/tests/`).

mod common;

use common::{check_config, repo_root};

#[test]
fn every_shipped_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("conf")).expect("conf/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let (code, out) = check_config(&path);
            assert_eq!(code, 0, "{}: {out}", path.display());
            assert!(
                out.contains(&format!("tollgate: {} is valid (", path.display())),
                "{out}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 1, "conf/ holds at least the demo config");
}

/// Writes `yaml` to a temp file and checks it: the exit code, the output and the file's path.
fn check_yaml(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, yaml).expect("write");
    let (code, out) = check_config(&path);
    (code, out, path.display().to_string())
}

#[test]
fn mistakes_name_the_file_and_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("not YAML", "routes: [\n", ": "),
        (
            "an unknown key",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n    timeout: 3\n",
            ": routes[0].timeout: unknown field `timeout`",
        ),
        (
            "a value validation refuses",
            "routes:\n  - path_prefix: /a\n    upstreams: []\n",
            ": routes[0].upstreams: at least one upstream is required",
        ),
        (
            "a certificate that build cannot find",
            "listeners:\n  - address: 127.0.0.1:1\n    tls: {cert: nowhere.pem, key: nowhere.key}\n",
            ": listeners[0].tls.cert: file `",
        ),
    ];
    for (what, yaml, expected) in cases {
        let (code, out, path) = check_yaml(yaml);
        assert_eq!(code, 1, "{what}: exit code; output: {out}");
        assert!(
            out.starts_with(&format!("tollgate: {path}{expected}")),
            "{what}: expected `tollgate: {path}{expected}…` in: {out}"
        );
        assert!(!out.contains("is valid"), "{what}: {out}");
    }
}

#[test]
fn a_missing_file_is_reported() {
    let (code, out) = check_config(std::path::Path::new("/nonexistent/tollgate.yaml"));
    assert_eq!(code, 1);
    assert!(
        out.starts_with("tollgate: /nonexistent/tollgate.yaml: cannot read"),
        "{out}"
    );
}
