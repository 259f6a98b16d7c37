//! YAML text into the file structs, with the key at fault on failure; and the admin
//! listener's address read on its own (for `tollgate reload`).

use std::net::SocketAddr;
use std::path::Path;

use super::{file, AdminToken, ConfigError};

/// Parses YAML into `T`. On failure: the dotted path of the key at fault (`routes[0].tls`,
/// empty when the document itself is broken) and the parser's message with its line and
/// column.
pub(super) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, String)> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| {
        // `.` is what serde_path_to_error prints for the document root.
        let path = if path == "." { String::new() } else { path };
        let e = e.without_snippet();
        let message = match (e, e.location()) {
            // "invalid u64" says less than serde's usual wording; keep that.
            (serde_saphyr::Error::InvalidScalar { ty, .. }, Some(at)) => format!(
                "invalid type: expected {ty} at line {}, column {}",
                at.line(),
                at.column()
            ),
            _ => e.to_string(),
        };
        (path, message)
    })
}

/// Parses the text of the file `source` (named in the error).
pub(super) fn parse_file(text: &str, source: &Path) -> Result<file::File, ConfigError> {
    parse_yaml(text).map_err(|(key, message)| ConfigError {
        file: source.to_path_buf(),
        key,
        message,
    })
}

/// The admin listener's address and reload secret as `path` sets them, read without
/// validating the rest (what `tollgate reload` needs to reach the running gateway; the
/// gateway validates the file).
pub fn admin_address(path: &Path) -> Result<Option<(SocketAddr, Option<AdminToken>)>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Partial {
        #[serde(default)]
        admin: file::Admin,
    }
    let err = |key: &str, message: String| ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read: {e}")))?;
    let partial = parse_yaml::<Partial>(&text).map_err(|(key, m)| err(&key, m))?;
    let Some(address) = partial.admin.address else {
        return Ok(None);
    };
    let address = address.parse().map_err(|_| {
        err(
            "admin.address",
            format!("`{address}` is not an ip:port address"),
        )
    })?;
    let token = match partial.admin.token_file {
        Some(file) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            let token = std::fs::read_to_string(&file).map_err(|e| {
                err(
                    "admin.token_file",
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            Some(AdminToken(token.trim().to_string()))
        }
        None => None,
    };
    Ok(Some((address, token)))
}
