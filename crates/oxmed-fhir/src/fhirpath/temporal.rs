//! Dates, dateTimes, instants and times as FHIR JSON writes them, compared the FHIRPath way:
//! precision by precision from the year (or the hour for a time), the result unknown when one
//! value stops before the other has differed, and values with a time of day moved to UTC first.
//!
//! JSON carries these as strings without a declared type, so the evaluator applies this to two
//! strings that both read as dates (or both as times); any other strings compare as text.

use std::cmp::Ordering;

/// Index of each precision in [`Temporal::parts`].
const YEAR: usize = 0;
const MONTH: usize = 1;
const DAY: usize = 2;
const HOUR: usize = 3;
const MINUTE: usize = 4;
/// Seconds and their fraction are one precision, held in nanoseconds.
const SECOND: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Temporal {
    /// Year, month, day, hour, minute, second in nanoseconds; only `first..end` are given.
    parts: [i64; 6],
    /// `YEAR` for a date or dateTime, `HOUR` for a time of day.
    first: usize,
    /// One past the last precision given.
    end: usize,
    /// The offset from UTC in minutes, when written.
    offset: Option<i64>,
}

impl Temporal {
    /// Reads `YYYY[-MM[-DD[Thh[:mm[:ss[.f+]]][Z|±hh:mm]]]]` or `hh:mm[:ss[.f+]]`.
    pub(crate) fn parse(s: &str) -> Option<Temporal> {
        let b = s.as_bytes();
        if b.get(2) == Some(&b':') {
            return parse_time(b);
        }
        let mut t = Temporal {
            parts: [0, 1, 1, 0, 0, 0],
            first: YEAR,
            end: MONTH,
            offset: None,
        };
        t.parts[YEAR] = digits(b, 0, 4)?;
        let mut i = 4;
        for precision in [MONTH, DAY] {
            if b.get(i) != Some(&b'-') {
                return (i == b.len() && t.in_range()).then_some(t);
            }
            t.parts[precision] = digits(b, i + 1, 2)?;
            t.end = precision + 1;
            i += 3;
        }
        if b.get(i) == Some(&b'T') {
            t.parts[HOUR] = digits(b, i + 1, 2)?;
            t.end = HOUR + 1;
            i = time_rest(b, i + 3, &mut t)?;
            match b.get(i) {
                Some(b'Z') => {
                    t.offset = Some(0);
                    i += 1;
                }
                Some(&sign @ (b'+' | b'-')) => {
                    let hours = digits(b, i + 1, 2)?;
                    if b.get(i + 3) != Some(&b':') {
                        return None;
                    }
                    let minutes = digits(b, i + 4, 2)?;
                    if hours > 14 || minutes > 59 {
                        return None;
                    }
                    let offset = hours * 60 + minutes;
                    t.offset = Some(if sign == b'-' { -offset } else { offset });
                    i += 6;
                }
                _ => {}
            }
        }
        (i == b.len() && t.in_range()).then_some(t)
    }

    fn in_range(&self) -> bool {
        let within = |p: usize, lo: i64, hi: i64| {
            p < self.first || p >= self.end || (lo..=hi).contains(&self.parts[p])
        };
        within(MONTH, 1, 12)
            && within(DAY, 1, 31)
            && within(HOUR, 0, 23)
            && within(MINUTE, 0, 59)
            && within(SECOND, 0, 60_999_999_999)
    }

    /// The same moment in UTC; without a written offset the value is taken to be in UTC.
    fn to_utc(self) -> Temporal {
        let Some(offset) = self.offset.filter(|&o| o != 0) else {
            return self;
        };
        let [y, m, d, h, min, _] = self.parts;
        let total = days_from_civil(y, m, d) * 1440 + h * 60 + min - offset;
        let (y, m, d) = civil_from_days(total.div_euclid(1440));
        let rest = total.rem_euclid(1440);
        let mut t = self;
        t.parts[..SECOND].copy_from_slice(&[y, m, d, rest / 60, rest % 60]);
        t.offset = Some(0);
        t
    }
}

/// FHIRPath comparison of two dates or two times: `None` when they are not comparable (a date
/// and a time) or when one stops at a coarser precision before they differ.
pub(crate) fn compare(a: Temporal, b: Temporal) -> Option<Ordering> {
    if a.first != b.first {
        return None;
    }
    let (a, b) = if a.first == YEAR && a.end > HOUR && b.end > HOUR {
        (a.to_utc(), b.to_utc())
    } else {
        (a, b)
    };
    let common = a.end.min(b.end);
    for p in a.first..common {
        match a.parts[p].cmp(&b.parts[p]) {
            Ordering::Equal => {}
            unequal => return Some(unequal),
        }
    }
    (a.end == b.end).then_some(Ordering::Equal)
}

fn parse_time(b: &[u8]) -> Option<Temporal> {
    let mut t = Temporal {
        parts: [0; 6],
        first: HOUR,
        end: HOUR + 1,
        offset: None,
    };
    t.parts[HOUR] = digits(b, 0, 2)?;
    let i = time_rest(b, 2, &mut t)?;
    // A time of day has at least minutes, so that a bare two-digit string stays a string.
    (i == b.len() && t.end > MINUTE && t.in_range()).then_some(t)
}

/// Reads `[:mm[:ss[.f+]]]` at `i` after the hour; returns the offset after it.
fn time_rest(b: &[u8], mut i: usize, t: &mut Temporal) -> Option<usize> {
    if b.get(i) != Some(&b':') {
        return Some(i);
    }
    t.parts[MINUTE] = digits(b, i + 1, 2)?;
    t.end = MINUTE + 1;
    i += 3;
    if b.get(i) != Some(&b':') {
        return Some(i);
    }
    let seconds = digits(b, i + 1, 2)?;
    i += 3;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Nanoseconds: the first nine digits, padded.
        for k in 0..9 {
            let digit = b
                .get(start + k)
                .filter(|_| start + k < i)
                .map_or(0, |d| d - b'0');
            nanos = nanos * 10 + i64::from(digit);
        }
    }
    t.parts[SECOND] = seconds * 1_000_000_000 + nanos;
    t.end = SECOND + 1;
    Some(i)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    part.iter()
        .all(u8::is_ascii_digit)
        .then(|| part.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Option<Ordering> {
        compare(
            Temporal::parse(a).unwrap_or_else(|| panic!("{a} is a date")),
            Temporal::parse(b).unwrap_or_else(|| panic!("{b} is a date")),
        )
    }

    #[test]
    fn reads_fhir_dates_and_refuses_other_text() {
        for ok in [
            "2020",
            "2020-02",
            "2020-02-29",
            "2020-02-29T10:00:00Z",
            "2020-02-29T10:00:00.123+05:30",
            "2020-02-29T10:00",
            "10:30",
            "10:30:05.5",
        ] {
            assert!(Temporal::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "20",
            "12",
            "abcd",
            "2020-1",
            "2020-13",
            "2020-01-01T",
            "2020-01-01T25:00",
            "2020-01-01T10:00:00.",
            "2020-01-01T10:00:00+0530",
            "8480-6",
            "10:30x",
            "http://loinc.org",
        ] {
            assert!(Temporal::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn compares_precision_by_precision() {
        assert_eq!(cmp("2020-01-01", "2020-01-02"), Some(Ordering::Less));
        assert_eq!(cmp("2021", "2020-12-31"), Some(Ordering::Greater));
        assert_eq!(cmp("2020-01-01", "2020-01-01"), Some(Ordering::Equal));
        // Same up to the coarser precision: unknown.
        assert_eq!(cmp("2020-01", "2020-01-15"), None);
        assert_eq!(cmp("2020-01-01", "2020-01-01T10:00:00Z"), None);
        // Seconds and milliseconds are one precision.
        assert_eq!(
            cmp("2020-01-01T10:00:00Z", "2020-01-01T10:00:00.000Z"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            cmp("2020-01-01T10:00:00.5Z", "2020-01-01T10:00:00.25Z"),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp("10:30", "10:31:00"), Some(Ordering::Less));
        assert_eq!(cmp("10:30", "10:30:00"), None);
        // A date and a time are not comparable.
        assert_eq!(cmp("2020-01-01", "10:30"), None);
    }

    #[test]
    fn moves_times_to_utc_across_day_month_and_year() {
        assert_eq!(
            cmp("2020-01-01T10:00:00Z", "2020-01-01T11:00:00+01:00"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            cmp("2019-12-31T23:30:00-01:00", "2020-01-01T00:30:00Z"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            cmp("2020-03-01T01:00:00+05:30", "2020-02-29T19:30:00Z"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            cmp("2020-01-01T10:00:00+02:00", "2020-01-01T09:00:00Z"),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-800_000, -1, 0, 59, 60, 365, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
