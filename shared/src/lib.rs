//! Types, validation and wire formats that the control plane and the data planes share, so that
//! what one plane accepts the other can serve. No HTTP server, no database: plain data and rules.
//!
//! - [`validation`]: the error a failed rule yields, naming the offending field.
//! - [`names`]: provider account, integration and subject names (SPEC §1).
//! - [`address`]: address ranges denied as upstreams (RELIABILITY S7).
//! - [`base_url`]: the integration base URL rules (SPEC §1, RELIABILITY S7) and its parts.
//! - [`headers`]: header names and values an operator may configure.
//! - [`model`]: header auth, TLS settings, endpoint types, roles and subjects.
//! - [`api_key`]: the API key format and its digest (RELIABILITY S9).
//! - [`crypto`]: upstream credentials sealed at rest (RELIABILITY S10).
//! - [`logging`]: log set-up both binaries share.
//! - [`notify`]: the change notification both planes speak (RELIABILITY P2).
//! - [`snapshot`]: the configuration a data plane loads in one read.
//! - [`request_log`]: the per-request record behind the traces API.
//! - [`process`]: crypto provider and shutdown signal set-up.

pub mod address;
pub mod api_key;
pub mod base_url;
pub mod crypto;
pub mod headers;
pub mod logging;
pub mod model;
pub mod names;
pub mod notify;
pub mod process;
pub mod request_log;
pub mod snapshot;
pub mod validation;
