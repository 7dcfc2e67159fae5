//! Civil dates in UTC for what people read (audit rows, letters, certificate dates in
//! messages): the one routine for the whole gateway. Twelve lines of Howard Hinnant's
//! days-from-civil algorithm instead of a date crate: we only ever print a UTC date, never
//! parse one or need a time zone.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), for any day before or after.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-12-30` for unix seconds (UTC).
pub fn utc_day(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-12-30 14:05:09 UTC` (times before 1970 read as 1970).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rem = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        utc_day(secs as i64),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(-86_400), "1969-12-31");
        assert_eq!(utc_day(4_107_542_400), "2100-03-01");
        let at = |secs| UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(utc_timestamp(at(1_798_639_509)), "2026-12-30 14:05:09 UTC");
        assert_eq!(utc_timestamp(at(1_700_000_000)), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_timestamp(at(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_timestamp(at(0)), "1970-01-01 00:00:00 UTC");
    }
}
