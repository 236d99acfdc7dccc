//! Schedules: EventBridge Scheduler's expressions (`at(...)`, `rate(...)`, `cron(...)`) and
//! when they fire, in the schedule's time zone; the firing input the scheduler hands to
//! job-intake; and the relative time windows (`"-P1D"`) a scheduled job's filters may use.
//!
//! Cron is AWS's six-field form: minutes, hours, day-of-month, month, day-of-week, year, with
//! `*`, `,`, `-`, `/`, `?` (one of the two day fields, never both or neither), `L` (last day
//! of the month; `5L` the last Thursday), `W` (`15W`: the weekday nearest the 15th; `LW`: the
//! last weekday), `#` (`2#1`: the first Monday), month names `JAN`-`DEC` and day names
//! `SUN`-`SAT` (day-of-week 1 is Sunday).
//! <https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html>
//!
//! Written here rather than taken from `croner` (4.0.3, checked against these tests in
//! issue 24): croner evaluates AWS's dialect only through an adapter (a seconds field put in
//! front, the year field and AWS's 1-7 day numbers turned on), treats `?` as `*` and takes
//! years 1-5000, so the parser's checks (`?` in exactly one day field, years 1970-2199, errors
//! that name the field) would stay ours; it puts a time that falls in a DST gap at the gap's
//! end rather than shifting it by the gap as jiff does, fails on `L` alone in day-of-week,
//! and brings nine crates. Only the ~50-line evaluator would go.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Years a cron expression may name.
const YEARS: std::ops::RangeInclusive<i16> = 1970..=2199;

/// A parsed schedule expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    /// Once, at this wall-clock time of the schedule's zone.
    At(DateTime),
    /// Every this many seconds, counted from the schedule's start.
    Rate(i64),
    Cron(Box<Cron>),
}

/// A cron expression, one set per field.
#[derive(Clone, Debug, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Months 1-12 as bits 1-12.
    months: u16,
    years: Vec<bool>,
    days: Days,
}

/// Which days of a month match: the day-of-month field or the day-of-week field.
#[derive(Clone, Debug, PartialEq)]
enum Days {
    /// Days 1-31 as bits 1-31.
    OfMonth(u32),
    LastOfMonth,
    /// The weekday (Monday-Friday) nearest this day, within the month.
    NearestWeekday(i8),
    LastWeekdayOfMonth,
    /// Weekdays 1-7 (Sunday = 1) as bits 1-7.
    OfWeek(u8),
    /// The last such weekday of the month.
    LastOfWeek(u8),
    /// The n-th such weekday of the month.
    Nth(u8, u8),
}

/// The longest rate: 100 years; a longer one would never fire.
const MAX_RATE_SECS: i64 = 36_525 * 86_400;

fn bad(expr: &str, why: impl std::fmt::Display) -> Error {
    Error::field("ScheduleExpression", format!("'{expr}': {why}"))
}

impl Expression {
    pub fn parse(expr: &str) -> Result<Expression> {
        let inner = |prefix: &str| expr.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')).map(str::trim);
        if let Some(at) = inner("at(") {
            let t: DateTime = at.parse().map_err(|_| bad(expr, "at() takes yyyy-mm-ddThh:mm:ss"))?;
            return Ok(Expression::At(t));
        }
        if let Some(rate) = inner("rate(") {
            let (n, unit) = rate.split_once(' ').ok_or_else(|| bad(expr, "rate() takes 'value unit'"))?;
            let n: i64 =
                n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad(expr, "the rate must be a whole number >= 1"))?;
            let secs = match unit.trim() {
                "minute" | "minutes" => 60,
                "hour" | "hours" => 3600,
                "day" | "days" => 86_400,
                other => return Err(bad(expr, format!("'{other}' is not minute(s), hour(s) or day(s)"))),
            };
            // Checked: rate(4611686018427387904 minutes) wrapped to rate 0 and divided by it.
            return match n.checked_mul(secs).filter(|s| *s <= MAX_RATE_SECS) {
                Some(every) => Ok(Expression::Rate(every)),
                None => Err(bad(expr, "a rate is at most 100 years (36,525 days)")),
            };
        }
        if let Some(cron) = inner("cron(") {
            return Ok(Expression::Cron(Box::new(Cron::parse(expr, cron)?)));
        }
        Err(bad(expr, "must be at(...), rate(...) or cron(...)"))
    }

    /// The first firing strictly after `after`, in `tz`; rate schedules count from `start`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone, start: Timestamp) -> Option<Timestamp> {
        match self {
            Expression::At(t) => {
                tz.to_ambiguous_zoned(*t).compatible().ok().map(|z| z.timestamp()).filter(|t| *t > after)
            }
            Expression::Rate(secs) => {
                let elapsed = after.as_second() - start.as_second();
                let k = if elapsed < 0 { 1 } else { elapsed / secs + 1 };
                Timestamp::from_second(start.as_second().checked_add(k.checked_mul(*secs)?)?).ok()
            }
            Expression::Cron(c) => c.next_after(after, tz),
        }
    }
}

/// One comma-separated item of a numeric field: `*`, `n`, `a-b`, with an optional `/step`.
fn numbers(expr: &str, field: &str, text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<u32>> {
    let value = |s: &str| -> Result<u32> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(lo + i as u32);
        }
        s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| {
            bad(expr, format!("{field}: '{s}' is not {lo}-{hi}{}", if names.is_empty() { "" } else { " or a name" }))
        })
    };
    let mut out = Vec::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| bad(expr, format!("{field}: bad step '{s}'")))?,
            ),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15`: from 5 to the end, every 15.
                None if item.contains('/') => (value(r)?, hi),
                None => (value(r)?, value(r)?),
            },
        };
        if a > b {
            return Err(bad(expr, format!("{field}: '{range}' runs backwards")));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Ok(out)
}

fn bits(values: &[u32]) -> u64 {
    values.iter().fold(0, |acc, v| acc | 1 << v)
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    fn parse(expr: &str, body: &str) -> Result<Cron> {
        let f: Vec<&str> = body.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = f[..] else {
            return Err(bad(
                expr,
                format!("cron() takes 6 fields (minutes hours day-of-month month day-of-week year), got {}", f.len()),
            ));
        };
        let days = match (dom, dow) {
            ("?", "?") => return Err(bad(expr, "only one of day-of-month and day-of-week may be '?'")),
            ("?", dow) => Self::weekdays(expr, dow)?,
            (dom, "?") => Self::month_days(expr, dom)?,
            _ => return Err(bad(expr, "one of day-of-month and day-of-week must be '?'")),
        };
        let years = numbers(expr, "year", year, *YEARS.start() as u32, *YEARS.end() as u32, &[])?;
        let mut year_set = vec![false; YEARS.len()];
        for y in years {
            year_set[(y - *YEARS.start() as u32) as usize] = true;
        }
        Ok(Cron {
            minutes: bits(&numbers(expr, "minutes", min, 0, 59, &[])?),
            hours: bits(&numbers(expr, "hours", hour, 0, 23, &[])?) as u32,
            months: bits(&numbers(expr, "month", month, 1, 12, &MONTHS)?) as u16,
            years: year_set,
            days,
        })
    }

    fn month_days(expr: &str, dom: &str) -> Result<Days> {
        Ok(match dom {
            "L" => Days::LastOfMonth,
            "LW" => Days::LastWeekdayOfMonth,
            w if w.ends_with('W') => {
                let day = numbers(expr, "day-of-month", &w[..w.len() - 1], 1, 31, &[])?;
                match day[..] {
                    [d] => Days::NearestWeekday(d as i8),
                    _ => return Err(bad(expr, "day-of-month: W takes one day (15W)")),
                }
            }
            d => Days::OfMonth(bits(&numbers(expr, "day-of-month", d, 1, 31, &[])?) as u32),
        })
    }

    fn weekdays(expr: &str, dow: &str) -> Result<Days> {
        let one = |s: &str| -> Result<u8> {
            match numbers(expr, "day-of-week", s, 1, 7, &WEEKDAYS)?[..] {
                [d] => Ok(d as u8),
                _ => Err(bad(expr, format!("day-of-week: '{s}' must be one day"))),
            }
        };
        Ok(match dow {
            "L" => Days::LastOfWeek(7),
            l if l.ends_with('L') => Days::LastOfWeek(one(&l[..l.len() - 1])?),
            n if n.contains('#') => {
                let (d, n) = n.split_once('#').unwrap_or_default();
                let n: u8 = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| bad(expr, "day-of-week: # takes 1-5"))?;
                Days::Nth(one(d)?, n)
            }
            d => Days::OfWeek(bits(&numbers(expr, "day-of-week", d, 1, 7, &WEEKDAYS)?) as u8),
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dow = d.weekday().to_sunday_one_offset() as u8;
        let last = d.last_of_month();
        match &self.days {
            Days::OfMonth(b) => b & (1 << d.day()) != 0,
            Days::LastOfMonth => d == last,
            Days::LastWeekdayOfMonth => d == last_weekday(last),
            Days::NearestWeekday(n) => {
                let target = d.first_of_month().with().day((*n).min(last.day())).build();
                target.is_ok_and(|t| nearest_weekday(t) == d)
            }
            Days::OfWeek(b) => b & (1 << dow) != 0,
            Days::LastOfWeek(w) => dow == *w && d.day() + 7 > last.day(),
            Days::Nth(w, n) => dow == *w && (d.day() - 1) / 7 + 1 == *n as i8,
        }
    }

    /// The first matching minute after `after`, by wall-clock time in `tz` (a time that a
    /// DST change skips fires at the first instant after the gap, as AWS's scheduler does).
    fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        let mut day = local.date();
        let end = Date::new(*YEARS.end(), 12, 31).ok()?;
        while day <= end {
            let year_ok = self.years.get((day.year() - *YEARS.start()) as usize).copied().unwrap_or(false);
            if !year_ok {
                day = Date::new(day.year() + 1, 1, 1).ok()?;
                continue;
            }
            if self.months & (1 << day.month()) == 0 {
                day = day.first_of_month().checked_add(1.month()).ok()?;
                continue;
            }
            if self.day_matches(day) {
                for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        let at = day.at(h as i8, m as i8, 0, 0);
                        let Ok(z) = tz.to_ambiguous_zoned(at).compatible() else { continue };
                        if z.timestamp() > after {
                            return Some(z.timestamp());
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

fn last_weekday(last: Date) -> Date {
    match last.weekday() {
        Weekday::Saturday => last.yesterday().unwrap_or(last),
        Weekday::Sunday => last.checked_sub(2.days()).unwrap_or(last),
        _ => last,
    }
}

/// The weekday nearest `d` without leaving its month.
fn nearest_weekday(d: Date) -> Date {
    match d.weekday() {
        Weekday::Saturday if d.day() == 1 => d.checked_add(2.days()).unwrap_or(d),
        Weekday::Saturday => d.yesterday().unwrap_or(d),
        Weekday::Sunday if d == d.last_of_month() => d.checked_sub(2.days()).unwrap_or(d),
        Weekday::Sunday => d.tomorrow().unwrap_or(d),
        _ => d,
    }
}

/// A time zone by its IANA name (`Europe/Berlin`); UTC when none is given.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone> {
    match name {
        None | Some("") | Some("UTC") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n)
            .map_err(|e| Error::field("ScheduleExpressionTimezone", format!("'{n}' is not a time zone: {e}"))),
    }
}

/// What EventBridge Scheduler hands job-intake: the target's input with the scheduler's
/// context attributes substituted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Firing {
    /// The CreateJob request to run (parsed with the envelope: errors name
    /// `batchops.Spec.<member>`)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<crate::spec::JobSpec>,
    /// ... or where to read it (`s3://bucket/key.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_location: Option<String>,
    pub schedule_arn: String,
    /// ISO 8601, UTC (`<aws.scheduler.scheduled-time>`).
    pub scheduled_time: String,
    #[serde(default)]
    pub execution_id: String,
}

/// The `{"batchops": {...}}` envelope of a schedule's input.
#[derive(Deserialize)]
struct Envelope {
    batchops: Firing,
}

impl Firing {
    /// Parses the input a schedule delivered.
    pub fn parse(input: &[u8]) -> Result<Firing> {
        let request = "schedule input (expected {\"batchops\": {...}})";
        let e: Envelope = crate::spec::parse_json_within(input, request, crate::spec::MAX_JSON_DEPTH + 2)?;
        let f = e.batchops;
        if f.spec.is_some() == f.spec_location.is_some() {
            return Err(Error::field("batchops", "give exactly one of Spec or SpecLocation"));
        }
        f.time()?;
        Ok(f)
    }

    pub fn time(&self) -> Result<Timestamp> {
        crate::fields::rfc3339(&self.scheduled_time).ok_or_else(|| {
            Error::field("batchops.ScheduledTime", format!("'{}' is not an ISO 8601 time", self.scheduled_time))
        })
    }

    /// The job's ClientRequestToken: one job per schedule and scheduled time, however often
    /// the firing is delivered.
    pub fn token(&self) -> String {
        use sha1::{Digest, Sha1};
        let digest =
            Sha1::digest(format!("{}\n{}", self.schedule_arn, self.time().map(|t| t.as_second()).unwrap_or(0)));
        format!("schedule-{}", hex::encode(digest))
    }
}

/// The placeholders the scheduler fills in a templated target's input.
pub const PLACEHOLDERS: [&str; 3] =
    ["<aws.scheduler.schedule-arn>", "<aws.scheduler.scheduled-time>", "<aws.scheduler.execution-id>"];

/// The input of a firing: `template` with the scheduler's context attributes substituted.
pub fn substitute(template: &str, schedule_arn: &str, scheduled_time: &str, execution_id: &str) -> String {
    template
        .replace(PLACEHOLDERS[0], schedule_arn)
        .replace(PLACEHOLDERS[1], scheduled_time)
        .replace(PLACEHOLDERS[2], execution_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str, tz: &str) -> String {
        let e = Expression::parse(expr).unwrap();
        let tz = time_zone(Some(tz)).unwrap();
        e.next_after(ts(after), &tz, ts(after)).unwrap().to_string()
    }

    fn fires(expr: &str, from: &str, n: usize) -> Vec<String> {
        let e = Expression::parse(expr).unwrap();
        let mut t = ts(from);
        (0..n)
            .map(|_| {
                t = e.next_after(t, &TimeZone::UTC, ts(from)).unwrap();
                t.to_string()
            })
            .collect()
    }

    // The examples of AWS's documentation (EventBridge Scheduler and CloudWatch Events cron).
    #[test]
    fn awss_documented_cron_examples_fire_when_documented() {
        // 10:15 AM (UTC) every day
        assert_eq!(
            fires("cron(15 10 * * ? *)", "2026-11-30T11:00:00Z", 2),
            ["2026-12-01T10:15:00Z", "2026-12-02T10:15:00Z"]
        );
        // 6:00 PM Monday through Friday
        assert_eq!(
            fires("cron(0 18 ? * MON-FRI *)", "2026-12-04T19:00:00Z", 2),
            ["2026-12-07T18:00:00Z", "2026-12-08T18:00:00Z"],
            "Friday evening -> Monday"
        );
        // 8:00 AM on the first day of the month
        assert_eq!(
            fires("cron(0 8 1 * ? *)", "2026-11-30T00:00:00Z", 2),
            ["2026-12-01T08:00:00Z", "2027-01-01T08:00:00Z"]
        );
        // every 10 minutes on weekdays
        assert_eq!(
            fires("cron(0/10 * ? * MON-FRI *)", "2026-12-04T23:45:00Z", 3),
            ["2026-12-04T23:50:00Z", "2026-12-07T00:00:00Z", "2026-12-07T00:10:00Z"]
        );
        // every 5 minutes between 8:00 AM and 5:55 PM weekdays
        assert_eq!(fires("cron(0/5 8-17 ? * MON-FRI *)", "2026-12-01T17:56:00Z", 1), ["2026-12-02T08:00:00Z"]);
        // 9:00 AM on the first Monday of each month
        assert_eq!(
            fires("cron(0 9 ? * 2#1 *)", "2026-12-01T00:00:00Z", 2),
            ["2026-12-07T09:00:00Z", "2027-01-04T09:00:00Z"]
        );
        // 12:00 PM on the last day of the month; the last Friday; the last weekday; nearest weekday
        assert_eq!(
            fires("cron(0 12 L * ? *)", "2027-02-01T00:00:00Z", 2),
            ["2027-02-28T12:00:00Z", "2027-03-31T12:00:00Z"]
        );
        assert_eq!(fires("cron(0 12 ? * 6L *)", "2026-12-01T00:00:00Z", 1), ["2026-12-25T12:00:00Z"]);
        assert_eq!(
            fires("cron(0 12 LW * ? *)", "2027-01-01T00:00:00Z", 1),
            ["2027-01-29T12:00:00Z"],
            "Jan 31 2027 is a Sunday"
        );
        assert_eq!(
            fires("cron(0 12 15W * ? *)", "2026-08-01T00:00:00Z", 1),
            ["2026-08-14T12:00:00Z"],
            "Aug 15 2026 is a Saturday"
        );
        assert_eq!(
            fires("cron(0 12 1W * ? *)", "2026-07-31T00:00:00Z", 1),
            ["2026-08-03T12:00:00Z"],
            "Aug 1 2026 is a Saturday: Monday the 3rd"
        );
        // only in the years named
        assert_eq!(
            fires("cron(0 0 1 JAN ? 2028,2030)", "2026-12-01T00:00:00Z", 2),
            ["2028-01-01T00:00:00Z", "2030-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn cron_fires_by_the_wall_clock_of_its_time_zone_across_dst() {
        // 02:00 every day in Berlin: 01:00 UTC in winter, 00:00 UTC in summer.
        assert_eq!(next("cron(0 2 * * ? *)", "2026-12-01T12:00:00Z", "Europe/Berlin"), "2026-12-02T01:00:00Z");
        assert_eq!(next("cron(0 2 * * ? *)", "2026-07-01T12:00:00Z", "Europe/Berlin"), "2026-07-02T00:00:00Z");
        // 2026-03-29 02:30 does not exist in Berlin: it fires at 03:30 CEST (01:30 UTC).
        assert_eq!(next("cron(30 2 * * ? *)", "2026-03-28T12:00:00Z", "Europe/Berlin"), "2026-03-29T01:30:00Z");
    }

    #[test]
    fn at_and_rate_schedules() {
        assert_eq!(next("at(2026-12-24T18:00:00)", "2026-12-01T00:00:00Z", "America/New_York"), "2026-12-24T23:00:00Z");
        let at = Expression::parse("at(2026-12-24T18:00:00)").unwrap();
        assert_eq!(at.next_after(ts("2026-12-25T00:00:00Z"), &TimeZone::UTC, ts("2026-01-01T00:00:00Z")), None, "once");
        let rate = Expression::parse("rate(5 minutes)").unwrap();
        let start = ts("2026-12-01T00:00:00Z");
        assert_eq!(
            rate.next_after(ts("2026-12-01T00:07:00Z"), &TimeZone::UTC, start).unwrap().to_string(),
            "2026-12-01T00:10:00Z"
        );
        assert_eq!(
            rate.next_after(ts("2026-12-01T00:10:00Z"), &TimeZone::UTC, start).unwrap().to_string(),
            "2026-12-01T00:15:00Z"
        );
        assert_eq!(Expression::parse("rate(1 hour)").unwrap(), Expression::Rate(3600));
        // The longest rate, from a start near the end of time: no firing, no overflow.
        let longest = Expression::parse("rate(36525 days)").unwrap();
        assert_eq!(longest.next_after(ts("9999-01-01T00:00:00Z"), &TimeZone::UTC, ts("9998-01-01T00:00:00Z")), None);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("cron(0 2 * * * *)", "must be '?'"),
            ("cron(0 2 ? * ? *)", "only one"),
            ("cron(0 2 * *)", "6 fields"),
            ("cron(61 2 * * ? *)", "minutes: '61' is not 0-59"),
            ("cron(0 2 ? * FOO *)", "day-of-week: 'FOO'"),
            ("cron(0 2 ? * 2#6 *)", "# takes 1-5"),
            ("rate(0 minutes)", ">= 1"),
            ("rate(5 weeks)", "'weeks'"),
            // It wrapped to rate 0 and next_after divided by it (issue 23).
            ("rate(4611686018427387904 minutes)", "at most 100 years"),
            ("rate(36526 days)", "at most 100 years"),
            ("at(tomorrow)", "yyyy-mm-dd"),
            ("every day", "at(...), rate(...) or cron(...)"),
        ] {
            let e = Expression::parse(expr).unwrap_err().to_string();
            assert!(e.contains(says), "{expr}: {e}");
        }
        assert!(time_zone(Some("Mars/Olympus")).unwrap_err().to_string().contains("not a time zone"));
    }

    #[test]
    fn a_firing_is_one_job_per_schedule_and_time() {
        let input = |time: &str| {
            format!(
                r#"{{"batchops": {{"Spec": {{}}, "ScheduleArn": "arn:aws:scheduler:us-east-1:1:schedule/batchops/n", "ScheduledTime": "{time}", "ExecutionId": "x"}}}}"#
            )
        };
        let a = Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
        let b = Firing::parse(input("2026-12-01T02:00:00Z").as_bytes()).unwrap();
        let c = Firing::parse(input("2026-12-02T02:00:00Z").as_bytes()).unwrap();
        assert_eq!(a.token(), b.token());
        assert_ne!(a.token(), c.token());
        assert!(a.token().len() <= 64);
        assert!(
            Firing::parse(br#"{"batchops": {"ScheduleArn": "a", "ScheduledTime": "2026-12-01T02:00:00Z"}}"#).is_err()
        );
        let e = Firing::parse(br#"{"Spec": {}}"#).unwrap_err().to_string();
        assert!(e.contains("batchops"), "{e}");
        assert_eq!(
            substitute(r#"{"t": "<aws.scheduler.scheduled-time>"}"#, "arn", "2026-12-01T02:00:00Z", "id"),
            r#"{"t": "2026-12-01T02:00:00Z"}"#
        );
    }
}
