//! The request-log record (SPEC §3) as the data planes write it and the traces API reads it.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a request started at `started_at`: a UUIDv7 (RFC 9562), whose first 48 bits are
/// that instant in Unix milliseconds and the rest `random`. Request logs are indexed by start
/// time only (one index is cheaper to write than two); the time inside the id is what lets a
/// lookup by id use that index, through [`started_within`].
pub fn request_id(started_at: DateTime<Utc>, random: &[u8; 10]) -> Uuid {
    let millis = u64::try_from(started_at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, random).into_uuid()
}

/// The millisecond, as `[from, until)`, in which the request with this id started; `None` for an
/// id that carries no time (not a UUIDv7, such as those of records written before ids had one).
pub fn started_within(request_id: Uuid) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if request_id.get_version() != Some(uuid::Version::SortRand) {
        return None;
    }
    let (seconds, nanos) = request_id.get_timestamp()?.to_unix();
    let from = DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)?;
    Some((from, from + TimeDelta::milliseconds(1)))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestRecord {
    pub request_id: Uuid,
    /// RFC 3339.
    pub started_at: DateTime<Utc>,
    pub account: String,
    pub endpoint: String,
    pub account_id: Option<Uuid>,
    pub integration_id: Option<Uuid>,
    /// `user:<email>` or `virtualaccount:<name>`; absent when the key was refused.
    pub subject: Option<String>,
    pub key_id: Option<Uuid>,
    pub method: String,
    /// The upstream path without its query string, which may carry secrets.
    pub upstream_path: String,
    pub status: u16,
    pub latency_us: u64,
    /// Time to the upstream's response headers; absent when no upstream answered.
    pub upstream_ttfb_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The gateway's error type when the gateway made the response.
    pub error_type: Option<String>,
    pub trace_id: String,
    pub data_plane: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_locates_the_millisecond_its_request_started_in() {
        let started_at = DateTime::parse_from_rfc3339("2026-11-26T03:04:05.678901Z")
            .unwrap()
            .to_utc();
        let id = request_id(started_at, &[0xab; 10]);
        assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
        let (from, until) = started_within(id).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-26T03:04:05.678+00:00");
        assert!(from <= started_at && started_at < until);
        assert_eq!(until - from, TimeDelta::milliseconds(1));
    }

    #[test]
    fn ids_sort_by_start_time() {
        let earlier = Utc::now();
        let later = earlier + TimeDelta::milliseconds(1);
        assert!(request_id(earlier, &[0xff; 10]) < request_id(later, &[0; 10]));
    }

    #[test]
    fn an_id_without_a_time_locates_nothing() {
        assert_eq!(started_within(Uuid::new_v4()), None);
        assert_eq!(started_within(Uuid::nil()), None);
    }
}
