//! Civil dates in UTC for what people read (audit rows, letters, certificate dates in
//! messages), and the one date an operator types (`--at`, an RFC 3339 time to check
//! certificates at): the one routine for the whole gateway. Howard Hinnant's algorithms both
//! ways instead of a date crate: no time zones beyond a numeric offset are ever needed.

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

/// (year, month 1..=12, day 1..=31) → days since 1970-01-01 (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2019-06-01T12:00:00Z`, `2019-06-01T14:00:00+02:00`, fractions of a
/// second ignored) or a bare date (`2019-06-01`, midnight UTC). `None` for anything else,
/// including a day the month does not have and times before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let (y, m, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || date.len() != 10 || !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let (m, d) = (m as u32, d as u32);
    // The day must exist: it survives the round trip.
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let mut secs = days * 86_400;
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else {
            let at = t.rfind(['+', '-'])?;
            let (c, o) = t.split_at(at);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o.get(1..)?.split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            (c, sign * (oh * 3600 + om * 60))
        };
        let clock = clock.split('.').next()?;
        let mut cp = clock.split(':');
        let (h, mi, se) = (num(cp.next()?)?, num(cp.next()?)?, num(cp.next()?)?);
        if cp.next().is_some() || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se - offset;
    }
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// `2026-12-30` for unix seconds (UTC).
pub fn utc_day(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-12-30 14:05 UTC`: a day and minute, as letters and listings show times.
pub fn utc_minute(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        utc_day(unix),
        secs / 3600,
        secs % 3600 / 60
    )
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
    fn rfc3339_times_are_read_and_bad_ones_refused() {
        let secs =
            |s: &str| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2019-06-01"), Some(1_559_347_200));
        assert_eq!(secs("2019-06-01T00:00:00Z"), Some(1_559_347_200));
        assert_eq!(secs("2019-06-01T02:00:00.5+02:00"), Some(1_559_347_200));
        assert_eq!(secs("2019-05-31T22:30:00-01:30"), Some(1_559_347_200));
        assert_eq!(secs("2024-02-29"), Some(1_709_164_800));
        for bad in [
            "",
            "2019-6-1",
            "2019-06-31",
            "2023-02-29",
            "2019-13-01",
            "2019-06-01T24:00:00Z",
            "2019-06-01T12:00Z",
            "2019-06-01T12:00:00",
            "1969-12-31T23:59:59Z",
            "20190601",
            "2019-06-01T12:00:00+2",
            "٢٠١٩-06-01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        for days in [-1000_i64, 0, 18_000, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

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
