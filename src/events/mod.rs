//! Domain events: the one record of every state change.
//!
//! Events are our own types (never bollard's: its `skip_serializing_if` breaks
//! bincode round trips) encoded with bincode 2 over serde, which is not
//! self-describing. The rules that keep old logs readable:
//! - a new variant is appended at the END of an enum (old logs never hold its index);
//! - changing an existing variant's fields makes a new schema version: the old enum
//!   stays, frozen, in its own module and is upcast on read (see `decode`);
//! - `migrations/` holds a log written by every past schema version and the state it
//!   must replay into; `tests/migrations.rs` proves it still does.

pub mod docker;
pub mod projection;
pub mod v1;

use crate::error::{Context, Result};

/// The schema version that this build writes.
pub const CURRENT_SCHEMA: u16 = 1;

/// The event type of the current schema.
pub type Event = v1::Event;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes an event of the current schema.
pub fn encode(event: &Event) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(event, bincode_config()).context("encoding event")
}

/// Decodes a payload written under `schema`, upcasting it to the current schema.
pub fn decode(schema: u16, payload: &[u8]) -> Result<Event> {
    match schema {
        1 => decode_exact::<v1::Event>(payload),
        other => Err(crate::error::Error::internal(format!(
            "event schema version {other} is newer than this berthd understands ({CURRENT_SCHEMA})"
        ))),
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(payload, bincode_config())
        .context("decoding event")?;
    if used != payload.len() {
        return Err(crate::error::Error::internal(format!(
            "decoding event: {} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// Encodes any serde value with the same bincode configuration (snapshots).
pub fn encode_value<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config()).context("encoding")
}

pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    decode_exact(bytes)
}
