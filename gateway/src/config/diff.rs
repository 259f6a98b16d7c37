//! What a reload changed: the configuration in force and the new one, both as
//! [`ValidConfig`], compared with `PartialEq`, entry by entry and setting by setting.
//!
//! What a file names is compared by its name: a CA bundle, a certificate or a signing key
//! rewritten in place at the same path is applied by the reload (build reads it again) but
//! is not listed as a change.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use token_module::config::file::{self, OAuth};

use super::{OAuthSection, RouteSettings, ValidConfig};

/// The entries of one named section that changed.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// How two configurations differ.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Named entries added, removed or changed: `routes` (by name), `clients` (by
    /// client_id), `users` (by username), `keys` (by kid); only sections with a change.
    pub changed: BTreeMap<&'static str, Changes>,
    /// Other settings that changed, which a reload applies (`bearer`, `oauth`,
    /// `server.log_level`…), in name order.
    pub settings: Vec<&'static str>,
    /// Settings that changed but only a new process takes (`listeners`, `store`…), in
    /// name order.
    pub needs_upgrade: Vec<&'static str>,
}

/// What changed from `old` to `new`.
pub fn diff(old: &ValidConfig, new: &ValidConfig) -> ConfigDiff {
    let mut changed = BTreeMap::new();
    for (section, changes) in [
        ("routes", named(&routes(old), &routes(new))),
        ("clients", named(&clients(old), &clients(new))),
        ("users", named(&users(old), &users(new))),
        ("keys", named(&keys(old), &keys(new))),
    ] {
        if !changes.is_empty() {
            changed.insert(section, changes);
        }
    }
    let (o, n) = (&old.server, &new.server);
    let settings = [
        ("bearer", old.bearer != new.bearer),
        ("oauth", oauth_settings(old) != oauth_settings(new)),
        (
            "oauth_rate_limit",
            old.oauth_rate_limit != new.oauth_rate_limit,
        ),
        ("server.access_log", o.access_log != n.access_log),
        (
            "server.connection_timeouts",
            o.connection_timeouts != n.connection_timeouts,
        ),
        ("server.dns_resolver", o.dns_resolver != n.dns_resolver),
        ("server.log_level", o.log_level != n.log_level),
        ("server.path_case", o.path_case != n.path_case),
        ("server.path_rules", o.path_rules != n.path_rules),
        (
            "server.request_limits",
            o.request_limits != n.request_limits,
        ),
        (
            "server.trusted_proxies",
            o.trusted_proxies != n.trusted_proxies,
        ),
        (
            "server.upstream_forwarded_header",
            o.upstream_forwarded != n.upstream_forwarded,
        ),
    ];
    let needs_upgrade = [
        ("admin.address", old.admin.address != new.admin.address),
        (
            "admin.token_file",
            old.admin.token_file != new.admin.token_file,
        ),
        ("listeners", old.listeners != new.listeners),
        ("server.error_log", o.error_log != n.error_log),
        (
            "server.grace_period_seconds",
            o.grace_period != n.grace_period,
        ),
        (
            "server.graceful_shutdown_timeout_seconds",
            o.graceful_shutdown_timeout != n.graceful_shutdown_timeout,
        ),
        ("server.log_format", o.log_json != n.log_json),
        ("server.pid_file", o.pid_file != n.pid_file),
        ("server.threads", o.threads != n.threads),
        ("server.upgrade_sock", o.upgrade_sock != n.upgrade_sock),
        ("store", old.store != new.store),
    ];
    ConfigDiff {
        changed,
        settings: differing(&settings),
        needs_upgrade: differing(&needs_upgrade),
    }
}

fn routes(c: &ValidConfig) -> BTreeMap<String, &RouteSettings> {
    c.routes.iter().map(|r| (r.name.clone(), r)).collect()
}

fn clients(c: &ValidConfig) -> BTreeMap<String, &file::Client> {
    let clients = c.oauth.iter().flat_map(|o| &o.0.clients);
    clients.map(|c| (c.client_id.clone(), c)).collect()
}

fn users(c: &ValidConfig) -> BTreeMap<String, &file::User> {
    let users = c.oauth.iter().flat_map(|o| &o.0.users);
    users.map(|u| (u.username.clone(), u)).collect()
}

fn keys(c: &ValidConfig) -> BTreeMap<String, &file::Key> {
    let keys = c.oauth.iter().flat_map(|o| &o.0.keys);
    keys.map(|k| (k.kid.clone(), k)).collect()
}

/// The names whose values differ, in name order.
fn differing(settings: &[(&'static str, bool)]) -> Vec<&'static str> {
    let names: BTreeSet<_> = settings
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect();
    names.into_iter().collect()
}

/// The entries of `new` that `old` lacks, those it alone has, and those that differ.
fn named<T: PartialEq>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Changes {
    let mut changes = Changes::default();
    for (name, entry) in new {
        match old.get(name) {
            None => changes.added.push(name.clone()),
            Some(before) if before != entry => changes.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .cloned()
        .collect();
    changes
}

/// The `oauth` section without its named entries (keys, clients, users: compared one by
/// one).
fn oauth_settings(config: &ValidConfig) -> Option<OAuth> {
    config.oauth.clone().map(|OAuthSection(mut oauth)| {
        oauth.keys.clear();
        oauth.clients.clear();
        oauth.users.clear();
        oauth
    })
}
