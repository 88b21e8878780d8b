//! UTC days: the time half of a partition key.

use crate::error::{invalid, Result};
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A UTC calendar day, stored as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

const SECS_PER_DAY: i64 = 86_400;

impl Day {
    /// The UTC day containing unix time `secs`.
    pub fn from_timestamp(secs: i64) -> Day {
        Day(secs.div_euclid(SECS_PER_DAY) as i32)
    }

    /// Unix time of this day's first second.
    pub fn start(self) -> i64 {
        self.0 as i64 * SECS_PER_DAY
    }

    /// Unix time of this day's last second.
    pub fn end(self) -> i64 {
        self.start() + SECS_PER_DAY - 1
    }

    /// Today in UTC.
    pub fn today() -> Day {
        Day::from_timestamp(chrono::Utc::now().timestamp())
    }

    fn date(self) -> Option<NaiveDate> {
        NaiveDate::from_num_days_from_ce_opt(self.0.checked_add(719_163)?)
    }
}

impl FromStr for Day {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Day> {
        let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|e| invalid(format!("invalid day {s:?}: expected YYYY-MM-DD ({e})")))?;
        Ok(Day(chrono::Datelike::num_days_from_ce(&d) - 719_163))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date() {
            Some(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            // Unreachable for validated rows (see `check_timestamp`); never panic in Display.
            None => write!(f, "day#{}", self.0),
        }
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Day, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Unix seconds of 0001-01-01 and of 9999-12-31T23:59:59: the range rows may carry.
pub const TIMESTAMP_RANGE: (i64, i64) = (-62_135_596_800, 253_402_300_799);

/// Checks that a timestamp lies in years 1..=9999 (a nanosecond or millisecond value given
/// as seconds does not).
pub fn check_timestamp(t: i64) -> Result<()> {
    if (TIMESTAMP_RANGE.0..=TIMESTAMP_RANGE.1).contains(&t) {
        Ok(())
    } else {
        Err(invalid(format!(
            "timestamp {t} is outside years 1..9999 (it must be unix seconds, not milliseconds or nanoseconds)"
        )))
    }
}

/// Parses a timestamp given as RFC 3339 text (`2023-11-19T08:30:00Z`), unix seconds (`1700382600`),
/// or a bare day (`2023-11-19`, meaning its midnight UTC).
pub fn parse_timestamp(s: &str) -> Result<i64> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Ok(f.floor() as i64);
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp());
    }
    if let Ok(d) = t.parse::<Day>() {
        return Ok(d.start());
    }
    Err(invalid(format!(
        "unparsable timestamp {s:?}: expected RFC 3339 (2023-11-19T08:30:00Z), unix seconds, or YYYY-MM-DD"
    )))
}

/// Parses an age such as `400d`, `12w`, `36h` into seconds.
pub fn parse_age(s: &str) -> Result<i64> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| invalid(format!("invalid age {s:?}: expected e.g. 30d, 12w, 36h")))?;
    let too_big = || invalid(format!("age {s:?} is too large"));
    let mult = match unit {
        "d" | "" => SECS_PER_DAY,
        "w" => 7 * SECS_PER_DAY,
        "h" => 3600,
        "y" => 365 * SECS_PER_DAY,
        _ => return Err(invalid(format!("invalid age {s:?}: unit must be h, d, w or y"))),
    };
    let secs = n.checked_mul(mult).ok_or_else(too_big)?;
    if secs > 10_000 * 365 * SECS_PER_DAY {
        return Err(too_big());
    }
    Ok(secs)
}

/// The first day of the last `secs` seconds up to the end of `today`, in whole days (at least one).
pub fn days_back(today: Day, secs: i64) -> Day {
    let days = (secs + SECS_PER_DAY - 1) / SECS_PER_DAY;
    Day(today.0 - (days.max(1) as i32) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_derive_from_timestamps() {
        let d: Day = "2023-11-19".parse().unwrap();
        assert_eq!(d.to_string(), "2023-11-19");
        assert_eq!(Day::from_timestamp(d.start()), d);
        assert_eq!(Day::from_timestamp(d.end()), d);
        assert_eq!(Day::from_timestamp(d.end() + 1).to_string(), "2023-11-20");
        assert_eq!(Day::from_timestamp(-1).to_string(), "1969-12-31");
        assert_eq!(parse_timestamp("2023-11-19T23:59:59Z").unwrap(), d.end());
        assert_eq!(
            parse_timestamp("2023-11-20T01:00:00+02:00").unwrap(),
            d.end() + 1 - 3600
        );
        assert_eq!(parse_timestamp("1700352000").unwrap(), 1_700_352_000);
        assert!(parse_timestamp("yesterday")
            .unwrap_err()
            .to_string()
            .contains("yesterday"));
        assert!("2023-13-01".parse::<Day>().is_err());
        assert_eq!(parse_age("400d").unwrap(), 400 * 86_400);
        assert!(parse_age("4x").is_err());
        assert!(parse_age("30000000000d").is_err());
        assert_eq!(days_back(d, 12 * 3600), d);
        assert_eq!(days_back(d, 30 * 86_400).to_string(), "2023-10-21");
        assert!(check_timestamp(1_700_000_000_000_000_000).is_err());
        assert!(check_timestamp(d.start()).is_ok());
        assert_eq!(Day(i32::MAX).to_string(), format!("day#{}", i32::MAX));
    }
}
