//! Deflate streams (zip entries, PDF `FlateDecode`) inflated with one decompressor per thread,
//! reset between streams. A fresh decompressor is a 43 KB state built and zeroed for every
//! stream — a third of the time spent on a message with a DOCX or a PDF attached.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

thread_local! {
    static RAW: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    static ZLIB: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// What came out of a stream.
pub(crate) struct Inflated {
    /// The data, at most `limit` bytes.
    pub data: Vec<u8>,
    /// Whether the stream ended properly (not broken, not cut short, not stopped by the limit).
    pub complete: bool,
}

/// Inflates `input` (raw deflate, or with the zlib wrapper when `zlib`), producing at most
/// `limit` bytes: a caller that wants to notice an overrun asks for one byte more than it
/// allows. Broken data yields what came out before the fault.
pub(crate) fn inflate(input: &[u8], zlib: bool, limit: usize) -> Inflated {
    let cell = if zlib { &ZLIB } else { &RAW };
    cell.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match slot.as_mut() {
            Some(d) => {
                d.reset(zlib);
                d
            }
            None => slot.insert(Decompress::new(zlib)),
        };
        run(d, input, limit)
    })
}

fn run(d: &mut Decompress, mut input: &[u8], limit: usize) -> Inflated {
    // The decompressor writes only into spare capacity, and capacity is never asked past the
    // limit. Deflate rarely expands text more than 4x: start there and grow as needed.
    let mut data: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(4).max(64).min(limit));
    loop {
        if data.len() >= limit {
            data.truncate(limit);
            return Inflated {
                data,
                complete: false,
            };
        }
        if data.len() == data.capacity() {
            data.reserve_exact(data.len().max(4096).min(limit - data.len()));
        }
        let (in_before, out_before) = (d.total_in(), data.len());
        let status = d.decompress_vec(input, &mut data, FlushDecompress::None);
        let used = usize::try_from(d.total_in() - in_before).unwrap_or(input.len());
        input = input.get(used..).unwrap_or_default();
        match status {
            Ok(Status::StreamEnd) if data.len() <= limit => {
                return Inflated {
                    data,
                    complete: true,
                }
            }
            // Past the limit (an allocator that gave more room than asked): cut at the top.
            Ok(Status::StreamEnd) => {}
            Ok(_) if used > 0 || data.len() > out_before => {}
            // No progress: the input ended before the stream did, or the data is broken.
            _ => {
                return Inflated {
                    data,
                    complete: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflated(data: &[u8], zlib: bool) -> Vec<u8> {
        if zlib {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }

    #[test]
    fn streams_in_a_row_each_come_out_whole() {
        let texts: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                (0..(i * 37_000 + 5))
                    .map(|j| b"ab cd\n0123"[(j * 7 + i) % 10])
                    .collect()
            })
            .collect();
        for zlib in [false, true] {
            for t in &texts {
                let got = inflate(&deflated(t, zlib), zlib, usize::MAX);
                assert!(got.complete);
                assert_eq!(&got.data, t);
            }
        }
    }

    #[test]
    fn the_limit_holds_and_broken_data_keeps_what_came_before() {
        let t: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let z = deflated(&t, true);
        let got = inflate(&z, true, 100_001);
        assert_eq!(got.data.len(), 100_001);
        assert!(!got.complete);
        assert_eq!(&got.data[..], &t[..100_001]);
        // Cut short: a prefix, not complete; and the next stream is unaffected.
        let cut = inflate(&z[..z.len() / 2], true, usize::MAX);
        assert!(!cut.complete);
        assert!(!cut.data.is_empty() && t.starts_with(&cut.data));
        let garbage = inflate(b"\x78\x9c\xff\xff\xff\xff garbage", true, 1000);
        assert!(!garbage.complete);
        let again = inflate(&z, true, usize::MAX);
        assert!(again.complete);
        assert_eq!(again.data, t);
    }
}
