//! When recurring work runs: a backup schedule (`off`, `daily 03:00`, `weekly sun 03:00`) and a
//! maintenance window for automatic updates (`daily 02:00-05:00`, `sat 01:00-04:00`). Times are UTC
//! (the API and the UI say so). Pure: every function takes the time it decides for.

use serde::{Serialize, Serializer};
use std::fmt;

const DAY: u64 = 86_400;
const WEEK: u64 = 7 * DAY;
/// 1970-01-01 was a Thursday: Monday-based weekday of day 0 is 3.
const EPOCH_WEEKDAY: u64 = 3;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A recurring point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Never.
    Off,
    /// Every day at a minute of the day.
    Daily {
        /// Minutes after midnight UTC.
        minute: u32,
    },
    /// One day a week.
    Weekly {
        /// 0 = Monday.
        weekday: u32,
        /// Minutes after midnight UTC.
        minute: u32,
    },
}

fn parse_hhmm(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time; write HH:MM (UTC), such as 03:00");
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
                "`{text}` is not a schedule; write `off`, `daily HH:MM` or `weekly <day> HH:MM` (UTC)"
            )),
        }
    }

    /// The latest scheduled time at or before `now` (seconds since the epoch).
    pub fn last_slot(&self, now: u64) -> Option<u64> {
        match *self {
            Schedule::Off => None,
            Schedule::Daily { minute } => {
                let today = now / DAY * DAY + u64::from(minute) * 60;
                Some(if today <= now {
                    today
                } else {
                    today.checked_sub(DAY)?
                })
            }
            Schedule::Weekly { weekday, minute } => {
                let day = now / DAY;
                let weekday_now = (day + EPOCH_WEEKDAY) % 7;
                let back = (weekday_now + 7 - u64::from(weekday)) % 7;
                let slot = (day - back) * DAY + u64::from(minute) * 60;
                Some(if slot <= now {
                    slot
                } else {
                    slot.checked_sub(WEEK)?
                })
            }
        }
    }

    /// Is a run due at `now`, when the last one was at `last` (seconds)? A slot missed while the
    /// service was down is made up within a day of it.
    pub fn due(&self, last: Option<u64>, now: u64) -> bool {
        match self.last_slot(now) {
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

/// A maintenance window: `daily HH:MM-HH:MM` or `<day> HH:MM-HH:MM` (UTC; it may pass midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `None`: every day; else 0 = Monday.
    pub weekday: Option<u32>,
    /// Start, minutes after midnight UTC.
    pub start: u32,
    /// Length in minutes (1..=1440).
    pub minutes: u32,
}

impl Window {
    /// Reads `daily 02:00-05:00` or `sat 01:00-04:00`.
    pub fn parse(text: &str) -> Result<Window, String> {
        Window::parse_parts(text).map_err(|why| {
            format!("`{text}` is not a window ({why}); write `daily HH:MM-HH:MM` or `<day> HH:MM-HH:MM` (UTC), such as `daily 02:00-05:00`")
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

    /// Is `now` (seconds since the epoch) inside the window?
    pub fn contains(&self, now: u64) -> bool {
        // The window may have opened today or (past midnight) yesterday.
        [0u64, 1].iter().any(|back| {
            let Some(day) = (now / DAY).checked_sub(*back) else {
                return false;
            };
            let weekday_ok = self
                .weekday
                .is_none_or(|w| (day + EPOCH_WEEKDAY) % 7 == u64::from(w));
            let open = day * DAY + u64::from(self.start) * 60;
            weekday_ok && now >= open && now < open + u64::from(self.minutes) * 60
        })
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
        assert_eq!(daily.last_slot(SUNDAY_NOON), Some(slot));
        assert!(daily.due(None, SUNDAY_NOON));
        assert!(daily.due(Some(slot - 1), SUNDAY_NOON));
        assert!(!daily.due(Some(slot + 5), SUNDAY_NOON));
        let weekly = Schedule::parse("weekly sun 11:00").unwrap();
        assert_eq!(weekly.last_slot(SUNDAY_NOON), Some(SUNDAY_NOON - 3600));
        let monday = Schedule::parse("weekly mon 11:00").unwrap();
        assert_eq!(
            monday.last_slot(SUNDAY_NOON),
            Some(SUNDAY_NOON - 3600 - 6 * DAY)
        );
        // Six days late: not made up any more.
        assert!(!monday.due(None, SUNDAY_NOON));
        assert!(!Schedule::Off.due(None, SUNDAY_NOON));
    }

    #[test]
    fn windows_may_pass_midnight_and_name_a_day() {
        let w = Window::parse("daily 23:00-02:00").unwrap();
        assert_eq!(w.to_string(), "daily 23:00-02:00");
        assert!(w.contains(SUNDAY_NOON + 11 * 3600 + 30 * 60)); // 23:30
        assert!(w.contains(SUNDAY_NOON + 13 * 3600)); // 01:00 Monday
        assert!(!w.contains(SUNDAY_NOON));
        let sun = Window::parse("sun 11:00-13:00").unwrap();
        assert!(sun.contains(SUNDAY_NOON));
        assert!(!sun.contains(SUNDAY_NOON + DAY));
        assert!(Window::parse("daily 02:00").is_err());
        assert!(Window::parse("funday 01:00-02:00").is_err());
    }
}
