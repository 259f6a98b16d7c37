//! [`GatewayConfig::build`]: a [`ValidConfig`] made ready to serve. This is where the
//! configuration's I/O happens: files it names are found and read (certificates, the admin
//! secret, CA bundles, the OAuth signing keys), upstream names are resolved, and balancers
//! and rate limiters are built, or carried over from the configuration in force. Errors name
//! the file and the key, as validation's do.

use std::path::Path;
use std::sync::Arc;

use token_module::OAuthConfig;

use super::{AdminToken, ConfigError, GatewayConfig, OAuthSection, RateLimitSettings, ValidConfig};
use crate::access_log::Destination;
use crate::balancer::Resolver;
use crate::rate_limit::RateLimit;
use crate::routes::RouteTable;

/// What the configuration in force hands on to one built from a reloaded file: its routes
/// (whose balancers hold upstream health, ejections and the addresses last resolved, and
/// whose rate limits hold counts) and the OAuth endpoints' rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    pub routes: &'a RouteTable,
    pub oauth_rate_limit: Option<&'a Arc<RateLimit>>,
}

impl GatewayConfig {
    /// Builds `valid`: checks the files it names and reads those needed now, resolves
    /// upstream names (with the system resolver; a name that does not resolve is an error),
    /// builds balancers and rate limiters, and loads the OAuth section.
    ///
    /// With `previous`, state is carried over, exactly where it still applies: a route of the
    /// same name keeps its balancer when its upstreams are found and judged the same way
    /// (same names, weights, SNI, TLS with the same CA certificates, health check, ejection,
    /// DNS refresh and DNS server), and its rate limit (with its counts) when the limit is
    /// the same; so does the OAuth endpoints' rate limit.
    pub fn build(valid: &ValidConfig, previous: Option<Previous<'_>>) -> Result<Self, ConfigError> {
        let b = Builder { valid };
        b.server()?;
        for (i, listener) in valid.listeners.iter().enumerate() {
            if let Some(tls) = &listener.tls {
                b.existing_file(&format!("listeners[{i}].tls.cert"), &tls.cert)?;
                b.existing_file(&format!("listeners[{i}].tls.key"), &tls.key)?;
            }
        }
        let admin_token = b.admin_token()?;
        let resolver = match valid.server.dns_resolver {
            None => Resolver::System,
            Some(server) => {
                Resolver::nameserver(server).map_err(|e| b.err("server.dns_resolver", e))?
            }
        };
        let routes = valid
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let kept = previous.and_then(|p| p.routes.iter().find(|o| o.name == r.name));
                b.route(&format!("routes[{i}]"), r, &resolver, kept.map(|k| &**k))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let oauth = b.oauth()?;
        let oauth_rate_limit = valid
            .oauth_rate_limit
            .as_ref()
            .map(|l| rate_limit(l, previous.and_then(|p| p.oauth_rate_limit)));
        Ok(GatewayConfig {
            valid: valid.clone(),
            admin_token,
            routes: RouteTable::new(routes, valid.server.path_case),
            oauth,
            oauth_rate_limit,
        })
    }
}

/// The rate limit `settings` describe: `kept` (and its counts) when it is that same limit,
/// else a new one.
pub(super) fn rate_limit(
    settings: &RateLimitSettings,
    kept: Option<&Arc<RateLimit>>,
) -> Arc<RateLimit> {
    match kept {
        Some(kept)
            if kept.policy == settings.policy
                && kept.quota == settings.requests
                && kept.window == settings.window
                && kept.key == settings.key
                && kept.shared == settings.shared =>
        {
            Arc::clone(kept)
        }
        _ => Arc::new(RateLimit::new(
            settings.policy.clone(),
            settings.requests,
            settings.window,
            settings.key,
            settings.shared,
        )),
    }
}

/// Builds one [`ValidConfig`]; every error names its file and the key.
pub(super) struct Builder<'a> {
    pub(super) valid: &'a ValidConfig,
}

impl Builder<'_> {
    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.valid.source.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(super) fn existing_file(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        if path.is_file() {
            Ok(())
        } else {
            Err(self.err(key, format!("file `{}` not found", path.display())))
        }
    }

    /// The directories of the server's own files.
    fn server(&self) -> Result<(), ConfigError> {
        let server = &self.valid.server;
        if let Destination::File(path) = &server.access_log {
            if !path.parent().is_some_and(Path::is_dir) {
                return Err(self.err(
                    "server.access_log",
                    format!("the directory of `{}` does not exist", path.display()),
                ));
            }
        }
        self.private_path("server.upgrade_sock", &server.upgrade_sock)?;
        self.private_path("server.pid_file", &server.pid_file)
    }

    /// A file only this process's user may create: its directory must not be writable by
    /// everyone, or another local user could put their own socket or pid file there first
    /// (and receive the listening sockets of the next upgrade). A directory that does not
    /// exist yet is created private (0700) at start.
    fn private_path(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match std::fs::metadata(parent) {
            Ok(meta) if meta.permissions().mode() & 0o002 != 0 => Err(self.err(
                key,
                format!(
                    "`{}` is world-writable: put the file in a directory only the gateway's user can write (default /run/tollgate/)",
                    parent.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The secret of `admin.token_file`, at least 16 characters.
    fn admin_token(&self) -> Result<Option<AdminToken>, ConfigError> {
        let Some(path) = &self.valid.admin.token_file else {
            return Ok(None);
        };
        const KEY: &str = "admin.token_file";
        self.existing_file(KEY, path)?;
        let token = std::fs::read_to_string(path)
            .map_err(|e| self.err(KEY, format!("cannot read {}: {e}", path.display())))?;
        let token = token.trim().to_string();
        if token.len() < 16 {
            return Err(self.err(KEY, "the secret must be at least 16 characters"));
        }
        Ok(Some(AdminToken(token)))
    }

    /// The OAuth section, validated and loaded by token_module, and what it learns from the
    /// route table: the routes' audiences (accepted as `resource`) and scopes (discovery).
    fn oauth(&self) -> Result<Option<OAuthConfig>, ConfigError> {
        let Some(OAuthSection(section)) = &self.valid.oauth else {
            return Ok(None);
        };
        // `issuer` is always set: validation put the default there.
        let default_issuer = section.issuer.clone().unwrap_or_default();
        let mut oauth = OAuthConfig::from_file(section.clone(), self.valid.base(), &default_issuer)
            .map_err(|e| self.err(format!("oauth.{}", e.key), e.message))?;
        for (i, route) in self.valid.routes.iter().enumerate() {
            let Some(auth) = &route.auth else { continue };
            if let Some(audience) = &auth.audience {
                // A token of that client would then pass as one bound to this route.
                if let Some(client) = oauth.clients.values().find(|c| c.audience == *audience) {
                    return Err(self.err(
                        format!("routes[{i}].auth.audience"),
                        format!(
                            "`{audience}` is the audience of client `{}`'s tokens; a route audience must be its own",
                            client.client_id
                        ),
                    ));
                }
                if !oauth.resources.contains(audience) {
                    oauth.resources.push(audience.clone());
                }
            }
            let scopes = auth
                .scopes
                .iter()
                .chain(auth.method_scopes.iter().flat_map(|(_, s)| s))
                .chain(auth.other_methods_scopes.iter().flatten());
            for scope in scopes {
                if !oauth.route_scopes.contains(scope) {
                    oauth.route_scopes.push(scope.clone());
                }
            }
        }
        Ok(Some(oauth))
    }
}
