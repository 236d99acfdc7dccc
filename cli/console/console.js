// batchops console: the job list, a job's page, job creation and the system's health, over the
// JSON API of the server that serves this file (batchops local's own API, or `batchops console`
// forwarding to a deployed stack). Hand-written, no dependencies, no build step.

const STATUSES = ["New", "Preparing", "Suspended", "Ready", "Active", "Pausing", "Paused", "Completing", "Complete",
  "Cancelling", "Cancelled", "Failing", "Failed"];
const ENDED = new Set(["Complete", "Cancelled", "Failed"]);
const POLL_MS = 2000;
const SYSTEM_POLL_MS = 15000; // the System page asks SQS and reads the table on every look: less often
const PAGE_SIZES = [10, 20, 50, 100];

const main = document.getElementById("main");
let poller = null; // the current page's refresh timer
let view = 0; // bumped on every navigation: answers for an older page are dropped

// ---- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "Unreachable", `the batchops API cannot be reached (${e.message})`);
  }
  const text = await resp.text();
  let out = null;
  try { out = text ? JSON.parse(text) : {}; } catch { out = { Message: text }; }
  if (!resp.ok) throw new ApiError(resp.status, out && out.Code, out && (out.Message || out.message));
  return out;
}

const enc = encodeURIComponent;

// ---- DOM helpers --------------------------------------------------------------------------

/** Builds an element: h("td", {class: "num"}, "12", child...). Strings become text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text) {
  document.getElementById("status").textContent = text;
}

function statusBadge(s) {
  return h("span", { class: `status s-${s}` }, s);
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function counts(p) {
  const total = p.TotalNumberOfTasks;
  const ok = p.NumberOfTasksSucceeded || 0;
  const bad = p.NumberOfTasksFailed || 0;
  return { total, ok, bad, done: ok + bad };
}

/** A progress bar: succeeded in green, failed in red, of the total (unknown while preparing). */
function progressBar(p) {
  const { total, ok, bad, done } = counts(p);
  const pct = (n) => (total ? Math.min(100, (100 * n) / total) : 0);
  const label = total === undefined || total === null
    ? `${done.toLocaleString()} tasks done, total not known yet`
    : `${done.toLocaleString()} of ${total.toLocaleString()} tasks done (${Math.floor(pct(done))} %): ${ok.toLocaleString()} succeeded, ${bad.toLocaleString()} failed`;
  return h("div", {},
    h("div", { class: "progress", role: "progressbar", "aria-label": "Progress", "aria-valuemin": 0,
      "aria-valuemax": total ?? 0, "aria-valuenow": done, "aria-valuetext": label },
      h("div", { class: "ok", style: `width:${pct(ok)}%` }),
      h("div", { class: "bad", style: `width:${pct(bad)}%` })),
    h("div", { class: "progress-text" },
      total === undefined || total === null ? `${done} / …` : `${ok} ✓  ${bad} ✗  of ${total} (${Math.floor(pct(done))} %)`));
}

function tagList(tags) {
  if (!tags || !tags.length) return "";
  return h("div", { class: "tags" }, tags.map((t) => h("span", { class: "tag" }, `${t.Key}=${t.Value}`)));
}

function notice(err) {
  const code = err.code ? `${err.code}: ` : "";
  return h("p", { class: "notice", role: "alert" }, code + err.message);
}

/** Replaces `el`'s content with `build()` only when `key` differs from what it shows: a part
 * rebuilt on every refresh would lose its focus, its selection and its <details>' state. */
function update(el, key, build) {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.replaceChildren(...build());
}

function stopPolling() {
  if (poller) clearTimeout(poller);
  poller = null;
}

/** Runs `tick` now and every `every` ms while this page is shown. */
function poll(tick, every = POLL_MS) {
  const mine = view;
  const run = async () => {
    if (mine !== view) return;
    try { await tick(); } catch (e) { /* shown by tick */ }
    if (mine === view) poller = setTimeout(run, every);
  };
  run();
}

/** Asks before acting: a modal dialog with optional fields; resolves to the field values or null. */
function ask(title, text, okLabel, fields = []) {
  const dlg = document.getElementById("ask");
  document.getElementById("ask-title").textContent = title;
  document.getElementById("ask-text").textContent = text;
  const box = document.getElementById("ask-fields");
  box.replaceChildren(...fields.map((f) => h("div", { class: "row" }, h("div", {},
    h("label", { for: `ask-${f.name}` }, f.label),
    h("input", { id: `ask-${f.name}`, name: f.name, value: f.value ?? "", type: f.type || "text",
      required: f.required, maxlength: f.maxlength, min: f.min, max: f.max })))));
  document.getElementById("ask-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (dlg.returnValue !== "ok") return resolve(null);
      const out = {};
      for (const f of fields) out[f.name] = document.getElementById(`ask-${f.name}`).value;
      resolve(out);
    }, { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

// ---- Jobs ---------------------------------------------------------------------------------

async function jobsPage(params) {
  const status = params.get("status") || "";
  // Any size ListJobs takes may come in the link; the menu offers the usual ones.
  const asked = Number(params.get("size"));
  const size = Number.isInteger(asked) && asked >= 1 && asked <= 1000 ? asked : 20;
  const tokens = params.getAll("page"); // the NextTokens that led here, oldest first
  const token = tokens[tokens.length - 1];
  const filter = h("select", { id: "status-filter", onchange: (e) => { location.hash = pageLink(e.target.value, size, []); } },
    h("option", { value: "" }, "All statuses"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const sizes = h("select", { id: "page-size", onchange: (e) => { location.hash = pageLink(status, Number(e.target.value), []); } },
    [...new Set([...PAGE_SIZES, size])].sort((x, y) => x - y).map((n) => h("option", { value: n, selected: n === size }, String(n))));
  const body = h("tbody", {});
  const table = h("div", { class: "table-wrap" }, h("table", { "aria-describedby": "jobs-caption" },
    h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Status"), h("th", { class: "hide-narrow" }, "Operation"),
      h("th", { class: "num hide-narrow" }, "Priority"), h("th", {}, "Progress"), h("th", { class: "hide-narrow" }, "Created"))),
    body));
  const pager = h("div", { class: "pager" });
  const problem = h("div", {});
  main.replaceChildren(h("h1", {}, "Batch Operations jobs"),
    h("section", { class: "card" },
      h("div", { class: "row" }, h("div", {}, h("label", { for: "status-filter" }, "Status"), filter),
        h("div", {}, h("label", { for: "page-size" }, "Jobs per page"), sizes),
        h("a", { href: "#/create" }, "Create job")),
      h("p", { id: "jobs-caption", class: "muted" }, "Newest first; updates every 2 seconds."),
      problem, table, pager));
  await poll(async () => {
    const q = [`maxResults=${size}`];
    if (status) q.push(`jobStatuses=${enc(status)}`);
    if (token) q.push(`nextToken=${enc(token)}`);
    try {
      const out = await api("GET", `/v20180820/jobs?${q.join("&")}`);
      problem.replaceChildren();
      // A focused job link keeps its focus across a refresh that rebuilt its row.
      const focused = document.activeElement?.closest?.("tr[data-job]")?.dataset.job;
      update(body, JSON.stringify(out.Jobs || []), () => jobRows(out.Jobs || []));
      if (focused) body.querySelector(`tr[data-job="${CSS.escape(focused)}"] a`)?.focus();
      const next = out.NextToken || null;
      update(pager, String(next), () => [
        tokens.length ? h("a", { href: pageLink(status, size, tokens.slice(0, -1)) }, "← Newer") : "",
        h("span", { class: "muted" }, `Page ${tokens.length + 1}`),
        next ? h("a", { href: pageLink(status, size, [...tokens, next]) }, "Older →") : "",
      ]);
    } catch (e) {
      problem.replaceChildren(notice(e));
      throw e;
    }
  });
}

function pageLink(status, size, tokens) {
  const q = [];
  if (status) q.push(`status=${enc(status)}`);
  if (size !== 20) q.push(`size=${size}`);
  for (const t of tokens) q.push(`page=${enc(t)}`);
  return `#/${q.length ? "?" + q.join("&") : ""}`;
}

function jobRows(jobs) {
  if (!jobs.length) return [h("tr", {}, h("td", { colspan: 6 }, "No jobs."))];
  return jobs.map((j) => h("tr", { "data-job": j.JobId },
    h("td", {}, h("a", { href: `#/jobs/${enc(j.JobId)}` }, j.Description || j.JobId),
      j.Description ? h("div", { class: "muted jobid" }, h("small", {}, j.JobId)) : "", tagList(j.Tags)),
    h("td", {}, statusBadge(j.Status)),
    h("td", { class: "hide-narrow" }, j.Operation || ""),
    h("td", { class: "num hide-narrow" }, j.Priority),
    h("td", { class: "bar-cell" }, progressBar(j.ProgressSummary || {})),
    h("td", { class: "hide-narrow" }, when(j.CreationTime))));
}

// ---- A job --------------------------------------------------------------------------------

async function jobPage(id) {
  const head = h("div", {});
  const actions = h("section", { class: "card", "aria-labelledby": "act-h" }, h("h2", { id: "act-h" }, "Actions"));
  const progress = h("section", { class: "card", "aria-labelledby": "prog-h" });
  const failures = h("section", { class: "card", "aria-labelledby": "fail-h", hidden: true });
  const details = h("div", { class: "grid2" });
  const problem = h("div", {});
  main.replaceChildren(head, problem, progress, actions, failures, details);
  const reportBox = h("div", { id: "report-files" });
  let lastFailed = -1;
  await poll(async () => {
    let job;
    try {
      job = (await api("GET", `/v20180820/jobs/${enc(id)}`)).Job;
      problem.replaceChildren();
    } catch (e) {
      problem.replaceChildren(notice(e));
      throw e;
    }
    head.replaceChildren(h("h1", {}, job.Description || job.JobId, " ", statusBadge(job.Status)),
      job.Description ? h("p", { class: "muted" }, job.JobId) : "");
    progress.replaceChildren(...progressSection(job));
    update(actions, `${job.Status}|${job.Priority}|${(job.ProgressSummary || {}).NumberOfTasksFailed}`,
      () => [h("h2", { id: "act-h" }, "Actions"), ...actionButtons(job)]);
    // The report's links are fetched once the job has ended (they are presigned: one look).
    if (ENDED.has(job.Status) && job.Report && job.Report.Enabled && !reportBox.dataset.loaded) {
      reportBox.dataset.loaded = "yes";
      reportBox.replaceChildren(...(await reportFiles(job.JobId)));
    }
    update(details, JSON.stringify({ ...job, ProgressSummary: null }), () => detailSections(job, reportBox));
    const failed = (job.ProgressSummary || {}).NumberOfTasksFailed || 0;
    if (failed !== lastFailed && job.Report && job.Report.Enabled) {
      lastFailed = failed;
      failures.hidden = failed === 0;
      if (failed) failures.replaceChildren(...(await failureSection(job.JobId)));
    }
  });
}

function progressSection(job) {
  const p = job.ProgressSummary || {};
  const { total, done } = counts(p);
  const active = (p.Timers || {}).ElapsedTimeInActiveSeconds || 0;
  const rate = active > 0 ? done / active : 0;
  const left = rate > 0 && total ? (total - done) / rate : null;
  const facts = [
    ["Total tasks", total ?? "not known yet"],
    ["Succeeded", p.NumberOfTasksSucceeded ?? 0],
    ["Failed", p.NumberOfTasksFailed ?? 0],
    ["Active for", duration(active)],
  ];
  if (!ENDED.has(job.Status) && rate > 0) {
    facts.push(["Rate", `${rate.toFixed(rate < 10 ? 1 : 0)} tasks/s`]);
    if (left !== null) facts.push(["Time left", `about ${duration(left)}`]);
  }
  if (job.MaxTasksPerSecond) facts.push(["Rate limit", `${job.MaxTasksPerSecond} tasks/s`]);
  return [h("h2", { id: "prog-h" }, "Progress"), progressBar(p), h("dl", { class: "facts", style: "margin-top:12px" },
    facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))];
}

function duration(s) {
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function actionButtons(job) {
  const out = [];
  const result = h("div", { "aria-live": "polite" });
  const act = (label, cls, run) => h("button", { class: cls, onclick: async () => {
    result.replaceChildren();
    try {
      const msg = await run();
      if (msg) result.replaceChildren(h("p", { class: "ok-notice" }, msg));
    } catch (e) {
      result.replaceChildren(notice(e));
    }
  } }, label);
  const id = enc(job.JobId);
  if (job.Status === "Suspended") {
    out.push(act("Confirm job", "primary", async () => {
      if (!(await ask("Run this job?", `Job ${job.JobId} waits for confirmation. It runs its operation on every object of its manifest.`, "Confirm"))) return null;
      await api("POST", `/v20180820/jobs/${id}/status?requestedJobStatus=Ready`);
      say("Job confirmed");
      return "Confirmed: the job runs.";
    }));
  }
  if (!ENDED.has(job.Status) && job.Status !== "Cancelling") {
    out.push(act("Cancel job", "danger", async () => {
      const v = await ask("Cancel this job?", "Tasks already run stay done; the rest are not run. The report lists what ran.",
        "Cancel job", [{ name: "reason", label: "Reason (optional, up to 256 characters)", maxlength: 256 }]);
      if (!v) return null;
      const reason = v.reason ? `&statusUpdateReason=${enc(v.reason)}` : "";
      await api("POST", `/v20180820/jobs/${id}/status?requestedJobStatus=Cancelled${reason}`);
      say("Job cancelled");
      return "Cancelled.";
    }));
  }
  if (!ENDED.has(job.Status)) {
    out.push(act("Change priority", "", async () => {
      const v = await ask("Change the priority", "Higher-priority jobs' chunks run first when executors are busy.", "Change",
        [{ name: "priority", label: "Priority (0-2147483647)", value: job.Priority, type: "number", min: 0, max: 2147483647, required: true }]);
      if (!v) return null;
      const out = await api("POST", `/v20180820/jobs/${id}/priority?priority=${enc(v.priority)}`);
      return `Priority is now ${out.Priority}.`;
    }));
  }
  const failed = (job.ProgressSummary || {}).NumberOfTasksFailed || 0;
  if (ENDED.has(job.Status) && failed > 0 && job.Report && job.Report.Enabled) {
    out.push(act(`Retry ${failed} failed tasks`, "", async () => {
      if (!(await ask("Retry the failed tasks?", `A new job runs the same operation over the ${failed} failed tasks of this one.`, "Create retry job"))) return null;
      const out = await api("POST", `/v20180820/jobs/${id}/retry-failed`);
      location.hash = `#/jobs/${enc(out.JobId)}`;
      return null;
    }));
  }
  if (!out.length) return [h("p", { class: "muted" }, "Nothing to do: the job has ended."), result];
  return [h("div", { class: "row" }, out), result];
}

function operationOf(job) {
  const op = job.Operation || {};
  const name = Object.keys(op)[0] || "?";
  return { name, params: op[name] || {} };
}

function factList(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function reportFacts(job) {
  const r = job.Report;
  if (!r || !r.Enabled) return [h("p", {}, "No completion report.")];
  const bucket = (r.Bucket || "").replace(/^arn:aws:s3:::/, "");
  const folder = `${r.Prefix ? r.Prefix.replace(/\/$/, "") + "/" : ""}job-${job.JobId}`;
  return [factList([
    ["Scope", r.ReportScope],
    ["Location", `s3://${bucket}/${folder}/`],
    ["Manifest", ENDED.has(job.Status) ? `${folder}/manifest.json` : "written when the job ends"],
  ])];
}

/** The report's files with download links (presigned as the job's role, valid 15 minutes). */
async function reportFiles(jobId) {
  let out;
  try {
    out = await api("GET", `/v20180820/jobs/${enc(jobId)}/report-files`);
  } catch (e) {
    return [notice(e)];
  }
  const link = (f, text) => h("a", { href: f.Url, download: "", rel: "noopener" }, text);
  const files = out.Files || [];
  return [
    h("p", {}, out.Manifest ? link(out.Manifest, "manifest.json") : "", " ",
      h("span", { class: "muted" }, `Links work for ${Math.round(out.ExpiresInSeconds / 60)} minutes.`)),
    files.length ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Result files" },
      h("thead", {}, h("tr", {}, h("th", {}, "Result file"), h("th", {}, "Tasks"), h("th", { class: "num" }, "Rows"))),
      h("tbody", {}, files.map((f) => h("tr", {}, h("td", {}, link(f, f.Key.split("/").pop())),
        h("td", {}, f.TaskExecutionStatus), h("td", { class: "num" }, f.Rows))))))
      : h("p", { class: "muted" }, "No result files."),
  ];
}

function detailSections(job, reportBox) {
  const { name, params } = operationOf(job);
  const manifest = job.Manifest || {};
  const loc = manifest.Location || {};
  const spec = manifest.Spec || {};
  const history = job.StatusHistory || [];
  const failures = job.FailureReasons || [];
  return [
    h("section", { class: "card", "aria-labelledby": "op-h" }, h("h2", { id: "op-h" }, "Operation"),
      factList([["Operation", name], ["Priority", job.Priority], ["Role", job.RoleArn],
        ["Confirmation required", job.ConfirmationRequired ? "yes" : "no"], ["Dry run", job.DryRun ? "yes" : ""],
        ["Created", when(job.CreationTime)], ["Ended", when(job.TerminationDate)]]),
      Object.keys(params).length ? h("details", { open: true }, h("summary", {}, "Parameters"),
        h("pre", {}, JSON.stringify(params, null, 2))) : ""),
    h("section", { class: "card", "aria-labelledby": "man-h" }, h("h2", { id: "man-h" }, job.ManifestGenerator ? "Manifest generator" : "Manifest"),
      job.ManifestGenerator
        ? h("pre", {}, JSON.stringify(job.ManifestGenerator, null, 2))
        : factList([["Object", loc.ObjectArn], ["ETag", loc.ETag], ["Version", loc.ObjectVersionId],
          ["Format", spec.Format], ["Fields", (spec.Fields || []).join(", ")]])),
    h("section", { class: "card", "aria-labelledby": "rep-h" }, h("h2", { id: "rep-h" }, "Completion report"), ...reportFacts(job),
      reportBox),
    h("section", { class: "card", "aria-labelledby": "time-h" }, h("h2", { id: "time-h" }, "Status history"),
      h("ol", { class: "timeline" }, history.map((c) => h("li", {}, statusBadge(c.Status), " ", when(c.Time),
        c.Reason ? h("span", {}, ` — ${c.Reason}`) : ""))),
      job.StatusUpdateReason ? h("p", {}, `Status update reason: ${job.StatusUpdateReason}`) : "",
      failures.length ? h("div", {}, h("h3", {}, "Failure reasons"), h("ul", {},
        failures.map((f) => h("li", {}, h("strong", {}, f.FailureCode), `: ${f.FailureReason}`)))) : ""),
    h("section", { class: "card", "aria-labelledby": "tag-h" }, h("h2", { id: "tag-h" }, "Tags"),
      (job.Tags && job.Tags.length) ? tagList(job.Tags) : h("p", { class: "muted" }, "No tags.")),
  ];
}

function decodeKey(k) {
  try { return decodeURIComponent(k.replace(/\+/g, " ")); } catch { return k; }
}

async function failureSection(id) {
  let out;
  try {
    out = await api("GET", `/v20180820/jobs/${enc(id)}/failures?limit=5`);
  } catch (e) {
    return [h("h2", { id: "fail-h" }, "Failed tasks"), notice(e)];
  }
  const groups = out.Groups || [];
  const partial = out.Complete ? "" : " (partial: the report is larger than one look reads)";
  return [h("h2", { id: "fail-h" }, "Failed tasks"),
    h("p", {}, `${out.RowsRead} failed rows in the report${partial}; ${out.FailedTasks} counted by the job.`),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Error code"), h("th", { class: "num" }, "HTTP status"), h("th", { class: "num" }, "Tasks"))),
      h("tbody", {}, groups.map((g) => h("tr", { "data-code": g.ErrorCode }, h("td", {}, g.ErrorCode || "(none)"),
        h("td", { class: "num" }, g.HTTPStatusCode), h("td", { class: "num" }, g.Count)))))),
    ...groups.map((g) => h("details", { open: true }, h("summary", {}, `${g.ErrorCode} (${g.HTTPStatusCode}): first ${g.Tasks.length} of ${g.Count}`),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Bucket"), h("th", {}, "Key"), h("th", {}, "Message"))),
        h("tbody", {}, g.Tasks.map((t) => h("tr", {}, h("td", {}, t.Bucket),
          h("td", {}, decodeKey(t.Key), t.VersionId ? h("div", { class: "muted" }, `version ${t.VersionId}`) : ""),
          h("td", {}, t.ResultMessage)))))))),
    out.OtherRows ? h("p", { class: "muted" }, `${out.OtherRows} more rows of other codes.`) : ""];
}

// ---- System -------------------------------------------------------------------------------

/** What each queue carries, beside its name. */
const QUEUE_ROLES = {
  control: "job steps (prepare, start, dispatch)",
  chunk: "chunks of tasks for the executors",
  finalize: "reports and job endings",
  specs: "specs dropped in the specs bucket",
};

function messages(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString();
}

/** Rebuilds `el` with `build()` (as `update` does) and gives the focus back to the link that
 * had it: a table whose ages change on every refresh is rebuilt on every refresh. */
function updateKeepingFocus(el, key, build) {
  const had = el.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
  update(el, key, build);
  if (had && !el.contains(document.activeElement)) {
    [...el.querySelectorAll("a[href]")].find((a) => a.getAttribute("href") === had)?.focus();
  }
}

function jobLink(jobId, text) {
  return h("a", { href: `#/jobs/${enc(jobId)}` }, text || jobId);
}

async function systemPage(params) {
  const asked = Number(params.get("stalledMinutes"));
  const stalled = Number.isInteger(asked) && asked >= 1 ? asked : null;
  const health = h("div", { id: "health", "aria-live": "polite" });
  const checked = h("p", { id: "system-caption", class: "muted" }, "Checking…");
  const problem = h("div", {});
  const queues = h("div", { id: "queues" });
  const open = h("div", { id: "jobs-open" });
  const ended = h("div", { id: "jobs-ended" });
  const stalledBox = h("div", { id: "stalled" });
  const stalledHead = h("h2", { id: "stalled-h" }, "Stalled jobs");
  const alarms = h("div", { id: "alarms" });
  const minutes = h("input", { id: "stalled-minutes", class: "short", type: "number", min: 1, max: 100000, step: 1, required: true,
    value: stalled ?? "", placeholder: "30", "aria-describedby": "stalled-help" });
  const form = h("form", { onsubmit: (ev) => {
    ev.preventDefault();
    if (!minutes.reportValidity()) return;
    location.hash = `#/system?stalledMinutes=${enc(minutes.value)}`;
  } },
    h("label", { for: "stalled-minutes" }, "Stalled after (minutes)"),
    h("div", { class: "row" }, minutes, h("button", { type: "submit" }, "Apply")));
  main.replaceChildren(h("h1", {}, "System"), checked, problem, health,
    h("section", { class: "card", "aria-labelledby": "queues-h" }, h("h2", { id: "queues-h" }, "Queues"), queues),
    h("section", { class: "card", "aria-labelledby": "per-status-h" }, h("h2", { id: "per-status-h" }, "Jobs per status"),
      h("div", { class: "grid2" }, open, ended)),
    h("section", { class: "card", "aria-labelledby": "stalled-h" }, stalledHead,
      h("p", { id: "stalled-help", class: "muted" }, "Jobs expected to move by themselves (not suspended or paused) "
        + "that have not changed for this long, or that the sweep had to step in for."),
      form, stalledBox),
    h("section", { class: "card", "aria-labelledby": "alarms-h" }, h("h2", { id: "alarms-h" }, "Alarms"), alarms));
  await poll(async () => {
    let out;
    try {
      out = await api("GET", `/v20180820/system${stalled ? `?stalledMinutes=${stalled}` : ""}`);
      problem.replaceChildren();
    } catch (e) {
      problem.replaceChildren(notice(e));
      checked.textContent = `The last check failed; the page tries again every ${SYSTEM_POLL_MS / 1000} seconds.`;
      throw e;
    }
    checked.textContent = `Checked ${when(out.CheckedAt)}; updates every ${SYSTEM_POLL_MS / 1000} seconds.`;
    const problems = out.Problems || [];
    // The job IDs the problems name are links to the jobs' pages.
    const named = [...(out.Queues || []).map((q) => q.FirstDead?.JobId), ...((out.Jobs || {}).Stalled || []).map((j) => j.JobId)];
    const ids = [...new Set(named.filter(Boolean))];
    updateKeepingFocus(health, JSON.stringify([out.Healthy, problems, ids]), () => [healthBanner(out.Healthy, problems, ids)]);
    updateKeepingFocus(queues, JSON.stringify(out.Queues || []), () => [queueTable(out.Queues || [])]);
    const jobs = out.Jobs || {};
    update(open, JSON.stringify(jobs.Open || {}), () => statusTable("open", "Open", jobs.Open || {}, STATUSES.filter((s) => !ENDED.has(s))));
    update(ended, JSON.stringify([jobs.EndedLastDay || {}, !!jobs.EndedLastDayCapped]), () => [
      ...statusTable("ended", "Ended in the last day", jobs.EndedLastDay || {}, [...ENDED]),
      jobs.EndedLastDayCapped ? h("p", { class: "muted" }, "Counted over the newest 1,000 jobs only: more were created in the last two days than one look reads.") : ""]);
    const after = out.StalledAfterMinutes;
    if (!minutes.value && document.activeElement !== minutes) minutes.value = after;
    stalledHead.textContent = `Stalled jobs (${after} minutes without moving)`;
    updateKeepingFocus(stalledBox, JSON.stringify([after, jobs.Stalled || []]), () => stalledTable(jobs.Stalled || [], after));
    update(alarms, JSON.stringify(out.Alarms ?? null), () => alarmList(out.Alarms));
  }, SYSTEM_POLL_MS);
}

/** `text` with each of `ids` in it made a link to that job's page. */
function withJobLinks(text, ids) {
  if (!ids.length) return [text];
  const pattern = new RegExp(`(${ids.map((id) => id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`);
  return text.split(pattern).map((part, i) => (i % 2 ? jobLink(part) : part));
}

function healthBanner(healthy, problems, ids) {
  if (healthy) {
    return h("section", { class: "health healthy", "aria-labelledby": "health-h", "data-healthy": "true" },
      h("h2", { id: "health-h" }, "✓ Healthy"), h("p", {}, "Nothing needs a person."));
  }
  return h("section", { class: "health attention", "aria-labelledby": "health-h", "data-healthy": "false" },
    h("h2", { id: "health-h" }, "⚠ Needs attention"),
    problems.length ? h("ul", {}, problems.map((p) => h("li", {}, withJobLinks(p, ids)))) : h("p", {}, "The system reports a problem it did not name."));
}

function queueTable(queues) {
  if (!queues.length) return h("p", { class: "muted" }, "No queues reported.");
  const rows = queues.flatMap((q) => {
    const waiting = (q.Visible || 0) + (q.InFlight || 0) + (q.Delayed || 0);
    const dead = q.DeadLetter && (waiting > 0 || q.FirstDead);
    const what = q.DeadLetter ? `dead letters of the ${q.Name.replace(/-dlq$/, "")} queue` : QUEUE_ROLES[q.Name] || "";
    const classes = [q.DeadLetter && "dlq", dead && "dead", q.FirstDead && "has-first-dead"].filter(Boolean);
    const row = h("tr", { "data-queue": q.Name, class: classes.join(" ") || undefined },
      h("th", { scope: "row" }, h("span", { class: "queue-name", title: q.Url }, q.Name),
        dead ? [" ", h("span", { class: "status s-Failed" }, "needs attention")] : "",
        what ? h("div", { class: "muted hide-narrow" }, h("small", {}, what)) : ""),
      h("td", { class: "num" }, messages(q.Visible)),
      h("td", { class: "num" }, messages(q.InFlight)),
      h("td", { class: "num hide-narrow" }, messages(q.Delayed)),
      h("td", { class: "num" }, q.OldestAgeSeconds === null || q.OldestAgeSeconds === undefined ? "—" : duration(q.OldestAgeSeconds)));
    if (!q.FirstDead) return [row];
    // The first dead message under its queue's row, across the table: it reads on a narrow window too.
    return [row, h("tr", { class: "dead first-dead", "data-first-dead": q.Name },
      h("td", { colspan: 5 }, firstDead(q.Name, q.FirstDead)))];
  });
  return h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": "queues-h" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Queue"), h("th", { scope: "col", class: "num" }, "Available"),
      h("th", { scope: "col", class: "num" }, "In flight"), h("th", { scope: "col", class: "num hide-narrow" }, "Delayed"),
      h("th", { scope: "col", class: "num" }, "Oldest"))),
    h("tbody", {}, rows)));
}

function firstDead(queue, d) {
  const pair = (k, v, cls) => h("div", { class: cls }, h("dt", {}, k), h("dd", {}, v));
  return h("dl", { class: "inline-facts", "aria-label": `The first dead message of ${queue}` },
    h("div", { class: "lead" }, h("dt", {}, "First dead message"), h("dd", {}, d.Kind || "?")),
    pair("Job", d.JobId ? jobLink(d.JobId) : h("span", { class: "muted" }, "none"), "dead-job"),
    d.Detail ? pair("Detail", d.Detail, "dead-detail") : "",
    pair("Sent", when(d.SentAt)),
    d.MessageId ? pair("Message ID", h("span", { class: "muted" }, d.MessageId), "hide-narrow") : "");
}

/** Minutes as "42 min" or "3 h 5 min". */
function minutesText(m) {
  m = Math.floor(m || 0);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function statusTable(id, title, counted, order) {
  const known = order.filter((s) => counted[s]);
  const others = Object.keys(counted).filter((s) => counted[s] && !order.includes(s)).sort();
  const shown = [...known, ...others];
  const total = shown.reduce((n, s) => n + counted[s], 0);
  return [h("h3", { id: `${id}-h` }, title),
    h("table", { "aria-labelledby": `${id}-h`, class: "per-status", "data-jobs": id },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Jobs"))),
      h("tbody", {}, shown.length
        ? shown.map((s) => h("tr", { "data-status": s },
          h("th", { scope: "row" }, h("a", { href: pageLink(s, 20, []), "aria-label": `${s} jobs` }, statusBadge(s))),
          h("td", { class: "num" }, counted[s].toLocaleString())))
        : h("tr", {}, h("td", { colspan: 2, class: "muted" }, "None."))),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Total"), h("td", { class: "num" }, total.toLocaleString()))))];
}

function stalledTable(stalled, after) {
  if (!stalled.length) return [h("p", { class: "muted" }, `No job has gone ${after} minutes without moving, and the sweep has stepped in for none.`)];
  return [h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": "stalled-h" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col", class: "num" }, "Idle for"), h("th", { scope: "col" }, "Last change"),
      h("th", { scope: "col", class: "num" }, "Sweep stepped in"))),
    h("tbody", {}, stalled.map((j) => h("tr", { "data-job": j.JobId },
      h("td", {}, jobLink(j.JobId, j.Description || j.JobId), j.Description ? h("div", { class: "muted jobid" }, h("small", {}, j.JobId)) : ""),
      h("td", {}, statusBadge(j.Status)),
      h("td", { class: "num" }, minutesText(j.IdleMinutes)),
      h("td", {}, when(j.LastProgressAt) || "never"),
      h("td", { class: "num" }, j.Nudges ? `${j.Nudges} time${j.Nudges === 1 ? "" : "s"}` : "no"))))))];
}

function alarmList(alarms) {
  if (alarms === null || alarms === undefined) {
    return [h("p", { class: "muted", id: "alarms-none" }, "Not available in batchops local: alarms are CloudWatch's, on a deployed stack.")];
  }
  const firing = alarms.filter((a) => a.State === "ALARM");
  const rest = alarms.length - firing.length;
  const others = rest ? `${rest} other alarm${rest === 1 ? " is" : "s are"} not in ALARM.` : "";
  if (!firing.length) return [h("p", { class: "muted" }, `No alarm is in ALARM. ${others}`.trim())];
  return [h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": "alarms-h" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Alarm"), h("th", { scope: "col" }, "State"),
      h("th", { scope: "col" }, "Reason"), h("th", { scope: "col" }, "Since"))),
    h("tbody", {}, firing.map((a) => h("tr", { class: "dead", "data-alarm": a.Name },
      h("th", { scope: "row" }, a.Name), h("td", {}, h("span", { class: "status s-Failed" }, a.State)),
      h("td", {}, a.Reason || ""), h("td", {}, when(a.Since))))))),
    others ? h("p", { class: "muted" }, others) : ""];
}

// ---- Create -------------------------------------------------------------------------------

async function createPage() {
  const text = h("textarea", { id: "spec", spellcheck: "false", "aria-describedby": "spec-help spec-errors" });
  const examples = h("select", { id: "example" }, h("option", { value: "" }, "Pick an example…"));
  const file = h("input", { id: "upload", type: "file", accept: ".json,application/json" });
  const errors = h("div", { id: "spec-errors", "aria-live": "assertive" });
  const submit = h("button", { class: "primary", type: "submit" }, "Create job");
  const form = h("form", { novalidate: true },
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "example" }, "Example spec"), examples),
      h("div", {}, h("label", { for: "upload" }, "Or upload a file"), file)),
    h("label", { for: "spec" }, "CreateJob request (JSON)"),
    h("p", { id: "spec-help", class: "muted" }, "The body of S3 Control's CreateJob, as the AWS CLI's --cli-input-json takes it. A ClientRequestToken is added when it has none."),
    text, errors, h("div", { class: "actions" }, submit));
  main.replaceChildren(h("h1", {}, "Create job"), h("section", { class: "card" }, form));
  try {
    const list = (await api("GET", "/console/examples.json")).Examples || [];
    examples.append(...list.map((e) => h("option", { value: e.Spec }, e.Name)));
  } catch (e) { /* examples are a convenience */ }
  examples.addEventListener("change", () => { if (examples.value) { text.value = examples.value; errors.replaceChildren(); } });
  file.addEventListener("change", async () => {
    if (file.files[0]) { text.value = await file.files[0].text(); errors.replaceChildren(); }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    text.removeAttribute("aria-invalid");
    let spec;
    try {
      spec = JSON.parse(text.value);
    } catch (e) {
      text.setAttribute("aria-invalid", "true");
      errors.replaceChildren(h("p", { class: "notice", role: "alert" }, `Not JSON: ${e.message}`));
      return;
    }
    if (spec && typeof spec === "object" && !Array.isArray(spec) && !spec.ClientRequestToken) {
      spec.ClientRequestToken = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
    }
    submit.disabled = true;
    const show = (problems) => {
      text.setAttribute("aria-invalid", "true");
      errors.replaceChildren(...annotate(spec, problems));
      errors.querySelector(".msg, .notice")?.scrollIntoView({ block: "nearest" });
    };
    try {
      // Every problem at once first (nothing is created), then the job.
      const checked = await api("POST", "/v20180820/jobs/validate", spec);
      const problems = (checked.Problems || []).map((p) => ({ code: p.Code, member: p.Member, message: p.Message }));
      if (problems.length) return show(problems);
      const out = await api("POST", "/v20180820/jobs", spec);
      say("Job created");
      location.hash = `#/jobs/${enc(out.JobId)}`;
    } catch (e) {
      show([{ code: e.code, message: e.message }]);
    } finally {
      submit.disabled = false;
    }
  });
}

/** The member an error message names (`Operation.S3PutObjectCopy.TargetResource: ...`). */
function memberOf(message) {
  const m = /^([A-Za-z][\w]*(?:(?:\.[A-Za-z][\w]*)|\[\d+\])*)\s*:/.exec(message || "");
  return m ? m[1] : null;
}

/** The key path of every line of pretty-printed JSON (two spaces per level); null for lines without a key. */
function linePaths(lines) {
  const stack = [];
  return lines.map((line) => {
    const depth = (line.length - line.trimStart().length) / 2;
    const key = /^\s*"((?:[^"\\]|\\.)*)":/.exec(line);
    stack.length = depth;
    if (!key) return null;
    stack[depth - 1] = key[1];
    return stack.slice(0, depth);
  });
}

/** The line whose key path is the longest prefix of `path`; -1 when none is. */
function lineOf(paths, path) {
  let best = -1;
  let bestDepth = 0;
  paths.forEach((p, i) => {
    if (!p || p.length <= bestDepth || p.length > path.length) return;
    if (p.every((k, j) => k === path[j])) { best = i; bestDepth = p.length; }
  });
  return best;
}

/** The spec pretty-printed with each problem under the line of the member it names. */
function annotate(spec, problems) {
  const lines = JSON.stringify(spec, null, 2).split("\n");
  const paths = linePaths(lines);
  const at = new Map();
  const loose = [];
  for (const p of problems) {
    const member = p.member || memberOf(p.message);
    const line = member ? lineOf(paths, member.replace(/\[(\d+)\]/g, ".$1").split(".")) : -1;
    if (line < 0) loose.push(p);
    else at.set(line, [...(at.get(line) || []), { ...p, member }]);
  }
  const head = h("p", { class: "notice", role: "alert" }, problems.length === 1
    ? `${problems[0].code ? problems[0].code + ": " : ""}${problems[0].message}`
    : `${problems.length} problems; each is shown under its member.`);
  const view = at.size ? h("div", { class: "annotated", role: "group", "aria-label": "The request, with each problem at its member" },
    lines.map((line, i) => at.has(i)
      ? [h("div", { class: "hit" }, line), at.get(i).map((p) => h("div", { class: "msg", "data-member": p.member }, `↑ ${p.message}`))]
      : h("div", {}, line))) : "";
  return [head, ...(problems.length > 1 ? loose.map((p) => notice(p)) : []), view];
}

// ---- Routing ------------------------------------------------------------------------------

async function route() {
  view++;
  stopPolling();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  // The nav names the page shown (a job's page is under Jobs).
  const section = path === "/create" || path === "/system" ? path : "/";
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === `#${section}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    if (path.startsWith("/jobs/")) {
      const id = decodeURIComponent(path.slice("/jobs/".length));
      document.title = `Job ${id} · batchops`;
      await jobPage(id);
    } else if (path === "/create") {
      document.title = "Create job · batchops";
      await createPage();
    } else if (path === "/system") {
      document.title = "System · batchops";
      await systemPage(params);
    } else {
      document.title = "Jobs · batchops";
      await jobsPage(params);
    }
  } catch (e) {
    if (!main.querySelector(".notice")) main.append(notice(e));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
