//! [`PlaceStore`] in redb: the `places` row and its entries in the name and cell indexes.

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable};
use wagu_proto::PlaceId;
use wagu_proto::model::LatLng;
use wagu_proto::records::Place;

use super::rows::{get_exact, past, to_exact};
use super::schema::{PLACES, PLACES_BY_CELL, PLACES_BY_NAME};
use super::{EmbeddedRecords, OrEmbedded};
use crate::records::{NameCursor, PlaceStore, Result, geo, text};

/// The cells a place is indexed under, one per precision.
pub(super) fn place_cells(at: LatLng) -> impl Iterator<Item = String> {
    geo::PLACE_PRECISIONS
        .into_iter()
        .map(move |p| geo::encode(at, p))
}

impl PlaceStore for EmbeddedRecords {
    async fn put_place(&self, p: &Place) -> Result<()> {
        let json = to_exact(p, p.location)?;
        let p = p.clone();
        self.write(move |w| {
            let id = p.id.0.as_str();
            let old: Option<Place> = {
                let mut places = w.open_table(PLACES).redb()?;
                let old = get_exact(&places, id)?;
                places.insert(id, json.as_slice()).redb()?;
                old
            };
            let mut by_name = w.open_table(PLACES_BY_NAME).redb()?;
            let mut by_cell = w.open_table(PLACES_BY_CELL).redb()?;
            // Replacing: the old name and location stop finding it, in the same transaction.
            if let Some(old) = &old {
                for t in text::tokens(&old.name) {
                    by_name.remove((t.as_str(), id)).redb()?;
                }
                for c in place_cells(old.location) {
                    by_cell.remove((c.as_str(), id)).redb()?;
                }
            }
            for t in text::tokens(&p.name) {
                by_name.insert((t.as_str(), id), ()).redb()?;
            }
            for c in place_cells(p.location) {
                by_cell.insert((c.as_str(), id), ()).redb()?;
            }
            Ok(())
        })
        .await
    }

    async fn place(&self, id: &PlaceId) -> Result<Option<Place>> {
        let id = id.0.clone();
        self.read(move |r| get_exact(&r.open_table(PLACES).redb()?, &id))
            .await
    }

    async fn has_places(&self) -> Result<bool> {
        self.read(|r| Ok(r.open_table(PLACES).redb()?.first().redb()?.is_some()))
            .await
    }

    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>> {
        let prefix = prefix.to_string();
        let after = after.cloned();
        self.read(move |r| {
            let end = text::prefix_end(&prefix);
            let first = (prefix.as_str(), "");
            // A cursor before the prefix's range (not one this query issued) starts it over.
            let lower = match &after {
                Some(c) if (c.token.as_str(), c.id.0.as_str()) >= first => {
                    Bound::Excluded((c.token.as_str(), c.id.0.as_str()))
                }
                _ => Bound::Included(first),
            };
            let upper = Bound::Excluded((end.as_str(), ""));
            let keys = r
                .open_table(PLACES_BY_NAME)
                .redb()?
                .range((lower, upper))
                .redb()?
                .take(limit)
                .map(|e| {
                    e.map(|(k, _)| {
                        let (token, id) = k.value();
                        (token.to_string(), id.to_string())
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .redb()?;
            read_places(r, keys, |(token, id)| (id, token))
        })
        .await
    }

    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>> {
        let cell = cell.to_string();
        let after = after.cloned();
        self.read(move |r| {
            let end = past(&cell);
            let lower = match &after {
                Some(id) => Bound::Excluded((cell.as_str(), id.0.as_str())),
                None => Bound::Included((cell.as_str(), "")),
            };
            let ids = r
                .open_table(PLACES_BY_CELL)
                .redb()?
                .range((lower, Bound::Excluded((end.as_str(), ""))))
                .redb()?
                .take(limit)
                .map(|e| e.map(|(k, _)| k.value().1.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .redb()?;
            Ok(read_places(r, ids, |id| (id, ()))?
                .into_iter()
                .map(|((), p)| p)
                .collect())
        })
        .await
    }
}

/// Looks up the places an index scan found, in scan order, each with what `split` keeps of
/// its index key. Index and rows are written in one transaction, so none is missing.
pub(super) fn read_places<K, X>(
    r: &ReadTransaction,
    keys: Vec<K>,
    split: impl Fn(K) -> (String, X),
) -> Result<Vec<(X, Place)>> {
    let places = r.open_table(PLACES).redb()?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (id, x) = split(k);
        if let Some(p) = get_exact(&places, &id)? {
            out.push((x, p));
        }
    }
    Ok(out)
}
