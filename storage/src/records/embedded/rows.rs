//! Values as stored: JSON rows, places and posts with their exact coordinates, and the end of
//! a scope's key range.
//!
//! What it does not do: open tables or transactions.

use redb::ReadableTable;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use wagu_proto::model::LatLng;
use wagu_proto::records::{Place, Post};

use super::OrEmbedded;
use crate::records::{RecordError, Result};

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).redb()
}

pub(super) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::embedded(format!("corrupt row: {e}")))
}

pub(super) fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    table
        .get(key)
        .redb()?
        .map(|v| from_json(v.value()))
        .transpose()
}

/// Places and posts as stored: JSON, plus the coordinates again as their exact bits.
/// serde_json's default float parser is not correctly rounded (about one random coordinate in
/// sixteen comes back one ulp off), and the CQL backend's `double` columns are exact: read
/// back from here, a location must be the very value written, or its geohash could differ.
#[derive(Serialize)]
pub(super) struct ExactOut<'a, T> {
    v: &'a T,
    at: [u64; 2],
}

#[derive(Deserialize)]
pub(super) struct ExactIn<T> {
    v: T,
    at: [u64; 2],
}

pub(super) trait Located: Serialize + DeserializeOwned {
    fn location_mut(&mut self) -> &mut LatLng;
}

impl Located for Place {
    fn location_mut(&mut self) -> &mut LatLng {
        &mut self.location
    }
}

impl Located for Post {
    fn location_mut(&mut self) -> &mut LatLng {
        &mut self.location
    }
}

pub(super) fn to_exact<T: Located>(v: &T, at: LatLng) -> Result<Vec<u8>> {
    to_json(&ExactOut {
        v,
        at: [at.lat.to_bits(), at.lng.to_bits()],
    })
}

pub(super) fn get_exact<T: Located>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    let Some(stored) = get_json::<ExactIn<T>>(table, key)? else {
        return Ok(None);
    };
    let mut v = stored.v;
    *v.location_mut() = LatLng {
        lat: f64::from_bits(stored.at[0]),
        lng: f64::from_bits(stored.at[1]),
    };
    Ok(Some(v))
}

/// The least string above `s` and above every (`s`, …) tuple key: `s` followed by NUL. Used
/// as the exclusive end of one scope's key range.
pub(super) fn past(s: &str) -> String {
    format!("{s}\0")
}
