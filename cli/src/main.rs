//! `batchops`: the `aws s3control` job verbs against the batchops API, `watch`, and `local`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use batchops::client::{is_loopback, stack_api_url, ApiClient, Signer};
use batchops::health::HealthSource;
use batchops::local::{self, LocalOptions};
use batchops_core::pipeline::health::SystemStatus;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "batchops",
    version,
    about = "Serverless S3 Batch Operations: run one operation over every object of a manifest"
)]
struct Cli {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the job verbs go, and how.
#[derive(Args)]
struct ApiArgs {
    /// The batchops API (`batchops local` serves it on http://127.0.0.1:8080).
    #[arg(long, global = true, env = "BATCHOPS_API_URL", default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// A deployed batchops stack: its `ApiUrl` output is the API (instead of --api-url).
    #[arg(long, global = true, env = "BATCHOPS_STACK")]
    stack: Option<String>,
    /// Sign requests (SigV4, AWS credentials and region as the AWS CLI finds them) even to an
    /// API on this machine; requests to any other host are always signed.
    #[arg(long, global = true)]
    sign: bool,
    /// Act for this account (12 digits, sent as `x-amz-account-id` like S3 Control's clients
    /// do): only its jobs are seen and changed, and jobs are created for it. Without it the
    /// job verbs see every account's jobs.
    #[arg(long, global = true)]
    account_id: Option<String>,
}

impl ApiArgs {
    /// The API client the job verbs use: the stack's API or --api-url, signed unless local.
    async fn client(&self) -> Result<ApiClient> {
        Ok(self.unscoped_client().await?.for_account(self.account_id.clone()))
    }

    async fn unscoped_client(&self) -> Result<ApiClient> {
        let needs_aws = self.stack.is_some() || self.sign || !is_loopback(&self.api_url);
        if !needs_aws {
            return Ok(ApiClient::new(&self.api_url));
        }
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let url = match &self.stack {
            Some(stack) => stack_api_url(&sdk, stack).await?,
            None => self.api_url.clone(),
        };
        if self.sign || !is_loopback(&url) {
            Ok(ApiClient::signed(url, Signer::from_sdk_config(&sdk)?))
        } else {
            Ok(ApiClient::new(url))
        }
    }
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Job(JobVerb),
    /// Runs the whole system on this machine against AWS_ENDPOINT_URL (or real AWS).
    Local(LocalArgs),
    /// Scheduled jobs: EventBridge Scheduler schedules that create a job at each firing.
    #[command(subcommand)]
    Schedule(ScheduleVerb),
    /// Serves the web console on this machine for the API that --stack or --api-url names
    /// (its calls signed with your AWS credentials here; none reach the page).
    Console {
        /// Where the console listens (loopback only).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// The system's health: queue depths and ages, dead letters (with the first one's job
    /// and kind), jobs per status, jobs that stopped moving, alarms in ALARM (--stack). Exits
    /// 0 when healthy, 1 when something needs a person, 2 when it could not tell.
    Status {
        /// An open job that has looked the same this many minutes is called stalled.
        #[arg(long, default_value_t = batchops::health::STALLED_MINUTES)]
        stalled_minutes: u64,
        /// Print the view as JSON (what `GET /v20180820/system` answers).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScheduleVerb {
    /// Creates a schedule whose every firing creates a job from the spec (its relative
    /// windows, "-P1D", counted back from the firing).
    Create {
        /// The schedule's name (unique in its group).
        #[arg(long)]
        name: String,
        /// at(yyyy-mm-ddThh:mm:ss), rate(N minutes|hours|days) or cron(min hour dom month dow year).
        #[arg(long)]
        expression: String,
        /// The CreateJob spec each firing runs (kept in the schedule's input).
        #[arg(long, required_unless_present = "spec_location", conflicts_with = "spec_location")]
        spec: Option<PathBuf>,
        /// Or where each firing reads it (s3://bucket/key.json), so it can change between firings.
        #[arg(long)]
        spec_location: Option<String>,
        /// IANA time zone the expression is read in (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Lists the schedules with their next firing.
    List {
        /// The schedule group.
        #[arg(long, default_value = batchops::schedules::GROUP)]
        group: String,
    },
    /// Deletes a schedule (jobs it created are not touched).
    Delete {
        /// The schedule's name.
        #[arg(long)]
        name: String,
        /// The schedule group.
        #[arg(long, default_value = batchops::schedules::GROUP)]
        group: String,
    },
}

/// Where a schedule's firings go: job-intake's schedule function and the role the scheduler
/// invokes it as; taken from the stack (--stack) unless given.
#[derive(Args)]
struct TargetArgs {
    /// The schedule group (batchops local fires the schedules of its group).
    #[arg(long, default_value = batchops::schedules::GROUP)]
    group: String,
    /// The function each firing invokes (stack output ScheduledJobFunctionArn).
    #[arg(long)]
    target_arn: Option<String>,
    /// The role the scheduler invokes it as (stack output SchedulerRoleArn).
    #[arg(long)]
    role_arn: Option<String>,
}

/// The `aws s3control` job verbs, and `watch`.
#[derive(Subcommand)]
enum JobVerb {
    /// Creates a job from a CreateJob JSON spec (the same JSON `aws s3control create-job` takes).
    CreateJob {
        /// The spec file.
        #[arg(long, conflicts_with = "cli_input_json")]
        spec: Option<PathBuf>,
        /// The spec as `file://PATH`, as the AWS CLI spells it.
        #[arg(long)]
        cli_input_json: Option<String>,
        /// Sets `ClientRequestToken` when the spec has none (a new random one by default).
        #[arg(long)]
        client_request_token: Option<String>,
        /// Sets the spec's `MaxTasksPerSecond` (batchops): the job's task rate limit.
        #[arg(long)]
        max_tasks_per_second: Option<u64>,
    },
    /// Prints a job's JobDescriptor.
    DescribeJob {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
    },
    /// Lists jobs, newest first.
    ListJobs {
        /// Only jobs in these statuses (repeat the flag, or separate with commas).
        #[arg(long, value_delimiter = ',')]
        job_statuses: Vec<String>,
        /// At most this many jobs (0-1000).
        #[arg(long)]
        max_results: Option<u32>,
        /// The NextToken of the previous page.
        #[arg(long)]
        next_token: Option<String>,
    },
    /// Confirms a Suspended job (`Ready`) or cancels a job (`Cancelled`).
    UpdateJobStatus {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
        /// `Ready` (confirm a Suspended job) or `Cancelled`.
        #[arg(long)]
        requested_job_status: String,
        /// Why (1-256 characters; shown by describe-job and in the status events).
        #[arg(long)]
        status_update_reason: Option<String>,
    },
    /// Sets a job's priority (0-2147483647).
    UpdateJobPriority {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
        /// 0-2147483647: when executors are busy, higher-priority jobs' chunks run first and
        /// lower ones pause until there is room again (applies to the chunks not yet released).
        #[arg(long)]
        priority: i64,
    },
    /// batchops: caps a job's task rate (tasks per second across all its executors), also
    /// while it runs.
    UpdateJobRate {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
        /// Tasks per second, 1-1000000, across all the job's executors.
        #[arg(long)]
        max_tasks_per_second: u64,
    },
    /// Prints a job's tags.
    GetJobTagging {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
    },
    /// Replaces a job's tags: `--tags Key=team,Value=data Key=env,Value=prod` (the AWS CLI's
    /// shorthand) or `--tags '[{"Key":"team","Value":"data"}]'`; no tags deletes them all.
    PutJobTagging {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
        /// The new tag set (at most 50; keys up to 128, values up to 256 characters).
        #[arg(long, num_args = 0..)]
        tags: Vec<String>,
    },
    /// Deletes every tag of a job.
    DeleteJobTagging {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
    },
    /// batchops: creates a job over the failed tasks of an ended job (same operation, role and
    /// report settings; its manifest is written beside the report) and prints its JobId.
    RetryFailed {
        /// The job's ID (what create-job printed).
        #[arg(long)]
        job_id: String,
    },
    /// batchops: a job's failed tasks, counted per ErrorCode and HTTP status, with the first
    /// rows of each (read from its report's failed files; also while it runs).
    Failures {
        /// The job's ID.
        job_id: String,
        /// Rows shown per ErrorCode and status (1-1000; default 10).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// batchops: the report's files (and manifest.json once the job has ended), each with a
    /// download URL valid for 15 minutes, presigned as the job's role.
    ReportFiles {
        /// The job's ID.
        job_id: String,
    },
    /// Shows a progress bar until the job ends; exits 1 if it failed, 2 if it was cancelled.
    Watch {
        /// The job's ID.
        job_id: String,
        /// Seconds between two looks at the job.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

#[derive(Args)]
struct LocalArgs {
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Prefix of the table, queues and specs bucket.
    #[arg(long, env = "BATCHOPS_PREFIX", default_value = "batchops")]
    prefix: String,
    /// Chunks run at the same time.
    #[arg(long, default_value_t = 4)]
    chunk_workers: usize,
    /// CreateJob requires iam:PassRole on the job's role (asked of IAM for the identity
    /// batchops local runs as), as the deployed API does for its callers.
    #[arg(long)]
    check_pass_role: bool,
    /// Every job acts with batchops local's own credentials instead of assuming its
    /// RoleArn: for S3-compatible stores without STS (MinIO, s3s-fs).
    #[arg(long)]
    no_job_roles: bool,
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn read_spec(spec: Option<PathBuf>, cli_input_json: Option<String>) -> Result<Value> {
    let path = match (spec, cli_input_json) {
        (Some(p), _) => p,
        (None, Some(s)) => PathBuf::from(s.strip_prefix("file://").unwrap_or(&s)),
        (None, None) => bail!("give the spec with --spec FILE or --cli-input-json file://FILE"),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Tags as the AWS CLI takes them: one JSON array, or `Key=k,Value=v` items.
fn parse_tags(args: &[String]) -> Result<Value> {
    if let [one] = args {
        if one.trim_start().starts_with('[') {
            return serde_json::from_str(one).context("--tags is not a JSON array of {\"Key\",\"Value\"}");
        }
    }
    let mut tags = Vec::new();
    for item in args {
        let mut tag = serde_json::Map::new();
        for part in item.split(',') {
            match part.split_once('=') {
                Some((name @ ("Key" | "Value"), v)) => tag.insert(name.to_string(), Value::from(v)),
                _ => bail!("--tags: '{item}' is not Key=K,Value=V"),
            };
        }
        if !tag.contains_key("Key") {
            bail!("--tags: '{item}' has no Key");
        }
        tag.entry("Value").or_insert_with(|| Value::from(""));
        tags.push(Value::Object(tag));
    }
    Ok(Value::Array(tags))
}

async fn watch(api: &ApiClient, id: &str, interval: Duration) -> Result<i32> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<12} [{bar:40}] {pos}/{len} tasks ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let job = api.describe_job(id).await?["Job"].clone();
        let p = &job["ProgressSummary"];
        let total = p["TotalNumberOfTasks"].as_u64().unwrap_or(0);
        let done = p["NumberOfTasksSucceeded"].as_u64().unwrap_or(0) + p["NumberOfTasksFailed"].as_u64().unwrap_or(0);
        let status = job["Status"].as_str().unwrap_or("?").to_string();
        bar.set_length(total.max(done));
        bar.set_position(done);
        let prep = &job["PreparationProgress"];
        let message = match (prep["FilesRead"].as_u64(), prep["FilesTotal"].as_u64(), prep["ObjectsListed"].as_u64()) {
            (Some(read), Some(of), _) => format!("{status} (files {read}/{of})"),
            (_, _, Some(listed)) => format!("{status} ({listed} listed)"),
            _ => status.clone(),
        };
        bar.set_message(message);
        match status.as_str() {
            "Complete" | "Failed" | "Cancelled" => {
                bar.finish();
                println!(
                    "job {id}: {status}, {} succeeded, {} failed of {total}",
                    p["NumberOfTasksSucceeded"], p["NumberOfTasksFailed"]
                );
                if let Some(reason) = job["StatusUpdateReason"].as_str() {
                    println!("  {reason}");
                }
                for f in job["FailureReasons"].as_array().into_iter().flatten() {
                    println!(
                        "  {}: {}",
                        f["FailureCode"].as_str().unwrap_or(""),
                        f["FailureReason"].as_str().unwrap_or("")
                    );
                }
                return Ok(match status.as_str() {
                    "Complete" => 0,
                    "Failed" => 1,
                    _ => 2,
                });
            }
            "Suspended" => bar.set_message("Suspended (confirm with update-job-status --requested-job-status Ready)"),
            _ => {}
        }
        tokio::time::sleep(interval).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let Cli { api, command } = Cli::parse();
    match command {
        Command::Local(args) => run_local(args).await,
        Command::Job(verb) => run_verb(&api.client().await?, verb).await,
        Command::Schedule(verb) => run_schedule(&api, verb).await,
        Command::Console { listen } => {
            let health = match &api.stack {
                Some(stack) => {
                    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    Some(std::sync::Arc::new(HealthSource::for_stack(&sdk, stack).await?))
                }
                None => None,
            };
            batchops::console::serve(listen, api.client().await?, health).await
        }
        Command::Status { stalled_minutes, json } => {
            let code = match system_status(&api, stalled_minutes).await {
                Ok(status) if json => {
                    println!("{}", serde_json::to_string_pretty(&status)?);
                    batchops::health::exit_code(&status)
                }
                Ok(status) => {
                    print!("{}", batchops::health::render(&status));
                    batchops::health::exit_code(&status)
                }
                Err(e) => {
                    eprintln!("batchops status: could not check: {e:#}");
                    2
                }
            };
            std::process::exit(code);
        }
    }
}

/// The health view: read from the stack's queues, table and alarms with --stack, else asked
/// of the API (`batchops local` answers it).
async fn system_status(api: &ApiArgs, stalled_minutes: u64) -> Result<SystemStatus> {
    if let Some(stack) = &api.stack {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let source = HealthSource::for_stack(&sdk, stack).await?;
        return source.check(Duration::from_secs(stalled_minutes * 60)).await;
    }
    let path = format!("/v20180820/system?stalledMinutes={stalled_minutes}");
    let (status, body) = api.client().await?.forward("GET", &path, Vec::new()).await?;
    if status != 200 {
        bail!("{} answered {status}: {}", api.api_url, String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).context("the system view is not what this batchops reads")
}

/// An output of the deployed stack, or `local` without one (batchops local fires schedules
/// itself: their target is never invoked).
async fn stack_output_or(sdk: &aws_config::SdkConfig, stack: Option<&str>, key: &str, local: &str) -> Result<String> {
    match stack {
        Some(stack) => batchops::client::stack_output(sdk, stack, key).await,
        None => Ok(local.to_string()),
    }
}

/// `batchops schedule ...` against the scheduler of AWS_ENDPOINT_URL (or real AWS).
async fn run_schedule(api: &ApiArgs, verb: ScheduleVerb) -> Result<()> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_scheduler::Client::new(&sdk);
    match verb {
        ScheduleVerb::Create { name, expression, spec, spec_location, timezone, target } => {
            use batchops::schedules::{NewSchedule, SpecSource};
            let source = match (spec, spec_location) {
                (Some(path), _) => SpecSource::Inline(read_spec(Some(path), None)?),
                (None, Some(location)) => SpecSource::Location(location),
                (None, None) => bail!("give --spec FILE or --spec-location s3://bucket/key"),
            };
            let target_arn = match target.target_arn {
                Some(a) => a,
                None => {
                    let local = "arn:aws:lambda:us-east-1:000000000000:function:batchops-local-schedule";
                    stack_output_or(&sdk, api.stack.as_deref(), "ScheduledJobFunctionArn", local).await?
                }
            };
            let role_arn = match target.role_arn {
                Some(a) => a,
                None => {
                    let local = "arn:aws:iam::000000000000:role/batchops-local-scheduler";
                    stack_output_or(&sdk, api.stack.as_deref(), "SchedulerRoleArn", local).await?
                }
            };
            let arn = batchops::schedules::create(
                &client,
                &NewSchedule {
                    group: &target.group,
                    name: &name,
                    expression: &expression,
                    timezone: timezone.as_deref(),
                    source,
                    target_arn: &target_arn,
                    role_arn: &role_arn,
                },
            )
            .await?;
            print(&serde_json::json!({ "ScheduleArn": arn }));
        }
        ScheduleVerb::List { group } => {
            print(&serde_json::json!({ "Schedules": batchops::schedules::list(&client, &group).await? }))
        }
        ScheduleVerb::Delete { name, group } => batchops::schedules::delete(&client, &group, &name).await?,
    }
    Ok(())
}

async fn run_verb(api: &ApiClient, verb: JobVerb) -> Result<()> {
    match verb {
        JobVerb::CreateJob { spec, cli_input_json, client_request_token, max_tasks_per_second } => {
            let mut spec = read_spec(spec, cli_input_json)?;
            if let Some(rate) = max_tasks_per_second {
                spec["MaxTasksPerSecond"] = Value::from(rate);
            }
            if spec.get("ClientRequestToken").is_none() {
                let token = client_request_token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                spec["ClientRequestToken"] = Value::String(token);
            }
            let id = api.create_job(&spec).await?;
            print(&serde_json::json!({ "JobId": id }));
        }
        JobVerb::DescribeJob { job_id } => print(&api.describe_job(&job_id).await?),
        JobVerb::ListJobs { job_statuses, max_results, next_token } => {
            print(&api.list_jobs(&job_statuses, max_results, next_token.as_deref()).await?)
        }
        JobVerb::UpdateJobStatus { job_id, requested_job_status, status_update_reason } => {
            print(&api.update_job_status(&job_id, &requested_job_status, status_update_reason.as_deref()).await?)
        }
        JobVerb::UpdateJobPriority { job_id, priority } => print(&api.update_job_priority(&job_id, priority).await?),
        JobVerb::UpdateJobRate { job_id, max_tasks_per_second } => {
            print(&api.update_job_rate(&job_id, max_tasks_per_second).await?)
        }
        JobVerb::GetJobTagging { job_id } => print(&api.get_job_tagging(&job_id).await?),
        JobVerb::PutJobTagging { job_id, tags } => print(&api.put_job_tagging(&job_id, &parse_tags(&tags)?).await?),
        JobVerb::DeleteJobTagging { job_id } => print(&api.delete_job_tagging(&job_id).await?),
        JobVerb::RetryFailed { job_id } => print(&serde_json::json!({ "JobId": api.retry_failed(&job_id).await? })),
        JobVerb::Failures { job_id, limit } => print(&api.failures(&job_id, limit).await?),
        JobVerb::ReportFiles { job_id } => print(&api.report_files(&job_id).await?),
        JobVerb::Watch { job_id, interval } => {
            let code = watch(api, &job_id, Duration::from_secs_f64(interval.max(0.1))).await?;
            std::process::exit(code);
        }
    }
    Ok(())
}

/// `batchops local`: the whole system on this machine until Ctrl-C.
async fn run_local(args: LocalArgs) -> Result<()> {
    let LocalArgs { listen, prefix, chunk_workers, check_pass_role, no_job_roles } = args;
    batchops_aws::init_tracing();
    let settings = batchops_aws::config::settings_from_env()?;
    let ops = batchops_aws::config::ops_from_env()?;
    let clients = batchops_aws::Clients::from_env().await;
    let options = LocalOptions {
        prefix,
        listen,
        chunk_workers,
        settings,
        ops,
        check_pass_role,
        assume_roles: !no_job_roles,
        ..LocalOptions::default()
    };
    // Every AWS request counted, written out at the stop (make bench-scale reads it).
    #[cfg(feature = "metering")]
    let meter_file = std::env::var_os("BATCHOPS_METER_FILE");
    #[cfg(feature = "metering")]
    if meter_file.is_some() {
        batchops_aws::metering::enable();
    }
    #[cfg(not(feature = "metering"))]
    if std::env::var_os("BATCHOPS_METER_FILE").is_some() {
        anyhow::bail!("BATCHOPS_METER_FILE needs a build with `--features metering`");
    }
    let handle = local::start(clients, options).await?;
    println!("batchops local: API on {} (Ctrl-C stops)", handle.api_url);
    handle.run_until_ctrl_c().await;
    #[cfg(feature = "metering")]
    if let Some(path) = meter_file {
        let counts = batchops_aws::metering::to_json().to_string();
        std::fs::write(&path, counts).with_context(|| format!("write {}", std::path::Path::new(&path).display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn tags_are_read_as_the_aws_cli_spells_them() {
        let shorthand = parse_tags(&["Key=team,Value=data".into(), "Key=empty".into()]).unwrap();
        assert_eq!(shorthand, serde_json::json!([{"Key": "team", "Value": "data"}, {"Key": "empty", "Value": ""}]));
        let json = parse_tags(&[r#"[{"Key":"a","Value":"1"}]"#.into()]).unwrap();
        assert_eq!(json, serde_json::json!([{"Key": "a", "Value": "1"}]));
        assert_eq!(parse_tags(&[]).unwrap(), serde_json::json!([]));
        assert!(parse_tags(&["Name=x".into()]).unwrap_err().to_string().contains("Key=K,Value=V"));
    }

    #[test]
    fn every_verb_and_every_argument_has_a_help_text() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let at = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "{at} has no help text");
                for arg in sub.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())) {
                    assert!(arg.get_help().is_some(), "{at} --{} has no help text", arg.get_id());
                }
                walk(sub, &at);
            }
        }
        walk(&Cli::command(), "batchops");
    }
}
