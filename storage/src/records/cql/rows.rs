//! Rows ⇄ records, by column name: one mapping per record serves every table it is copied
//! into, whatever key columns that table adds. Also the conversions of values bound to
//! statements (`bigint` millis, `LIMIT`s).
//!
//! What it does not do: choose tables or statements.

use scylla::deserialize::row::{ColumnIterator, RawColumn};
use scylla::deserialize::value::DeserializeValue;
use scylla::frame::response::result::ColumnSpec;
use scylla::response::query_result::QueryResult;
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::RowWriter;
use wagu_proto::PlaceId;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{
    AccountId, MenuItem, PhotoId, Place, Post, PostDraft, PostId, TextOrigin,
};

use crate::records::{AccountRecord, RecordError, Result, bucket_of};

#[derive(Debug, thiserror::Error)]
#[error("no value for bind marker {0:?}")]
struct NoValue(String);

fn put<V: SerializeValue + ?Sized>(
    v: &V,
    col: &ColumnSpec<'_>,
    w: &mut RowWriter<'_>,
) -> std::result::Result<(), SerializationError> {
    v.serialize(col.typ(), w.make_cell_writer()).map(|_| ())
}

/// Millisecond timestamps and prices as `bigint`: far below `i64::MAX` in practice.
pub(super) fn big(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

#[derive(scylla::SerializeValue)]
struct MenuOut<'a> {
    name: &'a str,
    price: Option<i64>,
}

#[derive(scylla::DeserializeValue)]
struct MenuIn {
    name: String,
    price: Option<i64>,
}

/// A post's values for any post table; `cell` for `posts_by_cell`; `expected_updated_at`
/// for the compare-and-set of an edit.
pub(super) struct PostRow<'a> {
    pub(super) post: &'a Post,
    pub(super) cell: String,
    pub(super) expected_updated_at: Option<UnixMillis>,
}

impl<'a> PostRow<'a> {
    pub(super) fn new(post: &'a Post, cell: String) -> Self {
        PostRow {
            post,
            cell,
            expected_updated_at: None,
        }
    }

    /// For `cas_post`: `post`'s columns, if the stored row's `updated_at` is `expected`.
    pub(super) fn replacing(post: &'a Post, expected: UnixMillis) -> Self {
        PostRow {
            post,
            cell: String::new(),
            expected_updated_at: Some(expected),
        }
    }
}

impl SerializeRow for PostRow<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        w: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        let p = self.post;
        let d = &p.draft;
        for col in ctx.columns() {
            match col.name() {
                "id" => put(p.id.as_str(), col, w)?,
                "author" => put(p.author.as_str(), col, w)?,
                "author_name" => put(p.author_name.as_str(), col, w)?,
                "place_id" => put(d.place_id.as_str(), col, w)?,
                "place_name" => put(p.place_name.as_str(), col, w)?,
                "lat" => put(&p.location.lat, col, w)?,
                "lng" => put(&p.location.lng, col, w)?,
                "created_at" => put(&big(p.created_at), col, w)?,
                "updated_at" => put(&big(p.updated_at), col, w)?,
                "visit_date" => put(d.visit_date.as_str(), col, w)?,
                "rating" => put(&i32::from(d.rating), col, w)?,
                "body" => put(d.text.as_str(), col, w)?,
                "text_origin" => put(d.text_origin.as_str(), col, w)?,
                "photos" => put(
                    &d.photos.iter().map(PhotoId::as_str).collect::<Vec<_>>(),
                    col,
                    w,
                )?,
                "menu" => put(
                    &d.menu
                        .iter()
                        .map(|m| MenuOut {
                            name: &m.name,
                            price: m.price.map(big),
                        })
                        .collect::<Vec<_>>(),
                    col,
                    w,
                )?,
                "bucket" => put(&bucket_of(p.created_at), col, w)?,
                "cell" => put(self.cell.as_str(), col, w)?,
                "expected_updated_at" if self.expected_updated_at.is_some() => {
                    put(&self.expected_updated_at.map(big), col, w)?
                }
                other => return Err(SerializationError::new(NoValue(other.into()))),
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// A place's values for any place table, with the index keys of that table.
pub(super) struct PlaceRow<'a> {
    pub(super) place: &'a Place,
    pub(super) prefix: &'a str,
    pub(super) token: &'a str,
    pub(super) cell: &'a str,
}

impl SerializeRow for PlaceRow<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        w: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        let p = self.place;
        for col in ctx.columns() {
            match col.name() {
                "id" | "place_id" => put(p.id.as_str(), col, w)?,
                "name" => put(p.name.as_str(), col, w)?,
                "category" => put(p.category.as_str(), col, w)?,
                "address" => put(p.address.as_str(), col, w)?,
                "lat" => put(&p.location.lat, col, w)?,
                "lng" => put(&p.location.lng, col, w)?,
                "phone" => put(&p.phone.as_deref(), col, w)?,
                "hours" => put(&p.hours.as_deref(), col, w)?,
                "prefix" => put(self.prefix, col, w)?,
                "name_token" => put(self.token, col, w)?,
                "cell" => put(self.cell, col, w)?,
                other => return Err(SerializationError::new(NoValue(other.into()))),
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// One result row, its columns looked up by name.
pub(super) struct Cols<'f, 'm>(pub(super) Vec<RawColumn<'f, 'm>>);

impl<'f, 'm> Cols<'f, 'm> {
    /// The column's value; `None` when it is null or not selected (an LWT that applied
    /// returns only `[applied]`).
    pub(super) fn opt<T: DeserializeValue<'f, 'm>>(&self, name: &str) -> Result<Option<T>> {
        let Some(c) = self.0.iter().find(|c| c.spec.name() == name) else {
            return Ok(None);
        };
        if c.slice.is_none() {
            return Ok(None);
        }
        let spec: &'m ColumnSpec<'m> = c.spec;
        T::type_check(spec.typ()).map_err(|e| RecordError::cql_in(format!("column {name}"), e))?;
        T::deserialize(spec.typ(), c.slice)
            .map(Some)
            .map_err(|e| RecordError::cql_in(format!("column {name}"), e))
    }

    pub(super) fn get<T: DeserializeValue<'f, 'm>>(&self, name: &str) -> Result<T> {
        self.opt(name)?
            .ok_or_else(|| RecordError::cql_row(format!("column {name} is null")))
    }

    /// Text that may be empty: a row written without the column (by hand, say) reads as `""`.
    pub(super) fn text(&self, name: &str) -> Result<String> {
        Ok(self.opt(name)?.unwrap_or_default())
    }

    pub(super) fn millis(&self, name: &str) -> Result<UnixMillis> {
        let v: i64 = self.get(name)?;
        u64::try_from(v)
            .map_err(|_| RecordError::cql_row(format!("column {name} is negative: {v}")))
    }
}

/// Maps every row of a result.
pub(super) fn decode<T>(
    res: QueryResult,
    mut f: impl FnMut(&Cols<'_, '_>) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = res.into_rows_result().map_err(RecordError::cql)?;
    let mut out = Vec::with_capacity(rows.rows_num());
    for row in rows.rows::<ColumnIterator>().map_err(RecordError::cql)? {
        let cols = row
            .map_err(RecordError::cql)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(RecordError::cql)?;
        out.push(f(&Cols(cols))?);
    }
    Ok(out)
}

pub(super) fn post_of(c: &Cols<'_, '_>) -> Result<Post> {
    let origin: String = c.get("text_origin")?;
    let rating: i32 = c.get("rating")?;
    Ok(Post {
        id: PostId(c.get("id")?),
        author: AccountId(c.get("author")?),
        author_name: c.text("author_name")?,
        place_name: c.text("place_name")?,
        location: LatLng {
            lat: c.get("lat")?,
            lng: c.get("lng")?,
        },
        created_at: c.millis("created_at")?,
        updated_at: c.millis("updated_at")?,
        draft: PostDraft {
            place_id: PlaceId(c.get("place_id")?),
            visit_date: c.get("visit_date")?,
            menu: c
                .opt::<Vec<MenuIn>>("menu")?
                .unwrap_or_default()
                .into_iter()
                .map(|m| MenuItem {
                    name: m.name,
                    price: m.price.and_then(|p| u64::try_from(p).ok()),
                })
                .collect(),
            rating: u8::try_from(rating)
                .map_err(|_| RecordError::cql_row(format!("rating {rating} out of range")))?,
            text: c.text("body")?,
            photos: c
                .opt::<Vec<String>>("photos")?
                .unwrap_or_default()
                .into_iter()
                .map(PhotoId)
                .collect(),
            text_origin: TextOrigin::parse(&origin)
                .ok_or_else(|| RecordError::cql_row(format!("unknown text_origin {origin:?}")))?,
        },
    })
}

pub(super) fn place_of(c: &Cols<'_, '_>, id_column: &str) -> Result<Place> {
    Ok(Place {
        id: PlaceId(c.get(id_column)?),
        name: c.get("name")?,
        category: c.text("category")?,
        address: c.text("address")?,
        location: LatLng {
            lat: c.get("lat")?,
            lng: c.get("lng")?,
        },
        phone: c.opt("phone")?,
        hours: c.opt("hours")?,
    })
}

pub(super) fn account_of(c: &Cols<'_, '_>) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: AccountId(c.get("id")?),
        email: c.get("email")?,
        display_name: c.text("display_name")?,
        password_hash: c.get("password_hash")?,
        created_at: c.millis("created_at")?,
    })
}

/// A spent token's `used_at`; 0 (long ago: the caller treats the reuse as a replay) if
/// absent, which only a row spent without recording it can be.
pub(super) fn spent_at(used_at: Option<i64>) -> UnixMillis {
    used_at.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// A page size as a bound `LIMIT`.
pub(super) fn limit_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
