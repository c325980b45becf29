//! [`PhotoStore`] on the redb file of [`EmbeddedRecords`] (same database, own tables).
//!
//! | table | key | value |
//! |---|---|---|
//! | `photos` | photo id | JSON [`PhotoRecord`] |
//! | `photos_by_content` | (content hash, photo id) | — |
//! | `photo_sweep` | (queued at, photo id) | — |
//!
//! Every call is one transaction, so the record, its content index entry and its sweep entry
//! never disagree. The tables are created by the first write; a read before it finds none
//! and answers "nothing" (so opening an older file needs no migration).
//!
//! What it does not do: anything beyond storing (see [`super::photos`]).

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use wagu_proto::model::UnixMillis;
use wagu_proto::records::{PhotoId, PostId};

use super::embedded::EmbeddedRecords;
use super::photos::{PhotoRecord, PhotoStore, SweepEntry};
use super::{RecordError, Result};

const PHOTOS: TableDefinition<&str, &[u8]> = TableDefinition::new("photos");
const PHOTOS_BY_CONTENT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("photos_by_content");
const PHOTO_SWEEP: TableDefinition<(u64, &str), ()> = TableDefinition::new("photo_sweep");

fn db_err(e: impl std::fmt::Display) -> RecordError {
    RecordError::embedded(e)
}

fn decode(bytes: &[u8]) -> Result<PhotoRecord> {
    serde_json::from_slice(bytes).map_err(|e| db_err(format!("corrupt photo row: {e}")))
}

impl EmbeddedRecords {
    async fn photo_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db.begin_read().map_err(db_err)?))
            .await
            .map_err(db_err)?
    }

    async fn photo_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let w = db.begin_write().map_err(db_err)?;
            let out = f(&w)?;
            w.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
        .map_err(db_err)?
    }
}

/// Opens a table for reading; `None` when no write has created it yet.
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &redb::ReadTransaction,
    t: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>> {
    match r.open_table(t) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}

/// Reads, changes and writes back one record, if it exists.
fn update(w: &redb::WriteTransaction, id: &str, f: impl FnOnce(&mut PhotoRecord)) -> Result<bool> {
    let mut photos = w.open_table(PHOTOS).map_err(db_err)?;
    let found = photos
        .get(id)
        .map_err(db_err)?
        .map(|v| decode(v.value()))
        .transpose()?;
    let Some(mut p) = found else {
        return Ok(false);
    };
    f(&mut p);
    let json = serde_json::to_vec(&p).map_err(db_err)?;
    photos.insert(id, json.as_slice()).map_err(db_err)?;
    Ok(true)
}

impl PhotoStore for EmbeddedRecords {
    async fn put_photo(&self, p: &PhotoRecord) -> Result<PhotoRecord> {
        let p = p.clone();
        self.photo_write(move |w| {
            let mut photos = w.open_table(PHOTOS).map_err(db_err)?;
            if let Some(old) = photos.get(p.id.as_str()).map_err(db_err)? {
                return decode(old.value());
            }
            let json = serde_json::to_vec(&p).map_err(db_err)?;
            photos
                .insert(p.id.as_str(), json.as_slice())
                .map_err(db_err)?;
            w.open_table(PHOTOS_BY_CONTENT)
                .map_err(db_err)?
                .insert((p.content_hash.as_str(), p.id.as_str()), ())
                .map_err(db_err)?;
            w.open_table(PHOTO_SWEEP)
                .map_err(db_err)?
                .insert((p.created_at, p.id.as_str()), ())
                .map_err(db_err)?;
            Ok(p)
        })
        .await
    }

    async fn photo(&self, id: &PhotoId) -> Result<Option<PhotoRecord>> {
        let id = id.0.clone();
        self.photo_read(move |r| {
            let Some(t) = read_table(r, PHOTOS)? else {
                return Ok(None);
            };
            t.get(id.as_str())
                .map_err(db_err)?
                .map(|v| decode(v.value()))
                .transpose()
        })
        .await
    }

    async fn attach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        let (id, post) = (id.0.clone(), post.clone());
        self.photo_write(move |w| {
            update(w, &id, |p| {
                p.posts.insert(post, at);
            })
            .map(drop)
        })
        .await
    }

    async fn detach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        let (id, post) = (id.0.clone(), post.clone());
        self.photo_write(move |w| {
            let found = update(w, &id, |p| {
                p.posts.remove(&post);
                p.detached_at = Some(p.detached_at.unwrap_or(0).max(at));
            })?;
            if found {
                w.open_table(PHOTO_SWEEP)
                    .map_err(db_err)?
                    .insert((at, id.as_str()), ())
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn sweep_due(&self, before: UnixMillis, limit: usize) -> Result<Vec<SweepEntry>> {
        self.photo_read(move |r| {
            let Some(t) = read_table(r, PHOTO_SWEEP)? else {
                return Ok(Vec::new());
            };
            let range = t
                .range::<(u64, &str)>((Bound::Unbounded, Bound::Excluded((before, ""))))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in range.take(limit) {
                let (k, _) = row.map_err(db_err)?;
                let (at, id) = k.value();
                out.push(SweepEntry {
                    at,
                    id: PhotoId(id.to_string()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn unqueue(&self, entry: &SweepEntry) -> Result<()> {
        let e = entry.clone();
        self.photo_write(move |w| {
            w.open_table(PHOTO_SWEEP)
                .map_err(db_err)?
                .remove((e.at, e.id.as_str()))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_photo(&self, p: &PhotoRecord) -> Result<bool> {
        let p = p.clone();
        self.photo_write(move |w| {
            w.open_table(PHOTOS)
                .map_err(db_err)?
                .remove(p.id.as_str())
                .map_err(db_err)?;
            let mut by_content = w.open_table(PHOTOS_BY_CONTENT).map_err(db_err)?;
            by_content
                .remove((p.content_hash.as_str(), p.id.as_str()))
                .map_err(db_err)?;
            let hash = p.content_hash.as_str();
            let mut rest = by_content
                .range((hash, "")..)
                .map_err(db_err)?
                .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.value().0 == hash));
            Ok(rest.next().transpose().map_err(db_err)?.is_some())
        })
        .await
    }
}
