//! Request-log records in PostgreSQL's binary `COPY` format: each field is written straight
//! from the record's shared bytes into one reused buffer, so a batch costs no per-row strings
//! and PostgreSQL parses no text, arrays or placeholders.
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary Format".)

use uuid::Uuid;

use super::{Entry, trace_id};

/// The statement the buffer is written for; its column order is [`encode`]'s.
pub const STATEMENT: &str = "copy request_logs (request_id, started_at, account, endpoint, \
     account_id, integration_id, subject, key_id, method, upstream_path, status, latency_us, \
     upstream_ttfb_us, bytes_in, bytes_out, error_type, trace_id, data_plane) \
     from stdin (format binary)";
const COLUMNS: i16 = 18;

/// Signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Replaces `out` with the COPY data of `batch`.
pub fn encode(out: &mut Vec<u8>, data_plane: &str, batch: &[Entry]) {
    out.clear();
    out.extend_from_slice(HEADER);
    for r in batch {
        out.extend_from_slice(&COLUMNS.to_be_bytes());
        uuid(out, Some(r.request_id));
        int8(out, Some(r.started_at.timestamp_micros() - PG_EPOCH_US));
        text(out, Some(&r.account));
        text(out, Some(&r.endpoint));
        uuid(out, r.account_id);
        uuid(out, r.integration_id);
        text(out, r.subject.as_deref());
        uuid(out, r.key_id);
        text(out, Some(r.method.as_str()));
        // The query string never reaches the log: it may carry secrets.
        text(out, Some(r.path.path()));
        field(out, Some(&(r.status as i16).to_be_bytes()));
        int8(out, Some(as_i64(r.latency_us)));
        int8(out, r.upstream_ttfb_us.map(as_i64));
        int8(out, Some(as_i64(r.bytes_in)));
        int8(out, Some(as_i64(r.bytes_out)));
        text(out, r.error_type);
        text(out, Some(trace_id(r.traceparent.as_ref())));
        text(out, Some(data_plane));
    }
    out.extend_from_slice(&TRAILER);
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A field: its length then its bytes, or length -1 for NULL.
fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            // Fields are names and paths far below 2 GiB; a longer one would be refused anyway.
            let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    field(out, value.map(str::as_bytes));
}

fn uuid(out: &mut Vec<u8>, value: Option<Uuid>) {
    field(out, value.as_ref().map(|u| u.as_bytes().as_slice()));
}

fn int8(out: &mut Vec<u8>, value: Option<i64>) {
    field(
        out,
        value.map(i64::to_be_bytes).as_ref().map(|b| b.as_slice()),
    );
}
