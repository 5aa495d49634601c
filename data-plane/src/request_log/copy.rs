//! Request-log records in PostgreSQL's binary `COPY` format: each field is written straight
//! from the record's borrowed bytes into a reused buffer, so a record costs no strings and
//! PostgreSQL parses no text, arrays or placeholders.
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary Format".)

use uuid::Uuid;

use super::{Record, trace_id};

/// The statement the buffer is written for; its column order is [`encode_row`]'s.
pub const STATEMENT: &str = "copy request_logs (request_id, started_at, account, endpoint, \
     account_id, integration_id, subject, key_id, method, upstream_path, status, latency_us, \
     upstream_ttfb_us, bytes_in, bytes_out, error_type, trace_id, data_plane) \
     from stdin (format binary)";
const COLUMNS: i16 = 18;

/// Signature, flags and header extension length: sent before the rows.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Sent after the rows.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Appends the row of `r` to `out`.
pub fn encode_row(out: &mut Vec<u8>, data_plane: &str, r: &Record) {
    out.extend_from_slice(&COLUMNS.to_be_bytes());
    uuid(out, Some(r.request_id));
    int8(out, Some(r.started_at.timestamp_micros() - PG_EPOCH_US));
    text(out, Some(r.account));
    text(out, Some(r.endpoint));
    uuid(out, r.account_id);
    uuid(out, r.integration_id);
    text(out, r.subject.map(|s| &**s));
    uuid(out, r.key_id);
    text(out, Some(r.method.as_str()));
    // The query string never reaches the log: it may carry secrets.
    text(out, Some(r.path.path()));
    fixed(out, Some((r.status as i16).to_be_bytes()));
    int8(out, Some(as_i64(r.latency_us)));
    int8(out, r.upstream_ttfb_us.map(as_i64));
    int8(out, Some(as_i64(r.bytes_in)));
    int8(out, Some(as_i64(r.bytes_out)));
    text(out, r.error_type);
    text(out, Some(trace_id(r.traceparent)));
    text(out, Some(data_plane));
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A field of variable length: its length then its bytes, or length -1 for NULL.
fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            // Fields are names and paths far below 2 GiB; a longer one would be refused anyway.
            let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&NULL),
    }
}

/// Length -1.
const NULL: [u8; 4] = (-1i32).to_be_bytes();

/// A field of `N` bytes: its length and bytes written as one array of known size, which the
/// compiler copies with a few moves instead of a call per part.
fn fixed<const N: usize>(out: &mut Vec<u8>, bytes: Option<[u8; N]>) {
    let Some(bytes) = bytes else {
        return out.extend_from_slice(&NULL);
    };
    const { assert!(N <= 20) };
    let mut encoded = [0u8; 24];
    encoded[..4].copy_from_slice(&(N as i32).to_be_bytes());
    encoded[4..4 + N].copy_from_slice(&bytes);
    out.extend_from_slice(&encoded[..4 + N]);
}

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    field(out, value.map(str::as_bytes));
}

fn uuid(out: &mut Vec<u8>, value: Option<Uuid>) {
    fixed(out, value.map(Uuid::into_bytes));
}

fn int8(out: &mut Vec<u8>, value: Option<i64>) {
    fixed(out, value.map(i64::to_be_bytes));
}
