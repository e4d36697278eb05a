//! When recurring work runs: a backup schedule (`off`, `daily 03:00`, `weekly sun 03:00`) and a
//! maintenance window for automatic updates (`daily 02:00-05:00`, `sat 01:00-04:00`). Times are wall
//! clock times in a time zone the caller gives (the node's own; the API and the UI name it), with
//! daylight saving time: a slot in the hour skipped in spring runs an hour later on the clock (02:30
//! becomes 03:30), a slot in the hour repeated in autumn runs once, at its first occurrence. Pure: every function
//! takes the time it decides for and the zone.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Serialize, Serializer};
use std::fmt;

const DAY: u64 = 86_400;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A recurring point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Never.
    Off,
    /// Every day at a minute of the day.
    Daily {
        /// Minutes after midnight, wall clock.
        minute: u32,
    },
    /// One day a week.
    Weekly {
        /// 0 = Monday.
        weekday: u32,
        /// Minutes after midnight, wall clock.
        minute: u32,
    },
}

fn parse_hhmm(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time; write HH:MM (24-hour clock), such as 03:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if m.len() != 2 {
        return Err(bad());
    }
    match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn parse_day(text: &str) -> Result<u32, String> {
    DAYS.iter()
        .position(|d| text.eq_ignore_ascii_case(d))
        .map(|i| i as u32)
        .ok_or_else(|| format!("`{text}` is not a day; write one of {}", DAYS.join(", ")))
}

impl Schedule {
    /// Reads `off`, `daily HH:MM` or `weekly <day> HH:MM`.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["off"] => Ok(Schedule::Off),
            ["daily", t] => Ok(Schedule::Daily {
                minute: parse_hhmm(t)?,
            }),
            ["weekly", d, t] => Ok(Schedule::Weekly {
                weekday: parse_day(d)?,
                minute: parse_hhmm(t)?,
            }),
            _ => Err(format!(
                "`{text}` is not a schedule; write `off`, `daily HH:MM` or `weekly <day> HH:MM`, such as `daily 03:00`"
            )),
        }
    }

    /// The latest scheduled time at or before `now` (seconds since the epoch), on the wall clock of
    /// `tz`.
    pub fn last_slot(&self, now: u64, tz: &TimeZone) -> Option<u64> {
        let (minute, period, back) = match *self {
            Schedule::Off => return None,
            Schedule::Daily { minute } => (minute, 1, 0),
            Schedule::Weekly { weekday, minute } => {
                let today = local_date(now, tz)?.weekday().to_monday_zero_offset();
                (minute, 7, (i64::from(today) + 7 - i64::from(weekday)) % 7)
            }
        };
        let day = local_date(now, tz)?.checked_sub(back.days()).ok()?;
        let slot = instant(day, minute, tz)?;
        if slot <= now {
            return Some(slot);
        }
        instant(day.checked_sub(period.days()).ok()?, minute, tz)
    }

    /// Is a run due at `now`, when the last one was at `last` (seconds)? A slot missed while the
    /// service was down is made up within a day of it.
    pub fn due(&self, last: Option<u64>, now: u64, tz: &TimeZone) -> bool {
        match self.last_slot(now, tz) {
            Some(slot) => now - slot < DAY && last.is_none_or(|l| l < slot),
            None => false,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        match *self {
            Schedule::Off => f.write_str("off"),
            Schedule::Daily { minute } => write!(f, "daily {}", hm(minute)),
            Schedule::Weekly { weekday, minute } => {
                write!(f, "weekly {} {}", DAYS[weekday as usize % 7], hm(minute))
            }
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A maintenance window: `daily HH:MM-HH:MM` or `<day> HH:MM-HH:MM` (wall clock; it may pass
/// midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `None`: every day; else 0 = Monday.
    pub weekday: Option<u32>,
    /// Start, minutes after midnight, wall clock.
    pub start: u32,
    /// Length in minutes (1..=1440).
    pub minutes: u32,
}

impl Window {
    /// Reads `daily 02:00-05:00` or `sat 01:00-04:00`.
    pub fn parse(text: &str) -> Result<Window, String> {
        Window::parse_parts(text).map_err(|why| {
            format!("`{text}` is not a window ({why}); write `daily HH:MM-HH:MM` or `<day> HH:MM-HH:MM`, such as `daily 02:00-05:00`")
        })
    }

    fn parse_parts(text: &str) -> Result<Window, String> {
        let (day, range) = text
            .trim()
            .split_once(' ')
            .ok_or("a day and a time range are needed")?;
        let weekday = if day == "daily" {
            None
        } else {
            Some(parse_day(day)?)
        };
        let (a, b) = range
            .trim()
            .split_once('-')
            .ok_or("the time range needs a `-`")?;
        let (start, end) = (parse_hhmm(a)?, parse_hhmm(b)?);
        let minutes = if end > start {
            end - start
        } else {
            end + 1440 - start
        };
        Ok(Window {
            weekday,
            start,
            minutes,
        })
    }

    /// Is `now` (seconds since the epoch) inside the window, on the wall clock of `tz`? The window
    /// lasts its length in real time from its opening.
    pub fn contains(&self, now: u64, tz: &TimeZone) -> bool {
        let Some(today) = local_date(now, tz) else {
            return false;
        };
        // The window may have opened today or (past midnight) yesterday.
        [0i64, 1].iter().any(|back| {
            let Ok(day) = today.checked_sub(back.days()) else {
                return false;
            };
            let weekday_ok = self
                .weekday
                .is_none_or(|w| i64::from(day.weekday().to_monday_zero_offset()) == i64::from(w));
            let Some(open) = instant(day, self.start, tz) else {
                return false;
            };
            weekday_ok && now >= open && now < open + u64::from(self.minutes) * 60
        })
    }
}

/// The date on the wall clock of `tz` at `now`.
fn local_date(now: u64, tz: &TimeZone) -> Option<Date> {
    let t = Timestamp::from_second(i64::try_from(now).ok()?).ok()?;
    Some(t.to_zoned_datetime(tz.clone()).date())
}

/// `minute` past midnight of `day` on the wall clock of `tz`, in seconds since the epoch: a time
/// skipped by daylight saving time is moved later by the gap, a repeated one is its first
/// occurrence.
fn instant(day: Date, minute: u32, tz: &TimeZone) -> Option<u64> {
    let hour = i8::try_from(minute / 60).ok()?;
    let min = i8::try_from(minute % 60).ok()?;
    let zoned = day.at(hour, min, 0, 0).to_zoned_datetime(tz.clone()).ok()?;
    u64::try_from(zoned.timestamp().as_second()).ok()
}

/// The time zone called `name`: an IANA name (`Europe/Berlin`, from the node's time zone
/// database) or `UTC`.
pub fn named_zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        format!("`{name}` is not a time zone this node knows (its time zone database, tzdata); write an IANA name such as `Europe/Berlin`, or `UTC`")
    })
}

/// A short name for `tz` at `now`: its IANA name (`Europe/Berlin`; `UTC` for UTC's aliases), else
/// its offset from UTC then (`UTC+05:30`, or `UTC`).
pub fn zone_name(tz: &TimeZone, now: u64) -> String {
    match tz.iana_name() {
        Some("Etc/UTC" | "Etc/Universal" | "Etc/Zulu" | "Universal" | "Zulu") => {
            return "UTC".to_string()
        }
        Some(name) => return name.to_string(),
        None => {}
    }
    let offset = i64::try_from(now)
        .ok()
        .and_then(|n| Timestamp::from_second(n).ok())
        .map(|t| tz.to_offset(t))
        .unwrap_or(jiff::tz::Offset::UTC);
    if offset.seconds() == 0 {
        "UTC".to_string()
    } else {
        format!("UTC{offset}")
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = (self.start + self.minutes) % 1440;
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        match self.weekday {
            None => write!(f, "daily {}-{}", hm(self.start), hm(end)),
            Some(d) => write!(f, "{} {}-{}", DAYS[d as usize % 7], hm(self.start), hm(end)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-06 is a Sunday; 12:00 UTC.
    const SUNDAY_NOON: u64 = 1_796_558_400;
    const UTC: TimeZone = TimeZone::UTC;

    /// Central Europe, with its daylight saving time rules (no time zone database needed).
    fn cet() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    #[test]
    fn schedules_read_and_print_back() {
        for text in ["off", "daily 03:00", "weekly sun 23:59"] {
            assert_eq!(Schedule::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "daily 3",
            "daily 24:00",
            "weekly someday 03:00",
            "hourly",
            "daily 03:5",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_run_is_due_once_per_slot() {
        let daily = Schedule::parse("daily 03:00").unwrap();
        let slot = SUNDAY_NOON - 9 * 3600;
        assert_eq!(daily.last_slot(SUNDAY_NOON, &UTC), Some(slot));
        assert!(daily.due(None, SUNDAY_NOON, &UTC));
        assert!(daily.due(Some(slot - 1), SUNDAY_NOON, &UTC));
        assert!(!daily.due(Some(slot + 5), SUNDAY_NOON, &UTC));
        let weekly = Schedule::parse("weekly sun 11:00").unwrap();
        assert_eq!(
            weekly.last_slot(SUNDAY_NOON, &UTC),
            Some(SUNDAY_NOON - 3600)
        );
        let monday = Schedule::parse("weekly mon 11:00").unwrap();
        assert_eq!(
            monday.last_slot(SUNDAY_NOON, &UTC),
            Some(SUNDAY_NOON - 3600 - 6 * DAY)
        );
        // Six days late: not made up any more.
        assert!(!monday.due(None, SUNDAY_NOON, &UTC));
        assert!(!Schedule::Off.due(None, SUNDAY_NOON, &UTC));
    }

    #[test]
    fn slots_are_wall_clock_times_of_the_zone() {
        // 12:00 UTC is 13:00 in Berlin in December: 03:00 there was 02:00 UTC.
        let daily = Schedule::parse("daily 03:00").unwrap();
        assert_eq!(
            daily.last_slot(SUNDAY_NOON, &cet()),
            Some(SUNDAY_NOON - 10 * 3600)
        );
        // Sunday 12:30 in Berlin is 11:30 UTC: a weekly slot at 12:00 Berlin time has passed.
        let weekly = Schedule::parse("weekly sun 12:00").unwrap();
        assert_eq!(
            weekly.last_slot(SUNDAY_NOON - 1800, &cet()),
            Some(SUNDAY_NOON - 3600)
        );
        // A zone east of UTC is already on Monday at 23:30 UTC on Sunday.
        let tokyo = TimeZone::fixed(jiff::tz::offset(9));
        let monday = Schedule::parse("weekly mon 08:00").unwrap();
        let sunday_2330 = SUNDAY_NOON + 11 * 3600 + 1800;
        assert_eq!(
            monday.last_slot(sunday_2330, &tokyo),
            Some(sunday_2330 - 1800)
        );
    }

    #[test]
    fn daylight_saving_time_neither_skips_nor_repeats_a_run() {
        let tz = cet();
        // 2026-03-29: clocks go from 02:00 to 03:00 in Berlin (01:00 UTC). A 02:30 slot runs at
        // 03:30 that day, once.
        let spring = 1_774_746_000; // 2026-03-29 01:00 UTC
        let daily = Schedule::parse("daily 02:30").unwrap();
        assert_eq!(daily.last_slot(spring + 3600, &tz), Some(spring + 1800));
        assert_eq!(
            daily.last_slot(spring + 1799, &tz),
            Some(spring + 1800 - DAY)
        );
        assert!(daily.due(None, spring + 3600, &tz));
        assert!(!daily.due(Some(spring + 1800), spring + 3600, &tz));
        // 2026-10-25: clocks go from 03:00 back to 02:00 (01:00 UTC). 02:30 happens twice; the
        // slot is the first, and the second is not another run.
        let autumn = 1_792_890_000; // 2026-10-25 01:00 UTC
        let first = autumn - 1800; // 02:30 CEST = 00:30 UTC
        assert_eq!(daily.last_slot(autumn + 3600, &tz), Some(first));
        assert!(!daily.due(Some(first), autumn + 1800, &tz));
        // A window opened at 02:00 on that night lasts its length in real time.
        let w = Window::parse("daily 02:00-04:00").unwrap();
        assert!(w.contains(autumn - 3600, &tz)); // 02:00 CEST
        assert!(w.contains(autumn + 3599, &tz));
        assert!(!w.contains(autumn + 3600, &tz));
    }

    #[test]
    fn windows_may_pass_midnight_and_name_a_day() {
        let w = Window::parse("daily 23:00-02:00").unwrap();
        assert_eq!(w.to_string(), "daily 23:00-02:00");
        assert!(w.contains(SUNDAY_NOON + 11 * 3600 + 30 * 60, &UTC)); // 23:30
        assert!(w.contains(SUNDAY_NOON + 13 * 3600, &UTC)); // 01:00 Monday
        assert!(!w.contains(SUNDAY_NOON, &UTC));
        let sun = Window::parse("sun 11:00-13:00").unwrap();
        assert!(sun.contains(SUNDAY_NOON, &UTC));
        assert!(!sun.contains(SUNDAY_NOON + DAY, &UTC));
        // In Berlin 12:00 UTC is 13:00: outside a window that ends at 13:00 there.
        assert!(!sun.contains(SUNDAY_NOON, &cet()));
        assert!(sun.contains(SUNDAY_NOON - 3600, &cet()));
        assert!(Window::parse("daily 02:00").is_err());
        assert!(Window::parse("funday 01:00-02:00").is_err());
    }

    #[test]
    fn zones_are_named() {
        assert_eq!(zone_name(&UTC, SUNDAY_NOON), "UTC");
        assert_eq!(zone_name(&cet(), SUNDAY_NOON), "UTC+01");
        let india = TimeZone::posix("<+0530>-5:30").unwrap();
        assert_eq!(zone_name(&india, SUNDAY_NOON), "UTC+05:30");
    }
}
