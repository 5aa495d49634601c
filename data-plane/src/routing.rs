//! The immutable routing table: everything the request path reads, prebuilt from one snapshot so
//! that a request does lookups and copies of shared bytes, nothing more (RELIABILITY P7: a table
//! is either fully built or not used at all). Built whole from a snapshot, or from the table
//! before it and a [`Delta`]: then only the touched accounts and subjects are rebuilt, and the
//! new table shares every other account's routes and every other caller with the old one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use metrics_exporter_prometheus::PrometheusRecorder;
use shared::api_key::KeyDigest;
use shared::base_url::{self, BaseUrl};
use shared::crypto::{self, Field, Keyring, open_header_auth, open_headers};
use shared::model::HeaderAuth;
use shared::snapshot::{
    AccountSnapshot, Delta, IntegrationSnapshot, KeySnapshot, Snapshot, SubjectSnapshot,
};
use uuid::Uuid;

use crate::request_metrics::RouteMetrics;
use crate::upstream::{Clients, ProfileClients};

/// The maps every request looks up: foldhash rather than std's SipHash. Their keys come from the
/// configuration, never from callers, so there is no flooding to resist, and each request
/// hashes its account, endpoint, key digest and subject.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// One config version's worth of routes and keys.
#[derive(PartialEq)]
pub struct RoutingTable {
    /// The config version this table was built from; -1 before the first load.
    pub version: i64,
    /// By account name. Each account's routes are shared with the tables before and after it
    /// that did not touch that account, so an update copies one pointer per account.
    accounts: FastMap<Arc<str>, Arc<AccountRoutes>>,
    keys: FastMap<KeyDigest, Arc<Caller>>,
}

/// One provider account's routes, by endpoint name.
#[derive(PartialEq)]
struct AccountRoutes {
    id: Uuid,
    routes: FastMap<Box<str>, Arc<Route>>,
}

/// The subject behind an API key, with what access checks need.
#[derive(Debug, PartialEq)]
pub struct Caller {
    pub key_id: Uuid,
    pub subject_id: Uuid,
    pub subject: Arc<str>,
    pub is_admin: bool,
    pub teams: Box<[Uuid]>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// Everything needed to forward to one integration.
#[derive(Debug)]
pub struct Route {
    pub account: Arc<str>,
    pub endpoint: Arc<str>,
    pub account_id: Uuid,
    pub integration_id: Uuid,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Empty or `/`-led, no trailing slash.
    pub base_path: Box<str>,
    /// Custom headers, then header auth, merged by SPEC §2 precedence; each *replaces* any caller
    /// header of the same name. Header auth values are marked sensitive.
    pub inject: Box<[(HeaderName, HeaderValue)]>,
    /// Subjects allowed to call: the authorized subjects, or the collaborators when that list
    /// is empty (SPEC "Who may call").
    allowed: FastSet<Uuid>,
    pub clients: ProfileClients,
    /// The base URL's host is an IP literal in a denied range (RELIABILITY S7).
    pub denied: bool,
    /// Request bodies above this many bytes get 413 (RELIABILITY S11).
    pub body_limit: Option<u64>,
    /// Registered on the route's first request ([`Route::metrics`]): building a table of 100k
    /// routes registers nothing, and only routes in use export series.
    metrics: OnceLock<RouteMetrics>,
}

/// Two routes are equal when they forward the same way, whatever their metric handles. Every
/// field is named, so that a new one cannot be left out of the comparison unnoticed.
impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        let Route {
            account,
            endpoint,
            account_id,
            integration_id,
            scheme,
            authority,
            base_path,
            inject,
            allowed,
            clients,
            denied,
            body_limit,
            metrics: _,
        } = self;
        let sensitive = |headers: &[(HeaderName, HeaderValue)]| {
            headers
                .iter()
                .map(|(_, v)| v.is_sensitive())
                .collect::<Vec<_>>()
        };
        *account == other.account
            && *endpoint == other.endpoint
            && *account_id == other.account_id
            && *integration_id == other.integration_id
            && *scheme == other.scheme
            && *authority == other.authority
            && *base_path == other.base_path
            && *inject == other.inject
            && sensitive(inject) == sensitive(&other.inject)
            && *allowed == other.allowed
            && *clients == other.clients
            && *denied == other.denied
            && *body_limit == other.body_limit
    }
}

impl Route {
    /// SPEC "Who may call": admins; else the caller or one of its teams is allowed.
    pub fn may_call(&self, caller: &Caller) -> bool {
        caller.is_admin
            || self.allowed.contains(&caller.subject_id)
            || caller.teams.iter().any(|t| self.allowed.contains(t))
    }

    /// This route's figures, registered with `recorder` on first use. Registering an existing
    /// series again returns its handle, so a route rebuilt by a config change keeps counting.
    pub fn metrics(&self, recorder: &PrometheusRecorder) -> &RouteMetrics {
        self.metrics
            .get_or_init(|| RouteMetrics::register(recorder, &self.account, &self.endpoint))
    }
}

/// Why a snapshot could not become a table.
#[derive(Debug, thiserror::Error)]
#[error("integration {account}/{endpoint}: {reason}")]
pub struct BuildError {
    account: String,
    endpoint: String,
    reason: String,
}

impl RoutingTable {
    /// The placeholder before the first load: no routes, version -1.
    pub fn unloaded() -> RoutingTable {
        RoutingTable {
            version: -1,
            accounts: FastMap::default(),
            keys: FastMap::default(),
        }
    }

    /// Builds a whole table or fails; `clients` supplies one client per TLS profile.
    /// Sealed header auth values are opened with `keyring`; one that does not open (wrong key,
    /// or a ciphertext moved from another row) fails the whole build.
    pub fn build(
        snapshot: &Snapshot,
        keyring: &Keyring,
        clients: &mut Clients,
    ) -> Result<RoutingTable, BuildError> {
        let accounts = Builder { keyring, clients }
            .accounts(&snapshot.accounts, &snapshot.integrations)?
            .collect();
        clients.retain_used(
            &snapshot
                .integrations
                .iter()
                .map(|i| i.tls.clone())
                .collect::<Vec<_>>(),
        );
        Ok(RoutingTable {
            version: snapshot.version,
            accounts,
            keys: callers(&snapshot.subjects, &snapshot.keys).collect(),
        })
    }

    /// This table with `delta` applied, built the same way as [`RoutingTable::build`] for what
    /// the delta touched and sharing everything else; fails as `build` does. The delta must
    /// start from this table's version. Clients of TLS profiles no longer used are kept until
    /// the next full build.
    pub fn updated(
        &self,
        delta: &Delta,
        keyring: &Keyring,
        clients: &mut Clients,
    ) -> Result<RoutingTable, BuildError> {
        let changed = &delta.snapshot;
        let touched: HashSet<Uuid> = delta.accounts.iter().copied().collect();
        let mut accounts = self.accounts.clone();
        accounts.retain(|_, routes| !touched.contains(&routes.id));
        accounts.extend(
            Builder { keyring, clients }.accounts(&changed.accounts, &changed.integrations)?,
        );
        let touched: HashSet<Uuid> = delta.subjects.iter().copied().collect();
        let mut keys = self.keys.clone();
        keys.retain(|_, caller| !touched.contains(&caller.subject_id));
        keys.extend(callers(&changed.subjects, &changed.keys));
        Ok(RoutingTable {
            version: changed.version,
            accounts,
            keys,
        })
    }

    pub fn route(&self, account: &str, endpoint: &str) -> Option<&Arc<Route>> {
        self.accounts.get(account)?.routes.get(endpoint)
    }

    pub fn account_exists(&self, account: &str) -> bool {
        self.accounts.contains_key(account)
    }

    pub fn caller(&self, digest: &KeyDigest) -> Option<&Arc<Caller>> {
        self.keys.get(digest)
    }

    pub fn route_count(&self) -> usize {
        self.accounts.values().map(|a| a.routes.len()).sum()
    }
}

/// What building routes needs besides the rows.
struct Builder<'a> {
    keyring: &'a Keyring,
    clients: &'a mut Clients,
}

impl Builder<'_> {
    /// The routes of `accounts`, each with those of `integrations` that belong to it.
    fn accounts(
        &mut self,
        accounts: &[AccountSnapshot],
        integrations: &[IntegrationSnapshot],
    ) -> Result<impl Iterator<Item = (Arc<str>, Arc<AccountRoutes>)> + use<>, BuildError> {
        let mut by_account: HashMap<Uuid, Vec<&IntegrationSnapshot>> = HashMap::new();
        for integration in integrations {
            by_account
                .entry(integration.account_id)
                .or_default()
                .push(integration);
        }
        let mut built = Vec::with_capacity(accounts.len());
        for account in accounts {
            let mut routes = FastMap::default();
            for integration in by_account.remove(&account.id).unwrap_or_default() {
                let route = self.route(account, integration)?;
                routes.insert(integration.name.as_str().into(), Arc::new(route));
            }
            let routes = AccountRoutes {
                id: account.id,
                routes,
            };
            built.push((account.name.as_str().into(), Arc::new(routes)));
        }
        Ok(built.into_iter())
    }

    fn route(
        &mut self,
        account: &AccountSnapshot,
        integration: &IntegrationSnapshot,
    ) -> Result<Route, BuildError> {
        let keyring = self.keyring;
        let fail = |reason: String| BuildError {
            account: account.name.clone(),
            endpoint: integration.name.clone(),
            reason,
        };
        let base = BaseUrl::parse(&integration.base_url).map_err(|e| fail(e.to_string()))?;
        let authority =
            Authority::try_from(base.authority.as_str()).map_err(|e| fail(e.to_string()))?;
        // The integration's header auth replaces the account's (SPEC §1), never merges.
        let header_auth = match (&integration.header_auth, &account.header_auth) {
            (Some(own), _) => Some(open_header_auth(
                keyring,
                crypto::INTEGRATIONS,
                integration.id,
                own,
            )),
            (None, Some(inherited)) => Some(open_header_auth(
                keyring,
                crypto::ACCOUNTS,
                account.id,
                inherited,
            )),
            (None, None) => None,
        }
        .transpose()
        .map_err(|e| fail(format!("header auth: {e}")))?;
        let open_custom = |table, row, headers, secret: &[String]| {
            let at = (table, row, Field::CustomHeaders);
            open_headers(keyring, at, headers, |n| is_listed(secret, n))
                .map_err(|e| fail(format!("secret custom header: {e}")))
        };
        let account_custom = open_custom(
            crypto::ACCOUNTS,
            account.id,
            &account.custom_headers,
            &account.secret_custom_headers,
        )?;
        let integration_custom = open_custom(
            crypto::INTEGRATIONS,
            integration.id,
            &integration.custom_headers,
            &integration.secret_custom_headers,
        )?;
        let inject = injected_headers(
            [
                (&account_custom, &account.secret_custom_headers),
                (&integration_custom, &integration.secret_custom_headers),
            ],
            header_auth.as_ref(),
        )
        .map_err(fail)?;
        let allowed_ids = if integration.authorized_subjects.is_empty() {
            &account.collaborators
        } else {
            &integration.authorized_subjects
        };
        let denied = self.clients.denies_literal(base.host());
        Ok(Route {
            account: account.name.as_str().into(),
            endpoint: integration.name.as_str().into(),
            account_id: account.id,
            integration_id: integration.id,
            metrics: OnceLock::new(),
            scheme: match base.scheme {
                base_url::Scheme::Http => Scheme::HTTP,
                base_url::Scheme::Https => Scheme::HTTPS,
            },
            authority,
            base_path: base.path.into(),
            inject,
            allowed: allowed_ids.iter().copied().collect(),
            clients: self.clients.for_tls(&integration.tls).map_err(fail)?,
            denied,
            body_limit: integration.max_request_body_bytes,
        })
    }
}

/// The callers behind `keys`; keys of subjects not in `subjects` are left out.
fn callers<'a>(
    subjects: &'a [SubjectSnapshot],
    keys: &'a [KeySnapshot],
) -> impl Iterator<Item = (KeyDigest, Arc<Caller>)> + 'a {
    let subjects: HashMap<Uuid, _> = subjects.iter().map(|s| (s.id, s)).collect();
    let mut names: HashMap<Uuid, Arc<str>> = HashMap::new();
    keys.iter().filter_map(move |k| {
        let digest: KeyDigest = k.digest.as_slice().try_into().ok()?;
        let subject = subjects.get(&k.subject_id)?;
        let name = names
            .entry(subject.id)
            .or_insert_with(|| subject.name.as_str().into())
            .clone();
        let caller = Caller {
            key_id: k.id,
            subject_id: subject.id,
            subject: name,
            is_admin: subject.is_admin,
            teams: subject.teams.clone().into_boxed_slice(),
            expires_at: k.expires_at,
        };
        Some((digest, Arc::new(caller)))
    })
}

/// SPEC §2 precedence, last wins: account custom headers < integration custom headers <
/// effective header auth. Names compare case-insensitively (HeaderName lowercases).
/// Custom headers are given opened, with the names of their secret ones, which are marked
/// sensitive like every header auth value.
fn injected_headers(
    custom: [(&BTreeMap<String, String>, &Vec<String>); 2],
    header_auth: Option<&HeaderAuth>,
) -> Result<Box<[(HeaderName, HeaderValue)]>, String> {
    let mut merged: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let all: Vec<String> = header_auth
        .map(|a| a.headers().keys().cloned().collect())
        .unwrap_or_default();
    let auth_layer = header_auth.map(|a| (a.headers(), &all));
    for (headers, secret) in custom.into_iter().chain(auth_layer) {
        for (name, value) in headers {
            let sensitive = is_listed(secret, name);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            // The value is never echoed: it may be a credential.
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            value.set_sensitive(sensitive);
            merged.retain(|(n, _)| n != name);
            merged.push((name, value));
        }
    }
    Ok(merged.into_boxed_slice())
}

/// Whether `name` is in `names`, ignoring case as header names do.
fn is_listed(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_is_account_then_integration_then_auth() {
        let account = map(&[("X-A", "account"), ("X-B", "account")]);
        let auth = HeaderAuth::Header {
            headers: map(&[("x-b", "secret")]),
        };
        let integration = map(&[("x-a", "integration"), ("X-Token", "t0k3n")]);
        let secret = vec!["x-token".to_owned()];
        let merged =
            injected_headers([(&account, &vec![]), (&integration, &secret)], Some(&auth)).unwrap();
        let get = |n: &str| merged.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(merged.len(), 3);
        assert_eq!(get("x-a").unwrap(), "integration");
        assert!(!get("x-a").unwrap().is_sensitive());
        assert!(
            get("x-token").unwrap().is_sensitive(),
            "secret custom headers are sensitive"
        );
        let auth_value = get("x-b").unwrap();
        assert_eq!(auth_value, "secret");
        assert!(auth_value.is_sensitive());
    }
}
