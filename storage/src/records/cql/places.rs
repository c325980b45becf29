//! [`PlaceStore`] over CQL: the `places` row and its copies in the name and cell indexes.

use wagu_proto::PlaceId;
use wagu_proto::records::Place;

use super::CqlRecords;
use super::rows::{Cols, PlaceRow, decode, limit_of, place_of};
use super::writes::{KEY_BYTES, Writes, place_bytes};
use crate::records::{NameCursor, PlaceStore, RecordError, Result, geo, text};

/// A place's name-index keys: (partition, token).
pub(super) fn name_keys(p: &Place) -> Vec<(String, String)> {
    text::tokens(&p.name)
        .into_iter()
        .map(|t| (text::partition(&t).to_string(), t))
        .collect()
}

pub(super) fn cell_keys(p: &Place) -> Vec<String> {
    geo::PLACE_PRECISIONS
        .iter()
        .map(|&n| geo::encode(p.location, n))
        .collect()
}

impl PlaceStore for CqlRecords {
    async fn put_place(&self, p: &Place) -> Result<()> {
        let old = self.place(&p.id).await?;
        let (names, cells) = (name_keys(p), cell_keys(p));
        let bytes = place_bytes(p);
        let mut w = Writes::default();
        for (prefix, token) in &names {
            let row = PlaceRow {
                place: p,
                prefix,
                token,
                cell: "",
            };
            w.add(&self.st.insert_name, bytes + token.len(), row);
        }
        for cell in &cells {
            let row = PlaceRow {
                place: p,
                prefix: "",
                token: "",
                cell,
            };
            w.add(&self.st.insert_cell, bytes, row);
        }
        // Only keys the new place no longer has: a delete and an insert of one row in one
        // batch share a timestamp, and then the delete wins.
        if let Some(old) = &old {
            for (prefix, token) in name_keys(old) {
                if !names.iter().any(|(_, t)| *t == token) {
                    w.add(
                        &self.st.delete_name,
                        KEY_BYTES,
                        (prefix, token, p.id.0.clone()),
                    );
                }
            }
            for cell in cell_keys(old) {
                if !cells.contains(&cell) {
                    w.add(&self.st.delete_cell, KEY_BYTES, (cell, p.id.0.clone()));
                }
            }
        }
        let row = PlaceRow {
            place: p,
            prefix: "",
            token: "",
            cell: "",
        };
        w.add(&self.st.insert_place, bytes, row);
        w.run(&self.session).await
    }

    async fn place(&self, id: &PlaceId) -> Result<Option<Place>> {
        self.one(&self.st.place, (id.as_str(),), |c| place_of(c, "id"))
            .await
    }

    async fn has_places(&self) -> Result<bool> {
        let res = self.exec(&self.st.any_place, ()).await?;
        Ok(res.into_rows_result().map_err(RecordError::cql)?.rows_num() > 0)
    }

    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>> {
        if limit == 0 || prefix.is_empty() {
            return Ok(Vec::new());
        }
        let partition = text::partition(prefix);
        let end = text::prefix_end(prefix);
        let row = |c: &Cols<'_, '_>| Ok((c.get::<String>("name_token")?, place_of(c, "place_id")?));
        let res = match after {
            Some(a) if a.token.as_str() >= end.as_str() => return Ok(Vec::new()),
            // A cursor before the range (from another query) starts it from the top.
            Some(a) if a.token.as_str() >= prefix => {
                self.exec(
                    &self.st.names_after,
                    (partition, &a.token, a.id.as_str(), &end, limit_of(limit)),
                )
                .await?
            }
            _ => {
                self.exec(
                    &self.st.names_from,
                    (partition, prefix, &end, limit_of(limit)),
                )
                .await?
            }
        };
        decode(res, row)
    }

    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let res = match after {
            Some(a) => {
                self.exec(&self.st.cell_after, (cell, a.as_str(), limit_of(limit)))
                    .await?
            }
            None => {
                self.exec(&self.st.cell_from, (cell, limit_of(limit)))
                    .await?
            }
        };
        decode(res, |c| place_of(c, "place_id"))
    }
}
