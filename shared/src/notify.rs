//! The change notification (RELIABILITY P2): a hint carrying only the new config version. State
//! is always read from the tables.

use serde::{Deserialize, Serialize};

/// The PostgreSQL channel every write notifies and every data plane listens on.
pub const CHANNEL: &str = "gatehouse_config";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigNotification {
    pub version: i64,
}
