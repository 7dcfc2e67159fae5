//! Bounded line reading for both SMTP directions: a line longer than the limit is consumed and
//! reported, never buffered whole, so no client can make us hold an unbounded line.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A complete line (with its terminator) was appended to the buffer.
    Complete,
    /// The line exceeded the limit; it was consumed up to its end and not kept.
    TooLong,
    /// The peer closed the connection (a partial line is discarded).
    Eof,
}

/// Reads one line ending in LF into `buf` (cleared first), keeping at most `max` bytes.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The line without its CRLF or LF.
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_consumed_not_kept() {
        let input = b"short\r\nxxxxxxxxxxxxxxxxxxxx\r\nnext\r\npartial".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Line::Complete
        );
        assert_eq!(buf, b"short\r\n");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Line::TooLong
        );
        assert!(buf.is_empty());
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Line::Complete
        );
        assert_eq!(trim_eol(&buf), b"next");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Line::Eof);
    }
}
