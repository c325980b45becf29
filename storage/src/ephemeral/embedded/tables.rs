//! The embedded store's writes as redb table operations, and as the payload of a log record.
//!
//! What it does: the four tables' layout and the `meta` row, applying one write (`put`,
//! `delete`, `append`) or a sweep inside a write transaction, and encoding a batch's writes for
//! the log and back. What it does not do: transactions, durability or threads (`writer.rs`),
//! or the log file itself (`ephemeral/wal.rs`).

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

pub(super) const VALUES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("values");
pub(super) const LISTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("lists");
pub(super) const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `meta` key: the last log record the data holds, written in the same commit as the data.
pub(super) const LOG_SEQ: &str = "log_seq";

/// Most expired keys one sweep transaction removes.
pub const SWEEP_BATCH: usize = 1024;

/// One write, as the writer thread applies it and the log keeps it.
#[derive(Debug, PartialEq)]
pub(super) enum Op {
    Put {
        key: String,
        value: Bytes,
        expires: u64,
    },
    Delete(Vec<String>),
    Append {
        key: String,
        values: Vec<Bytes>,
        expires: u64,
    },
    Sweep,
    /// Not a write: asks the writer to apply what it has logged to the tables (a read waits
    /// for it when something acknowledged is not in the tables yet).
    Settle,
}

/// Applies one write (not a sweep) as of `now` (the log replays it with the clock it ran at).
pub(super) fn apply(w: &WriteTransaction, op: &Op, now: u64) -> Result<(), redb::Error> {
    match op {
        Op::Put {
            key,
            value,
            expires,
        } => put(w, key, value, *expires),
        Op::Delete(keys) => {
            for k in keys {
                remove(w, k)?;
            }
            Ok(())
        }
        Op::Append {
            key,
            values,
            expires,
        } => append(w, key, values, *expires, now),
        Op::Sweep | Op::Settle => Ok(()),
    }
}

/// Applies the writes of one log record's payload, as of the clock it was written at; `false`
/// if it does not decode (its checksum held, so a bug or a different version). Used for the
/// records a crash left (replay) and for those the writer logged but has not applied yet.
pub(super) fn apply_logged(
    w: &WriteTransaction,
    payload: &[u8],
    now: u64,
) -> Result<bool, redb::Error> {
    let Some(ops) = decode(payload) else {
        return Ok(false);
    };
    for op in &ops {
        apply(w, op, now)?;
    }
    Ok(true)
}

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_APPEND: u8 = 3;

/// A batch's writes as one log record's payload; `None` when it holds none (only sweeps and
/// reads' requests to apply).
pub(super) fn encode<'a>(batch: impl IntoIterator<Item = &'a Op>) -> Option<Vec<u8>> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    let mut out = Vec::new();
    for op in batch {
        match op {
            Op::Put {
                key,
                value,
                expires,
            } => {
                out.push(TAG_PUT);
                bytes(&mut out, key.as_bytes());
                bytes(&mut out, value);
                out.extend_from_slice(&expires.to_le_bytes());
            }
            Op::Delete(keys) => {
                out.push(TAG_DELETE);
                out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
                for k in keys {
                    bytes(&mut out, k.as_bytes());
                }
            }
            Op::Append {
                key,
                values,
                expires,
            } => {
                out.push(TAG_APPEND);
                bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&expires.to_le_bytes());
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for v in values {
                    bytes(&mut out, v);
                }
            }
            Op::Sweep | Op::Settle => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The writes of one log record; `None` if it does not parse (its checksum held, so this is
/// a bug or a different version, not a torn write).
pub(super) fn decode(mut p: &[u8]) -> Option<Vec<Op>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (p.get(..n)?, p.get(n..)?);
        *p = rest;
        Some(head)
    }
    fn u32_(p: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(p, 4)?.try_into().ok()?))
    }
    fn u64_(p: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(p, 8)?.try_into().ok()?))
    }
    fn bytes<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = u32_(p)? as usize;
        take(p, n)
    }
    fn string(p: &mut &[u8]) -> Option<String> {
        String::from_utf8(bytes(p)?.to_vec()).ok()
    }
    let mut ops = Vec::new();
    while let Some(&tag) = p.first() {
        p = &p[1..];
        ops.push(match tag {
            TAG_PUT => Op::Put {
                key: string(&mut p)?,
                value: Bytes::copy_from_slice(bytes(&mut p)?),
                expires: u64_(&mut p)?,
            },
            TAG_DELETE => {
                let n = u32_(&mut p)?;
                Op::Delete((0..n).map(|_| string(&mut p)).collect::<Option<_>>()?)
            }
            TAG_APPEND => {
                let key = string(&mut p)?;
                let expires = u64_(&mut p)?;
                let n = u32_(&mut p)?;
                let values = (0..n)
                    .map(|_| bytes(&mut p).map(Bytes::copy_from_slice))
                    .collect::<Option<_>>()?;
                Op::Append {
                    key,
                    values,
                    expires,
                }
            }
            _ => return None,
        });
    }
    Some(ops)
}

fn put(w: &WriteTransaction, key: &str, value: &[u8], exp: u64) -> Result<(), redb::Error> {
    remove(w, key)?;
    w.open_table(VALUES)?.insert(key, (exp, value))?;
    w.open_table(EXPIRY)?.insert((exp, key), ())?;
    Ok(())
}

fn append(
    w: &WriteTransaction,
    key: &str,
    values: &[Bytes],
    exp: u64,
    now: u64,
) -> Result<(), redb::Error> {
    // A single value under the key is replaced by the list, as the memory backend does.
    let had_value = w.open_table(VALUES)?.get(key)?.is_some();
    if had_value {
        remove(w, key)?;
    }
    let meta = w.open_table(LISTS)?.get(key)?.map(|v| v.value());
    let len = match meta {
        Some((old, len)) if old > now => {
            w.open_table(EXPIRY)?.remove((old, key))?;
            len
        }
        Some(_) => {
            // Expired but not swept yet: it is gone, start a new list.
            remove(w, key)?;
            0
        }
        None => 0,
    };
    {
        let mut items = w.open_table(ITEMS)?;
        for (i, v) in values.iter().enumerate() {
            items.insert((key, len + i as u64), v.as_ref())?;
        }
    }
    w.open_table(LISTS)?
        .insert(key, (exp, len + values.len() as u64))?;
    w.open_table(EXPIRY)?.insert((exp, key), ())?;
    Ok(())
}

/// Removes whatever is stored under `key`, value or list, and its expiry row.
fn remove(w: &WriteTransaction, key: &str) -> Result<(), redb::Error> {
    let mut expiry = w.open_table(EXPIRY)?;
    if let Some(exp) = w.open_table(VALUES)?.remove(key)?.map(|v| v.value().0) {
        expiry.remove((exp, key))?;
    }
    let meta = w.open_table(LISTS)?.remove(key)?.map(|v| v.value());
    if let Some((exp, len)) = meta {
        expiry.remove((exp, key))?;
        let mut items = w.open_table(ITEMS)?;
        for i in 0..len {
            items.remove((key, i))?;
        }
    }
    Ok(())
}

/// Removes up to [`SWEEP_BATCH`] keys whose expiry has passed; returns how many.
pub(super) fn sweep(w: &WriteTransaction, now: u64) -> Result<usize, redb::Error> {
    let due: Vec<String> = {
        let expiry = w.open_table(EXPIRY)?;
        let mut keys = Vec::new();
        for row in expiry.range(..(now + 1, ""))?.take(SWEEP_BATCH) {
            let (k, _) = row?;
            keys.push(k.value().1.to_string());
        }
        keys
    };
    for k in &due {
        remove(w, k)?;
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_writes_reads_back_from_its_log_payload_and_sweeps_are_not_logged() {
        let batch = vec![
            Op::Put {
                key: "wagu:room:r1:snap".into(),
                value: Bytes::from_static(b"{\"applied\":3}"),
                expires: 1_767_225_600_000,
            },
            Op::Sweep,
            Op::Delete(vec!["a".into(), "b".into()]),
            Op::Append {
                key: "wagu:room:r1:log".into(),
                values: vec![Bytes::new(), Bytes::from(vec![0u8, 255, 7])],
                expires: u64::MAX,
            },
        ];
        let payload = encode(&batch).unwrap();
        let read = decode(&payload).unwrap();
        let logged: Vec<&Op> = batch.iter().filter(|op| **op != Op::Sweep).collect();
        assert_eq!(read.iter().collect::<Vec<_>>(), logged);
        assert_eq!(
            encode(&[Op::Sweep]),
            None,
            "a batch of sweeps has nothing to log"
        );
    }

    #[test]
    fn a_payload_cut_inside_a_write_or_with_an_unknown_write_does_not_decode() {
        let payload = encode(&[Op::Append {
            key: "k".into(),
            values: vec![Bytes::from_static(b"value")],
            expires: 9,
        }])
        .unwrap();
        for cut in 1..payload.len() {
            assert_eq!(decode(&payload[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[9, 0, 0]), None);
        // Not UTF-8 where a key is expected.
        assert_eq!(decode(&[TAG_DELETE, 1, 0, 0, 0, 1, 0, 0, 0, 0xff]), None);
    }
}
