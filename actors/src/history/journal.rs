//! The local journal: an append-only file of length-prefixed, checksummed
//! bincode entries. The persistence writer appends a batch here when Postgres
//! is slow, down or absent, and replays the file into Postgres in order once
//! it is back.
//!
//! File format: a sequence of entries, each
//!
//! ```text
//! [len: u32 LE][crc32 of payload: u32 LE][payload: len bytes, bincode 2 standard]
//! ```
//!
//! A crash can leave the last entry half written (torn): opening a journal
//! stops at the first entry whose header is incomplete, whose length is out
//! of bounds, whose payload is short or whose checksum does not match, logs a
//! warning, and truncates the file there. A torn tail is never fatal.
//!
//! This module must never panic on file contents: everything read from disk
//! is bounded and checked before it is decoded. It is also the only place
//! that knows the on-disk encoding, so bincode can be swapped here alone.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

/// Header size of an entry: length and checksum.
pub const HEADER_BYTES: usize = 8;
/// Largest payload one entry may hold; a bigger length is treated as corruption.
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

type Limited = Configuration<LittleEndian, Varint, Limit<MAX_ENTRY_BYTES>>;

fn codec() -> Limited {
    bincode::config::standard().with_limit::<MAX_ENTRY_BYTES>()
}

/// When appended entries are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append: an appended batch survives a power loss.
    Always,
    /// `fdatasync` at most once per interval (checked on append and by the
    /// writer's timer): a power loss may lose the last interval.
    Periodic(Duration),
    /// Leave it to the OS: a process crash loses nothing, a power loss may
    /// lose whatever the kernel had not written back.
    Never,
}

impl FsyncPolicy {
    /// Parses `always`, `periodic` (with `interval`) or `never`.
    pub fn parse(s: &str, interval: Duration) -> Option<Self> {
        match s {
            "always" => Some(FsyncPolicy::Always),
            "periodic" => Some(FsyncPolicy::Periodic(interval)),
            "never" => Some(FsyncPolicy::Never),
            _ => None,
        }
    }
}

/// Errors of the journal layer.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal entry of {0} bytes is larger than the limit")]
    TooLarge(usize),
    #[error("journal entry at offset {offset} does not decode: {message}")]
    Decode { offset: u64, message: String },
}

/// What opening (recovering) a journal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Valid entries in the file.
    pub entries: u64,
    /// Length of the valid prefix (the file's length after recovery).
    pub valid_bytes: u64,
    /// Bytes of torn or corrupt tail that were dropped (0 if none).
    pub torn_bytes: u64,
}

/// Why a scan stopped before the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    ShortHeader,
    BadLength(u32),
    ShortPayload,
    BadChecksum,
}

/// Encodes one entry (header and payload) for `value`.
pub fn encode_entry<T: bincode::Encode>(value: &T) -> Result<Vec<u8>, JournalError> {
    let mut out = vec![0u8; HEADER_BYTES];
    bincode::encode_into_std_write(value, &mut out, codec()).map_err(|e| JournalError::Decode {
        offset: 0,
        message: e.to_string(),
    })?;
    let len = out.len() - HEADER_BYTES;
    if len > MAX_ENTRY_BYTES {
        return Err(JournalError::TooLarge(len));
    }
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes one payload; all of it must be consumed.
pub fn decode_payload<T: bincode::Decode<()>>(
    payload: &[u8],
    offset: u64,
) -> Result<T, JournalError> {
    let (value, used) =
        bincode::decode_from_slice::<T, _>(payload, codec()).map_err(|e| JournalError::Decode {
            offset,
            message: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(JournalError::Decode {
            offset,
            message: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

/// Reads the next entry's payload from `r`. `Ok(None)` at a clean end of
/// file; `Err(torn)` for an incomplete or corrupt entry.
fn read_entry(r: &mut impl Read) -> io::Result<Result<Option<Vec<u8>>, Torn>> {
    let mut header = [0u8; HEADER_BYTES];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(Ok(None));
    }
    if got < HEADER_BYTES {
        return Ok(Err(Torn::ShortHeader));
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len as usize > MAX_ENTRY_BYTES {
        return Ok(Err(Torn::BadLength(len)));
    }
    let mut payload = vec![0u8; len as usize];
    if read_full(r, &mut payload)? < payload.len() {
        return Ok(Err(Torn::ShortPayload));
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(Err(Torn::BadChecksum));
    }
    Ok(Ok(Some(payload)))
}

/// Like `read_exact`, but returns how much was read before end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads every valid entry of a journal file without changing it (for
/// `matchd journal import`). A torn tail is reported, not an error.
pub fn read_all<T: bincode::Decode<()>>(path: &Path) -> Result<(Vec<T>, Recovery), JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let total = file.metadata().map_err(io_err)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        match read_entry(&mut r).map_err(io_err)? {
            Ok(Some(payload)) => {
                out.push(decode_payload(&payload, offset)?);
                offset += (HEADER_BYTES + payload.len()) as u64;
            }
            Ok(None) => break,
            Err(torn) => {
                log::warn!(path:% = path.display(), offset = offset, torn:? = torn; "journal has a torn or corrupt tail; skipping {} bytes", total - offset);
                break;
            }
        }
    }
    let recovery = Recovery {
        entries: out.len() as u64,
        valid_bytes: offset,
        torn_bytes: total - offset,
    };
    Ok((out, recovery))
}

/// An open journal file, appended to by exactly one writer.
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    fsync: FsyncPolicy,
    last_sync: Instant,
    dirty: bool,
}

impl Journal {
    /// Opens (creating it and its directory if needed) and recovers the
    /// journal: a torn or corrupt tail is logged and truncated away.
    pub fn open(path: &Path, fsync: FsyncPolicy) -> Result<(Self, Recovery), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err)?;
        let total = file.metadata().map_err(io_err)?.len();
        let mut r = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_err)?);
        let (mut entries, mut valid) = (0u64, 0u64);
        let torn = loop {
            match read_entry(&mut r).map_err(io_err)? {
                Ok(Some(payload)) => {
                    entries += 1;
                    valid += (HEADER_BYTES + payload.len()) as u64;
                }
                Ok(None) => break None,
                Err(torn) => break Some(torn),
            }
        };
        let torn_bytes = total - valid;
        if let Some(torn) = torn {
            log::warn!(path:% = path.display(), offset = valid, torn:? = torn; "journal has a torn or corrupt tail; skipping and truncating {torn_bytes} bytes");
            file.set_len(valid).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        let journal = Self {
            path: path.to_path_buf(),
            file,
            len: valid,
            fsync,
            last_sync: Instant::now(),
            dirty: false,
        };
        Ok((
            journal,
            Recovery {
                entries,
                valid_bytes: valid,
                torn_bytes,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn io_err(&self, source: io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one encoded entry (from [`encode_entry`]) in one write, then
    /// syncs as the policy says. Returns the bytes appended.
    pub fn append_encoded(&mut self, entry: &[u8]) -> Result<u64, JournalError> {
        if let Err(e) = self.file.write_all(entry) {
            // A partial write leaves a torn entry: cut it off so later
            // appends stay readable.
            let _ = self.file.set_len(self.len);
            return Err(self.io_err(e));
        }
        self.len += entry.len() as u64;
        self.dirty = true;
        match self.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Periodic(every) if self.last_sync.elapsed() >= every => self.sync()?,
            _ => {}
        }
        Ok(entry.len() as u64)
    }

    /// Encodes and appends `value` as one entry.
    pub fn append<T: bincode::Encode>(&mut self, value: &T) -> Result<u64, JournalError> {
        let entry = encode_entry(value)?;
        self.append_encoded(&entry)
    }

    /// Syncs if the periodic policy's interval has passed (called by a timer).
    pub fn tick(&mut self) -> Result<(), JournalError> {
        if let FsyncPolicy::Periodic(every) = self.fsync {
            if self.dirty && self.last_sync.elapsed() >= every {
                self.sync()?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        self.file.sync_data().map_err(|e| self.io_err(e))?;
        self.last_sync = Instant::now();
        self.dirty = false;
        Ok(())
    }

    /// Reads whole entries from `offset` until at least `min_items` items
    /// (as counted by `count`) or `max_bytes` bytes were read, or the end.
    /// Returns the decoded entries and the offset after the last one.
    pub fn read_from<T: bincode::Decode<()>>(
        &self,
        offset: u64,
        min_items: usize,
        max_bytes: u64,
        count: impl Fn(&T) -> usize,
    ) -> Result<(Vec<T>, u64), JournalError> {
        let mut out = Vec::new();
        let (mut at, mut items) = (offset, 0usize);
        let mut header = [0u8; HEADER_BYTES];
        while at < self.len && items < min_items && at - offset < max_bytes {
            self.file
                .read_exact_at(&mut header, at)
                .map_err(|e| self.io_err(e))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len == 0 || len > MAX_ENTRY_BYTES || at + (HEADER_BYTES + len) as u64 > self.len {
                return Err(JournalError::Decode {
                    offset: at,
                    message: format!("bad entry length {len}"),
                });
            }
            let mut payload = vec![0u8; len];
            self.file
                .read_exact_at(&mut payload, at + HEADER_BYTES as u64)
                .map_err(|e| self.io_err(e))?;
            if crc32fast::hash(&payload) != crc {
                return Err(JournalError::Decode {
                    offset: at,
                    message: "checksum mismatch".into(),
                });
            }
            let value: T = decode_payload(&payload, at)?;
            items += count(&value);
            out.push(value);
            at += (HEADER_BYTES + len) as u64;
        }
        Ok((out, at))
    }

    /// Empties the journal once everything in it is safely elsewhere.
    pub fn clear(&mut self) -> Result<(), JournalError> {
        self.file.set_len(0).map_err(|e| self.io_err(e))?;
        self.file.sync_all().map_err(|e| self.io_err(e))?;
        self.len = 0;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "matchd-journal-{name}-{}-{:x}",
                std::process::id(),
                crate::util::random_u64()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn batch(n: u64) -> Vec<(u64, String)> {
        (0..n).map(|i| (i, format!("row {i}"))).collect()
    }

    fn write_three(path: &Path) -> u64 {
        let (mut j, rec) = Journal::open(path, FsyncPolicy::Always).expect("open");
        assert_eq!(rec, Recovery::default());
        for n in 1..=3 {
            j.append(&batch(n)).expect("append");
        }
        j.len()
    }

    fn reopen(path: &Path) -> (Journal, Recovery, Vec<Vec<(u64, String)>>) {
        let (j, rec) = Journal::open(path, FsyncPolicy::Never).expect("reopen");
        let (all, end) = j
            .read_from::<Vec<(u64, String)>>(0, usize::MAX, u64::MAX, Vec::len)
            .expect("read");
        assert_eq!(end, j.len());
        (j, rec, all)
    }

    #[test]
    fn entries_round_trip_in_order() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("j.log");
        let len = write_three(&path);
        let (_, rec, all) = reopen(&path);
        assert_eq!(rec.entries, 3);
        assert_eq!(rec.valid_bytes, len);
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(all, vec![batch(1), batch(2), batch(3)]);
    }

    #[test]
    fn read_from_stops_after_enough_items_and_resumes() {
        let dir = TempDir::new("resume");
        let path = dir.0.join("j.log");
        write_three(&path);
        let (j, _, _) = reopen(&path);
        let (first, at) = j
            .read_from::<Vec<(u64, String)>>(0, 2, u64::MAX, Vec::len)
            .expect("read");
        assert_eq!(first, vec![batch(1), batch(2)], "1 + 2 rows >= 2");
        let (rest, end) = j
            .read_from::<Vec<(u64, String)>>(at, 100, u64::MAX, Vec::len)
            .expect("read");
        assert_eq!(rest, vec![batch(3)]);
        assert_eq!(end, j.len());
    }

    /// Every way the last entry can be cut or damaged: it is skipped, the
    /// file is truncated to the valid prefix, and appending works again.
    #[test]
    fn a_torn_or_corrupt_tail_is_skipped_and_truncated() {
        let dir = TempDir::new("torn");
        let path = dir.0.join("j.log");
        let full = write_three(&path);
        let bytes = std::fs::read(&path).expect("read");
        let last_len = encode_entry(&batch(3)).expect("enc").len() as u64;
        let two = full - last_len;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("short header", bytes[..(two + 3) as usize].to_vec()),
            ("short payload", bytes[..(full - 2) as usize].to_vec()),
            ("bad checksum", {
                let mut b = bytes.clone();
                let i = b.len() - 1;
                b[i] ^= 0xff;
                b
            }),
            ("absurd length", {
                let mut b = bytes[..two as usize].to_vec();
                b.extend_from_slice(&u32::MAX.to_le_bytes());
                b.extend_from_slice(&[0; 12]);
                b
            }),
            ("zero garbage", {
                let mut b = bytes[..two as usize].to_vec();
                b.extend_from_slice(&[0; 40]);
                b
            }),
        ];
        for (name, content) in cases {
            std::fs::write(&path, &content).expect("write");
            let (mut j, rec, all) = reopen(&path);
            assert_eq!(rec.entries, 2, "{name}");
            assert_eq!(rec.valid_bytes, two, "{name}");
            assert_eq!(rec.torn_bytes, content.len() as u64 - two, "{name}");
            assert_eq!(all, vec![batch(1), batch(2)], "{name}");
            assert_eq!(
                std::fs::metadata(&path).expect("meta").len(),
                two,
                "{name}: truncated"
            );
            j.append(&batch(4)).expect("append after recovery");
            let (_, rec, all) = reopen(&path);
            assert_eq!(rec.torn_bytes, 0, "{name}");
            assert_eq!(all, vec![batch(1), batch(2), batch(4)], "{name}");
        }
    }

    #[test]
    fn a_slice_appended_reads_back_as_a_vec() {
        // The writer journals its buffer in chunks (`&[Record]`) and
        // replays entries as `Vec<Record>`: one wire format.
        let dir = TempDir::new("slices");
        let path = dir.0.join("j.log");
        let (mut j, _) = Journal::open(&path, FsyncPolicy::Never).expect("open");
        let rows = batch(5);
        for part in rows.chunks(2) {
            j.append(&part).expect("append");
        }
        drop(j);
        let (_, _, all) = reopen(&path);
        assert_eq!(all, vec![batch(2), rows[2..4].to_vec(), rows[4..].to_vec()]);
    }

    #[test]
    fn read_all_reports_a_torn_tail_without_changing_the_file() {
        let dir = TempDir::new("readall");
        let path = dir.0.join("j.log");
        let full = write_three(&path);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[7, 0, 0, 0, 1, 2]).expect("garbage");
        drop(f);
        let (all, rec) = read_all::<Vec<(u64, String)>>(&path).expect("read_all");
        assert_eq!(all, vec![batch(1), batch(2), batch(3)]);
        assert_eq!((rec.valid_bytes, rec.torn_bytes), (full, 6));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), full + 6);
    }

    #[test]
    fn clear_empties_the_file() {
        let dir = TempDir::new("clear");
        let path = dir.0.join("j.log");
        write_three(&path);
        let (mut j, _, _) = reopen(&path);
        j.clear().expect("clear");
        assert!(j.is_empty());
        j.append(&batch(5)).expect("append");
        let (_, _, all) = reopen(&path);
        assert_eq!(all, vec![batch(5)]);
    }

    #[test]
    fn fsync_policies_parse() {
        let d = Duration::from_millis(100);
        assert_eq!(FsyncPolicy::parse("always", d), Some(FsyncPolicy::Always));
        assert_eq!(
            FsyncPolicy::parse("periodic", d),
            Some(FsyncPolicy::Periodic(d))
        );
        assert_eq!(FsyncPolicy::parse("never", d), Some(FsyncPolicy::Never));
        assert_eq!(FsyncPolicy::parse("sometimes", d), None);
    }
}
