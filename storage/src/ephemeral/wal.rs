//! The embedded store's write-ahead log, `<dir>/ephemeral.wal`: what makes a write durable
//! between two durable redb commits.
//!
//! Why: a durable redb commit writes every page it touched where it lies in the file (an append
//! to a list dirties three B-trees, their branches and the table tree: about 14 separate writes
//! and one `fdatasync`; measured in `docs/PERFORMANCE.md`). On a virtual disk every separate write
//! is a request to the host, and that, not the B-trees, was most of the writer's CPU. Here a
//! batch is one record written at the end of this file, then one `fdatasync`: one request, and
//! no change to the file's size or allocation (the file is zero-filled ahead, in
//! [`GROW_BYTES`] steps), so the sync writes no file-system metadata.
//!
//! Record: `len: u32 LE | crc32(body): u32 LE | body`, body = `seq: u64 | now: u64 | payload`.
//! `seq` counts batches; every commit of the store records the last `seq` it holds. Reading
//! starts at offset 0 and follows records while each is whole, its checksum holds and its `seq`
//! follows the one before: a torn tail fails its checksum, and what follows the tail after a
//! [`Wal::reset`] is an older generation (lower seqs) and is never read as new. Of that run, the
//! records past what the database holds are returned.
//!
//! What it does not do: decide what a payload means (the store encodes and applies its own
//! operations) or when to reset (the store resets after a durable commit covers every record).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file, next to the redb file.
pub const FILE_NAME: &str = "ephemeral.wal";
/// The file is zero-filled ahead of the write position in steps of this many bytes.
pub const GROW_BYTES: u64 = 1 << 20;
/// Header of a record: its body's length and checksum.
const HEADER: usize = 8;
/// A record body starts with its seq and the writer's clock.
const BODY_PREFIX: usize = 16;

/// One record read back: the batch number, the writer's clock when it was written, the payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub now: u64,
    pub payload: Vec<u8>,
}

/// The open log: where the next record goes and how far the file is zero-filled.
pub struct Wal {
    file: File,
    /// Where the next record is written.
    end: u64,
    /// How many bytes of the file are allocated and zero-filled or written.
    len: u64,
    /// The largest the file may grow; past it the store makes a durable commit and resets.
    cap: u64,
    /// One record, reused.
    buf: Vec<u8>,
}

impl Wal {
    /// Opens (creating if needed) `dir/ephemeral.wal` and reads back the records that follow
    /// batch `after` (the last one the durable commit covers), in order. The log is left
    /// positioned after them; the store applies them, makes a durable commit and calls
    /// [`Wal::reset`].
    pub fn open(dir: &Path, after: u64, cap: u64) -> io::Result<(Wal, Vec<Record>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE_NAME))?;
        let len = file.metadata()?.len();
        let mut bytes = Vec::with_capacity(len as usize);
        {
            use std::io::Read;
            (&file).read_to_end(&mut bytes)?;
        }
        let (records, end) = parse(&bytes, after)?;
        let wal = Wal {
            file,
            end: end as u64,
            len,
            cap: cap.max(GROW_BYTES),
            buf: Vec::new(),
        };
        Ok((wal, records))
    }

    /// Whether a record with a payload of `payload` bytes still fits under the cap.
    pub fn fits(&self, payload: usize) -> bool {
        self.end + (HEADER + BODY_PREFIX + payload) as u64 <= self.cap
    }

    /// Writes one record at the end and syncs it: when this returns `Ok`, the record survives a
    /// crash of the process or the machine.
    pub fn append(&mut self, seq: u64, now: u64, payload: &[u8]) -> io::Result<()> {
        let body = BODY_PREFIX + payload.len();
        self.buf.clear();
        self.buf.extend_from_slice(&(body as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&now.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let needed = self.end + self.buf.len() as u64;
        if needed > self.len {
            self.grow(needed)?;
        }
        self.file.write_all_at(&self.buf, self.end)?;
        self.file.sync_data()?;
        self.end = needed;
        Ok(())
    }

    /// Starts again at offset 0, once a durable commit covers every record written. What lies
    /// beyond the new records is an older generation, which reading never accepts.
    pub fn reset(&mut self) {
        self.end = 0;
    }

    /// Bytes of records since the last reset.
    pub fn written(&self) -> u64 {
        self.end
    }

    /// Zero-fills the file up to at least `needed` bytes (whole steps) and syncs it, so that the
    /// records written over the zeros change no file-system metadata.
    fn grow(&mut self, needed: u64) -> io::Result<()> {
        let to = needed.div_ceil(GROW_BYTES) * GROW_BYTES;
        let zeros = vec![0u8; (to - self.len) as usize];
        self.file.write_all_at(&zeros, self.len)?;
        self.file.sync_all()?;
        self.len = to;
        Ok(())
    }
}

/// The records after batch `after`, and the offset just past the last record of the log's
/// current generation: the unbroken run of seqs that starts at offset 0. Records up to `after`
/// are in it when the database already holds them (a commit the crash kept); a run that starts
/// past `after + 1` means records the database lacks are gone, an error.
fn parse(bytes: &[u8], after: u64) -> io::Result<(Vec<Record>, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut next: Option<u64> = None;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let body_len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
        if body_len < BODY_PREFIX {
            break;
        }
        let Some(body) = bytes.get(at + HEADER..at + HEADER + body_len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let seq = u64::from_le_bytes(body[0..8].try_into().unwrap());
        match next {
            Some(n) if seq != n => break,
            None if seq > after + 1 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the log starts at record {seq} but the database holds only up to {after}: records are missing"
                    ),
                ));
            }
            _ => {}
        }
        if seq > after {
            let now = u64::from_le_bytes(body[8..16].try_into().unwrap());
            out.push(Record {
                seq,
                now,
                payload: body[BODY_PREFIX..].to_vec(),
            });
        }
        at += HEADER + body_len;
        next = Some(seq + 1);
    }
    Ok((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(dir: &Path, after: u64) -> (Wal, Vec<Record>) {
        Wal::open(dir, after, GROW_BYTES).unwrap()
    }

    #[test]
    fn records_read_back_in_order_after_the_last_durable_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, none) = reopen(dir.path(), 0);
        assert!(none.is_empty());
        for seq in 1..=3 {
            wal.append(seq, 100 + seq, format!("batch {seq}").as_bytes())
                .unwrap();
        }
        drop(wal);
        let (_, all) = reopen(dir.path(), 0);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].seq, 3);
        assert_eq!(all[2].now, 103);
        assert_eq!(all[2].payload, b"batch 3");
        // The database already holds batches 1 and 2 (a commit the crash kept): only 3 is new.
        let (_, rest) = reopen(dir.path(), 2);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].seq, 3);
        // It holds less than the log starts with: records are missing, and opening says so.
        let (mut wal, _) = reopen(dir.path(), 3);
        wal.reset();
        wal.append(9, 0, b"after a gap").unwrap();
        drop(wal);
        let e = Wal::open(dir.path(), 3, GROW_BYTES).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("records are missing"), "{e}");
    }

    #[test]
    fn a_torn_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = reopen(dir.path(), 0);
        wal.append(1, 0, b"whole").unwrap();
        wal.append(2, 0, b"torn in the middle").unwrap();
        let second = (HEADER + BODY_PREFIX + 5) as u64;
        // A crash in the middle of the second write: its last bytes never reached the disk.
        wal.file.write_all_at(&[0; 4], second + 30).unwrap();
        drop(wal);
        let (wal, read) = reopen(dir.path(), 0);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].payload, b"whole");
        assert_eq!(
            wal.written(),
            second,
            "the next record overwrites the torn one"
        );
    }

    #[test]
    fn an_older_generation_after_a_reset_is_never_read_as_new() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = reopen(dir.path(), 0);
        for seq in 1..=5 {
            wal.append(seq, 0, b"first generation, a long payload")
                .unwrap();
        }
        // A durable commit covers 1..=5; the log starts again with 6 over the old records.
        wal.reset();
        wal.append(6, 0, b"second").unwrap();
        drop(wal);
        let (_, read) = reopen(dir.path(), 5);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].seq, 6);
        assert_eq!(read[0].payload, b"second");
    }

    #[test]
    fn the_file_grows_in_zeroed_steps_and_reports_when_it_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = reopen(dir.path(), 0);
        let payload = vec![7u8; 100_000];
        let mut seq = 0;
        while wal.fits(payload.len()) {
            seq += 1;
            wal.append(seq, 0, &payload).unwrap();
        }
        assert_eq!(seq, 10, "ten 100 kB records fit under a 1 MiB cap");
        let on_disk = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert_eq!(on_disk, GROW_BYTES);
        drop(wal);
        assert_eq!(reopen(dir.path(), 0).1.len(), 10);
    }
}
