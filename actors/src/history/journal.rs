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
//! A crash can leave the last entry half written (torn), and a disk can
//! damage bytes anywhere. Reading skips what is damaged (an incomplete
//! header, a length out of bounds, a short payload, a checksum mismatch) by
//! looking for the next offset where a valid entry starts ([`Scanner`]), so
//! one bad entry never costs the ones after it. Opening a damaged journal
//! keeps the damaged bytes aside for inspection and logs how many were
//! skipped. Damage is never fatal.
//!
//! This module must never panic on file contents: everything read from disk
//! is bounded and checked before it is decoded. It is also the only place
//! that knows the on-disk encoding, so bincode can be swapped here alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Valid entries in the file.
    pub entries: u64,
    /// Length of the valid prefix (the file's length after recovery).
    pub valid_bytes: u64,
    /// Damaged bytes that were skipped (a torn tail, corrupt entries).
    pub torn_bytes: u64,
    /// Where the damaged original was kept for inspection, if anything
    /// was skipped.
    pub aside: Option<PathBuf>,
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

/// One step of a [`Scanner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// A whole entry whose checksum matches.
    Entry { offset: u64, payload: Vec<u8> },
    /// Damaged bytes: no valid entry starts anywhere in them.
    Skipped { offset: u64, bytes: u64 },
}

/// Bytes of the file kept in memory while looking for the next entry.
const WINDOW: usize = 64 * 1024;

/// Walks a journal file entry by entry without loading it. Where an entry
/// is damaged (bad length, short, bad checksum), it looks for the next
/// offset where a valid entry starts and reports the bytes in between as
/// [`Scanned::Skipped`]: one corrupt entry costs that entry, not the rest
/// of the file. The search checksums candidate payloads; to stay bounded on
/// a file of garbage it hashes at most [`Scanner::budget`] bytes, after
/// which the rest of the file counts as skipped.
pub struct Scanner {
    file: File,
    total: u64,
    at: u64,
    window: Vec<u8>,
    window_at: u64,
    budget: u64,
}

impl Scanner {
    pub fn new(file: File) -> io::Result<Self> {
        let total = file.metadata()?.len();
        Ok(Self {
            file,
            total,
            at: 0,
            window: Vec::new(),
            window_at: 0,
            budget: (256 << 20) + total.saturating_mul(2),
        })
    }

    /// The file's length when the scan started.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The header at `at`, from the window (refilled as needed).
    fn header_at(&mut self, at: u64) -> io::Result<Option<[u8; HEADER_BYTES]>> {
        if at + HEADER_BYTES as u64 > self.total {
            return Ok(None);
        }
        let in_window = at >= self.window_at
            && at + HEADER_BYTES as u64 <= self.window_at + self.window.len() as u64;
        if !in_window {
            let len = (self.total - at).min(WINDOW as u64) as usize;
            self.window.resize(len, 0);
            self.file.read_exact_at(&mut self.window, at)?;
            self.window_at = at;
        }
        let i = (at - self.window_at) as usize;
        let mut h = [0u8; HEADER_BYTES];
        h.copy_from_slice(&self.window[i..i + HEADER_BYTES]);
        Ok(Some(h))
    }

    /// The payload of a valid entry at `at`, if one starts there.
    fn entry_at(&mut self, at: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(h) = self.header_at(at)? else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as u64;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len == 0 || len > MAX_ENTRY_BYTES as u64 || at + HEADER_BYTES as u64 + len > self.total {
            return Ok(None);
        }
        self.budget = self.budget.saturating_sub(len);
        let mut payload = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut payload, at + HEADER_BYTES as u64)?;
        Ok((crc32fast::hash(&payload) == crc).then_some(payload))
    }

    /// The next entry or damaged stretch; `None` at the end of the file.
    pub fn next_item(&mut self) -> io::Result<Option<Scanned>> {
        if self.at >= self.total {
            return Ok(None);
        }
        let offset = self.at;
        if let Some(payload) = self.entry_at(offset)? {
            self.at += (HEADER_BYTES + payload.len()) as u64;
            return Ok(Some(Scanned::Entry { offset, payload }));
        }
        let mut k = offset + 1;
        while k + HEADER_BYTES as u64 <= self.total && self.budget > 0 {
            if self.entry_at(k)?.is_some() {
                self.at = k;
                return Ok(Some(Scanned::Skipped {
                    offset,
                    bytes: k - offset,
                }));
            }
            k += 1;
        }
        self.at = self.total;
        Ok(Some(Scanned::Skipped {
            offset,
            bytes: self.total - offset,
        }))
    }
}

/// The entries of a journal file, decoded one at a time (for `matchd
/// journal import`, which must not load a large file at once). Damaged
/// stretches are skipped with a warning and counted in
/// [`Entries::skipped_bytes`]; the file is not changed.
pub struct Entries<T> {
    scanner: Scanner,
    path: PathBuf,
    /// Valid entries read so far.
    pub entries: u64,
    /// Damaged bytes skipped so far.
    pub skipped_bytes: u64,
    _t: std::marker::PhantomData<T>,
}

impl<T: bincode::Decode<()>> Entries<T> {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        Ok(Self {
            scanner: Scanner::new(file).map_err(io_err)?,
            path: path.to_path_buf(),
            entries: 0,
            skipped_bytes: 0,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: bincode::Decode<()>> Iterator for Entries<T> {
    type Item = Result<T, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.scanner.next_item() {
                Err(source) => {
                    return Some(Err(JournalError::Io {
                        path: self.path.clone(),
                        source,
                    }))
                }
                Ok(None) => return None,
                Ok(Some(Scanned::Skipped { offset, bytes })) => {
                    log::warn!(path:% = self.path.display(), offset = offset; "journal: skipping {bytes} damaged bytes");
                    self.skipped_bytes += bytes;
                }
                Ok(Some(Scanned::Entry { offset, payload })) => {
                    self.entries += 1;
                    return Some(decode_payload(&payload, offset));
                }
            }
        }
    }
}

/// Reads every valid entry of a journal file without changing it. A
/// damaged stretch is reported in the [`Recovery`], not an error.
pub fn read_all<T: bincode::Decode<()>>(path: &Path) -> Result<(Vec<T>, Recovery), JournalError> {
    let mut entries = Entries::<T>::open(path)?;
    let out = entries.by_ref().collect::<Result<Vec<T>, _>>()?;
    let recovery = Recovery {
        entries: entries.entries,
        valid_bytes: entries.scanner.total() - entries.skipped_bytes,
        torn_bytes: entries.skipped_bytes,
        aside: None,
    };
    Ok((out, recovery))
}

/// Creates or opens `path` for appending, readable and writable by its
/// owner only (it holds players' history).
fn open_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // A file made by an older version may be wider open. Only a regular
    // file: a journal that is a device or a link to one is left as it is.
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Makes a create, rename or removal in `path`'s directory durable.
pub fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// `path` with `.{what}-{unix ms}` appended: where a damaged journal is
/// kept for inspection.
fn aside_path(path: &Path, what: &str) -> PathBuf {
    let ms = crate::util::unix_ms(std::time::SystemTime::now());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-{ms}"));
    PathBuf::from(name)
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
    /// journal. Damaged bytes are skipped, never what follows them: a torn
    /// tail (the usual crash) is cut off after its bytes were saved next to
    /// the journal; damage before valid entries makes the node keep the
    /// whole original aside (`journal.log.damaged-{ms}`) and rewrite the
    /// journal from its valid entries. Both are logged and reported in the
    /// [`Recovery`]. The file is private to its owner; its directory is
    /// synced after a create or rename.
    pub fn open(path: &Path, fsync: FsyncPolicy) -> Result<(Self, Recovery), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let existed = path.exists();
        let file = open_private(path).map_err(io_err)?;
        if !existed {
            sync_dir_of(path).map_err(io_err)?;
        }
        let mut scan = Scanner::new(file.try_clone().map_err(io_err)?).map_err(io_err)?;
        let total = scan.total();
        let (mut entries, mut skipped, mut damage_before_entries) = (0u64, 0u64, false);
        let mut first_skip = None;
        while let Some(item) = scan.next_item().map_err(io_err)? {
            match item {
                Scanned::Entry { .. } => {
                    entries += 1;
                    damage_before_entries |= skipped > 0;
                }
                Scanned::Skipped { offset, bytes } => {
                    log::warn!(path:% = path.display(), offset = offset; "journal: {bytes} damaged bytes skipped");
                    first_skip.get_or_insert(offset);
                    skipped += bytes;
                }
            }
        }
        let mut recovery = Recovery {
            entries,
            valid_bytes: total - skipped,
            torn_bytes: skipped,
            aside: None,
        };
        let file = match first_skip {
            None => file,
            Some(tail) if !damage_before_entries => {
                // A torn tail: keep its bytes for inspection, cut it off.
                let aside = aside_path(path, "torn");
                let mut torn = vec![0u8; (total - tail) as usize];
                file.read_exact_at(&mut torn, tail).map_err(io_err)?;
                std::fs::write(&aside, &torn).map_err(io_err)?;
                file.set_len(tail).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                sync_dir_of(path).map_err(io_err)?;
                log::warn!(path:% = path.display(), aside:% = aside.display(); "journal had a torn tail of {skipped} bytes: cut off, saved aside");
                recovery.aside = Some(aside);
                file
            }
            Some(_) => {
                let aside = aside_path(path, "damaged");
                let file = Self::rewrite(path, file, &aside).map_err(io_err)?;
                log::error!(path:% = path.display(), aside:% = aside.display(), entries = entries; "journal was damaged: {skipped} bytes skipped, the valid entries after them kept; the original is kept aside");
                recovery.aside = Some(aside);
                file
            }
        };
        let journal = Self {
            path: path.to_path_buf(),
            file,
            len: recovery.valid_bytes,
            fsync,
            last_sync: Instant::now(),
            dirty: false,
        };
        Ok((journal, recovery))
    }

    /// Writes the valid entries of `damaged` (open at `path`) to a fresh
    /// file, keeps the original at `aside` and puts the fresh one at
    /// `path`; every step durable before the next.
    fn rewrite(path: &Path, damaged: File, aside: &Path) -> io::Result<File> {
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".rewrite");
        let tmp = PathBuf::from(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let mut out = std::io::BufWriter::new(open_private(&tmp)?);
        let mut scan = Scanner::new(damaged)?;
        while let Some(item) = scan.next_item()? {
            if let Scanned::Entry { payload, .. } = item {
                out.write_all(&(payload.len() as u32).to_le_bytes())?;
                out.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
                out.write_all(&payload)?;
            }
        }
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        std::fs::rename(path, aside)?;
        std::fs::rename(&tmp, path)?;
        sync_dir_of(path)?;
        Ok(out)
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
        assert_eq!(rec.entries, 0);
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
            let aside = rec.aside.clone().expect("the torn bytes are kept");
            assert_eq!(
                std::fs::read(&aside).expect("aside"),
                content[two as usize..],
                "{name}"
            );
            std::fs::remove_file(aside).expect("rm");
            j.append(&batch(4)).expect("append after recovery");
            let (_, rec, all) = reopen(&path);
            assert_eq!(rec.torn_bytes, 0, "{name}");
            assert_eq!(all, vec![batch(1), batch(2), batch(4)], "{name}");
        }
    }

    /// Damage in the middle costs the damaged entry only: the entries after
    /// it are kept, the original is kept aside, and the rewritten journal
    /// reads cleanly and takes appends.
    #[test]
    fn a_corrupt_entry_in_the_middle_is_skipped_and_the_rest_kept() {
        let dir = TempDir::new("middle");
        let path = dir.0.join("j.log");
        write_three(&path);
        let original = std::fs::read(&path).expect("read");
        let first = encode_entry(&batch(1)).expect("enc").len();
        for (name, damage) in [
            ("flipped payload byte", 0usize),
            ("flipped length byte", 1),
            ("zeroed entry", 2),
        ] {
            let mut bytes = original.clone();
            let second = encode_entry(&batch(2)).expect("enc").len();
            match damage {
                0 => bytes[first + HEADER_BYTES + 3] ^= 0x40,
                1 => bytes[first + 1] ^= 0x01,
                _ => bytes[first..first + second].fill(0),
            }
            std::fs::write(&path, &bytes).expect("write");
            let (mut j, rec, all) = reopen(&path);
            assert_eq!(all, vec![batch(1), batch(3)], "{name}");
            assert_eq!(rec.entries, 2, "{name}");
            assert_eq!(rec.torn_bytes, second as u64, "{name}");
            let aside = rec.aside.clone().expect("kept aside");
            assert_eq!(std::fs::read(&aside).expect("aside"), bytes, "{name}");
            std::fs::remove_file(aside).expect("rm");
            j.append(&batch(4)).expect("append");
            let (_, rec, all) = reopen(&path);
            assert_eq!((rec.torn_bytes, rec.aside), (0, None), "{name}");
            assert_eq!(all, vec![batch(1), batch(3), batch(4)], "{name}");
            std::fs::write(&path, &original).expect("restore");
        }
    }

    #[test]
    fn the_journal_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let path = dir.0.join("j.log");
        std::fs::write(&path, b"").expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_three(&path);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_file_of_garbage_is_skipped_whole_in_bounded_time() {
        let dir = TempDir::new("garbage");
        let path = dir.0.join("j.log");
        // Lengths that look plausible everywhere: the worst case for the
        // search for the next entry.
        let garbage: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 50_000 + 1).to_le_bytes())
            .collect();
        std::fs::write(&path, &garbage).expect("write");
        let mut entries = Entries::<Vec<(u64, String)>>::open(&path).expect("open");
        assert!(entries.next().is_none());
        assert_eq!(entries.skipped_bytes, garbage.len() as u64);
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
