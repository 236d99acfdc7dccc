//! Schedules: `batchops schedule create/list/delete` manage EventBridge Scheduler schedules
//! (group `batchops`) whose target is job-intake's schedule function, and `batchops local`
//! fires them itself (emulators store schedules but never fire them): it reads the group's
//! schedules every few seconds and, when one comes due, hands its input with the scheduler's
//! context attributes substituted to the same handler the Lambda function runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};
use batchops_core::pipeline::Intake;
use batchops_core::ports::ObjectStore;
use batchops_core::schedule::{self, Expression, PLACEHOLDERS};
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// The schedule group batchops schedules live in.
pub const GROUP: &str = "batchops";

/// How often `batchops local` reads the schedules, and looks for firings due.
const POLL: Duration = Duration::from_secs(2);

/// What a new schedule runs: the spec itself, or where to read it.
pub enum SpecSource {
    Inline(Value),
    Location(String),
}

/// The input of a batchops schedule: the scheduler fills in the placeholders at each firing.
pub fn target_input(source: &SpecSource) -> String {
    let mut b = json!({
        "ScheduleArn": PLACEHOLDERS[0],
        "ScheduledTime": PLACEHOLDERS[1],
        "ExecutionId": PLACEHOLDERS[2],
    });
    match source {
        SpecSource::Inline(spec) => b["Spec"] = spec.clone(),
        SpecSource::Location(l) => b["SpecLocation"] = json!(l),
    }
    json!({ "batchops": b }).to_string()
}

/// A new schedule.
pub struct NewSchedule<'a> {
    pub group: &'a str,
    pub name: &'a str,
    pub expression: &'a str,
    pub timezone: Option<&'a str>,
    pub source: SpecSource,
    /// job-intake's schedule function, and the role the scheduler invokes it as.
    pub target_arn: &'a str,
    pub role_arn: &'a str,
}

/// Creates the group when missing, then the schedule; the expression and zone are checked
/// here first, so a typo is named before anything is created.
pub async fn create(client: &aws_sdk_scheduler::Client, s: &NewSchedule<'_>) -> Result<String> {
    Expression::parse(s.expression)?;
    schedule::time_zone(s.timezone)?;
    if client.get_schedule_group().name(s.group).send().await.is_err() {
        client
            .create_schedule_group()
            .name(s.group)
            .send()
            .await
            .with_context(|| format!("create group {}", s.group))?;
    }
    let target = Target::builder().arn(s.target_arn).role_arn(s.role_arn).input(target_input(&s.source)).build()?;
    let out = client
        .create_schedule()
        .group_name(s.group)
        .name(s.name)
        .schedule_expression(s.expression)
        .set_schedule_expression_timezone(s.timezone.map(String::from))
        .flexible_time_window(FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build()?)
        .target(target)
        .state(ScheduleState::Enabled)
        .send()
        .await
        .with_context(|| format!("create schedule {}", s.name))?;
    Ok(out.schedule_arn)
}

/// The group's schedules as `{Name, Arn, ScheduleExpression, Timezone, State, NextFiring}`.
pub async fn list(client: &aws_sdk_scheduler::Client, group: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for s in read_all(client, group, &mut Known::new()).await? {
        let now = Timestamp::now();
        let next = s.expression.next_after(now, &s.tz, s.start.unwrap_or(now)).map(|t| t.to_string());
        out.push(json!({"Name": s.name, "Arn": s.arn, "ScheduleExpression": s.text, "Timezone": s.tz_name,
                        "State": if s.enabled { "ENABLED" } else { "DISABLED" }, "NextFiring": next}));
    }
    Ok(out)
}

pub async fn delete(client: &aws_sdk_scheduler::Client, group: &str, name: &str) -> Result<()> {
    client
        .delete_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .with_context(|| format!("delete schedule {name}"))?;
    Ok(())
}

/// A schedule as read back, parsed.
#[derive(Clone)]
struct Stored {
    name: String,
    arn: String,
    text: String,
    expression: Expression,
    tz_name: Option<String>,
    tz: jiff::tz::TimeZone,
    enabled: bool,
    input: String,
    /// Where rate schedules count from: StartDate, else the creation time (when the store
    /// gives one).
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

fn timestamp(t: Option<&aws_sdk_scheduler::primitives::DateTime>) -> Option<Timestamp> {
    t.and_then(|t| Timestamp::from_second(t.secs()).ok())
}

/// Schedules read before, by name, with the modification time they were read at.
type Known = HashMap<String, (aws_sdk_scheduler::primitives::DateTime, Stored)>;

/// Every schedule of `group` (a schedule that does not parse is logged and left out). One
/// ListSchedules page per 100 schedules, and a GetSchedule only for a schedule not in `known`
/// or modified since (when the store gives modification times).
async fn read_all(client: &aws_sdk_scheduler::Client, group: &str, known: &mut Known) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    let mut fresh = Known::new();
    let mut token = None;
    loop {
        let page =
            client.list_schedules().group_name(group).set_next_token(token).send().await.context("ListSchedules")?;
        for summary in page.schedules() {
            let Some(name) = summary.name() else { continue };
            let modified = summary.last_modification_date();
            let cached = known.remove(name).filter(|(at, _)| Some(at) == modified);
            let stored = match cached {
                Some((_, s)) => s,
                None => match read_one(client, group, name).await? {
                    Some(s) => s,
                    None => continue,
                },
            };
            if let Some(at) = modified {
                fresh.insert(name.to_string(), (*at, stored.clone()));
            }
            out.push(stored);
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            *known = fresh;
            return Ok(out);
        }
    }
}

/// One schedule, read and parsed; `None` (logged) when its expression or zone do not parse.
async fn read_one(client: &aws_sdk_scheduler::Client, group: &str, name: &str) -> Result<Option<Stored>> {
    let s = client.get_schedule().group_name(group).name(name).send().await.context("GetSchedule")?;
    let text = s.schedule_expression().unwrap_or_default().to_string();
    let tz_name = s.schedule_expression_timezone().map(String::from);
    let parsed = Expression::parse(&text).and_then(|e| Ok((e, schedule::time_zone(tz_name.as_deref())?)));
    let (expression, tz) = match parsed {
        Ok(p) => p,
        Err(e) => {
            warn!(schedule = name, error = %e, "schedule skipped");
            return Ok(None);
        }
    };
    Ok(Some(Stored {
        name: name.to_string(),
        arn: s.arn().unwrap_or_default().to_string(),
        text,
        expression,
        tz_name,
        tz,
        enabled: s.state() != Some(&ScheduleState::Disabled),
        input: s.target().and_then(|t| t.input()).unwrap_or_default().to_string(),
        start: timestamp(s.start_date()).or(timestamp(s.creation_date())),
        end: timestamp(s.end_date()),
    }))
}

/// Fires the schedules of `group` as they come due, until `stop`. Firings due before this
/// started are not made up (as a deployed scheduler does not fire schedules before they exist).
pub async fn fire_schedules(
    client: aws_sdk_scheduler::Client,
    group: String,
    intake: Arc<Intake>,
    objects: Arc<dyn ObjectStore>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Timestamp::now();
    // Per schedule ARN: the time up to which its firings were handed out, and when it was
    // first seen (what a rate counts from when the store keeps no creation time).
    let mut fired_until: HashMap<String, Timestamp> = HashMap::new();
    let mut first_seen: HashMap<String, Timestamp> = HashMap::new();
    let mut known = Known::new();
    let mut failing = false;
    loop {
        // A scheduler that cannot be read (no permission, no such API) is asked once a minute.
        let wait = if failing { POLL * 30 } else { POLL };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let schedules = match read_all(&client, &group, &mut known).await {
            Ok(s) => s,
            Err(e) => {
                if !failing {
                    warn!(group = %group, error = %format!("{e:#}"), "cannot read the schedules: asking again every minute");
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        let now = Timestamp::now();
        for s in schedules.iter().filter(|s| s.enabled) {
            let mut from = *fired_until.get(&s.arn).unwrap_or(&started);
            let start = s.start.unwrap_or(*first_seen.entry(s.arn.clone()).or_insert(now));
            while let Some(due) = s.expression.next_after(from, &s.tz, start).filter(|t| *t <= now) {
                if s.end.is_some_and(|end| due > end) {
                    break;
                }
                fire(&intake, &*objects, s, due).await;
                from = due;
            }
            fired_until.insert(s.arn.clone(), from);
        }
    }
}

/// One firing of `s` at `due`, through job-intake's schedule handler.
async fn fire(intake: &Intake, objects: &dyn ObjectStore, s: &Stored, due: Timestamp) {
    let time = due.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let input = schedule::substitute(&s.input, &s.arn, &time, &uuid::Uuid::new_v4().to_string());
    match job_intake::schedule::handle(intake, objects, input.as_bytes()).await {
        Ok(id) => info!(schedule = %s.name, time = %time, job_id = %id, "schedule fired"),
        Err(e) => error!(schedule = %s.name, time = %time, error = %e, "schedule fired; no job"),
    }
}

/// The firing input of a schedule as the scheduler would hand it over (tests deliver a
/// firing twice with it).
pub async fn firing_input(client: &aws_sdk_scheduler::Client, group: &str, name: &str, time: &str) -> Result<String> {
    let s = client.get_schedule().group_name(group).name(name).send().await.context("GetSchedule")?;
    let Some(input) = s.target().and_then(|t| t.input()) else { bail!("schedule {name} has no input") };
    Ok(schedule::substitute(input, s.arn().unwrap_or_default(), time, "redelivered"))
}
