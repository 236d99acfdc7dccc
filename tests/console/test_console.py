"""What a user does in the console, in a real browser: create (with a mistake first), watch,
read failures, confirm, cancel, filter the list. Screenshots go to .local/console/."""
import json
import os
import re
import urllib.request

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import SHOTS, create, spec

LONG = 120


def wait(browser, timeout=LONG):
    return WebDriverWait(browser, timeout, poll_frequency=0.2)


def no_script_errors(browser):
    # Script errors only: a refused API call is logged by the browser too, and is expected.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert not errors, errors


def open_job(browser, local, job_id):
    browser.get(f"{local}/console/#/jobs/{job_id}")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "h1 .status")))


def status_of(browser):
    # One script call: the heading is rebuilt on every refresh, so an element found first
    # may be gone by the time its text is asked for.
    return browser.execute_script("return document.querySelector('h1 .status')?.textContent || ''")


def text(browser, css):
    """The text of the first element matching `css`, read in one script call (the page rebuilds
    what it refreshes, so an element found first may be gone when its text is asked for)."""
    return browser.execute_script("return document.querySelector(arguments[0])?.innerText ?? null", css)


def texts(browser, css):
    return browser.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", css)


def attr(browser, css, name):
    return browser.execute_script("return document.querySelector(arguments[0])?.getAttribute(arguments[1]) ?? null", css, name)


def wait_status(browser, status):
    wait(browser).until(lambda d: status_of(d) == status, f"status never {status}")


def fact(shown, name):
    """The value next to `name` in the innerText of a list of facts (each on its own line)."""
    found = re.search(rf"^{re.escape(name)}\n(.+)$", shown, re.M)
    assert found, (name, shown)
    return found[1]


def seconds(shown):
    """Seconds of a duration as the console shows one under an hour: "42 s", "3 min 5 s"."""
    found = re.fullmatch(r"(?:(\d+) min )?(\d+) s", shown)
    assert found, shown
    return int(found[1] or 0) * 60 + int(found[2])


def test_a_spec_with_a_mistake_shows_the_error_at_its_member_then_the_fixed_one_runs_to_100(browser, local, data):
    browser.get(f"{local}/console/#/create")
    area = wait(browser, 20).until(EC.presence_of_element_located((By.ID, "spec")))
    # The examples of examples/specs/ are offered.
    names = [o.text for o in Select(browser.find_element(By.ID, "example")).options]
    assert "S3PutObjectCopy" in names and "LambdaInvoke" in names, names
    bad = spec(data, "all", Description="console: copy 40 photos")
    bad["Operation"]["S3PutObjectCopy"]["TargetResource"] = "dst-bucket-without-arn"
    bad["Priority"] = -1
    # Uploaded from a file.
    path = os.path.join(SHOTS, "bad-spec.json")
    with open(path, "w") as f:
        json.dump(bad, f, indent=2)
    browser.find_element(By.ID, "upload").send_keys(path)
    wait(browser, 10).until(lambda d: "dst-bucket-without-arn" in d.execute_script("return document.getElementById('spec').value"))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # Both mistakes at once, each under the line of its member.
    wait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".annotated .msg")) == 2)
    msgs = browser.find_elements(By.CSS_SELECTOR, ".annotated .msg")
    members = [m.get_attribute("data-member") for m in msgs]
    assert members == ["Operation.S3PutObjectCopy.TargetResource", "Priority"], members
    assert "not an S3 ARN" in msgs[0].text and "0-2147483647" in msgs[1].text, [m.text for m in msgs]
    hits = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".annotated .hit")]
    assert hits == ['      "TargetResource": "dst-bucket-without-arn"', '  "Priority": -1,'], hits
    assert browser.execute_script("return fetch('/v20180820/jobs').then(r => r.json()).then(b => b.Jobs.length)") == 0, \
        "nothing was created"
    assert area.get_attribute("aria-invalid") == "true"
    browser.save_screenshot(os.path.join(SHOTS, "create-error.png"))

    good = dict(bad, Priority=10, Operation={"S3PutObjectCopy": {"TargetResource": f"arn:aws:s3:::{data['dst']}"}})
    area.clear()
    area.send_keys(json.dumps(good, indent=2))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, 20).until(lambda d: "#/jobs/" in d.current_url)
    wait_status(browser, "Complete")
    wait(browser, 10).until(lambda d: attr(d, "[role=progressbar]", "aria-valuenow") == "40")
    assert attr(browser, "[role=progressbar]", "aria-valuemax") == "40"
    assert "(100 %)" in text(browser, ".progress-text")
    def in_order(d):
        timeline = text(d, "ol.timeline") or ""
        return all(s in timeline for s in ("New", "Active", "Complete")) and \
            timeline.index("New") < timeline.index("Active") < timeline.index("Complete")
    wait(browser, 10).until(in_order, "the status history is not New, ..., Active, ..., Complete")
    browser.save_screenshot(os.path.join(SHOTS, "job-complete.png"))
    no_script_errors(browser)


def test_a_job_with_failed_tasks_shows_their_codes_counts_and_rows(browser, local, data):
    job_id = create(local, spec(data, "missing", Description="console: three keys missing"))
    open_job(browser, local, job_id)
    wait_status(browser, "Complete")
    wait(browser).until(lambda d: text(d, "tr[data-code=NoSuchKey]"))
    assert text(browser, "tr[data-code=NoSuchKey]").split() == ["NoSuchKey", "404", "3"]
    keys = {t.split("\n")[0] for t in texts(browser, "details table tbody td:nth-child(2)")}
    assert keys == {"gone/a.jpg", "gone/b.jpg", "gone/c.jpg"}, keys
    assert "Retry 3 failed tasks" in text(browser, "section[aria-labelledby=act-h]")
    # The report's files, each a working download link.
    wait(browser, 20).until(lambda d: texts(d, "#report-files tbody tr"))
    files = browser.execute_script("""return [...document.querySelectorAll('#report-files tbody tr')]
        .map(r => [r.querySelector('a').href, r.cells[1].innerText])""")
    assert {status for _, status in files} == {"failed", "succeeded"}, files
    rows = [row for href, status in files if status == "failed"
            for row in urllib.request.urlopen(href, timeout=10).read().decode().splitlines()]
    assert sorted(r.split(",")[1] for r in rows) == ["gone/a.jpg", "gone/b.jpg", "gone/c.jpg"], rows
    manifest = browser.execute_script("return [...document.querySelectorAll('#report-files a')].find(a => a.innerText == 'manifest.json').href")
    assert b"Report_CSV_20180820" in urllib.request.urlopen(manifest, timeout=10).read()
    browser.save_screenshot(os.path.join(SHOTS, "job-failures.png"))
    no_script_errors(browser)


def confirm_dialog(browser, fill=None):
    dialog = wait(browser, 10).until(EC.visibility_of_element_located((By.ID, "ask")))
    if fill:
        for name, value in fill.items():
            field = dialog.find_element(By.ID, f"ask-{name}")
            field.clear()
            field.send_keys(value)
    dialog.find_element(By.ID, "ask-ok").click()


def test_a_suspended_job_is_confirmed_and_runs(browser, local, data):
    job_id = create(local, spec(data, "all", Description="console: waits for confirmation", ConfirmationRequired=True))
    open_job(browser, local, job_id)
    wait_status(browser, "Suspended")
    button = wait(browser, 20).until(EC.element_to_be_clickable((By.XPATH, "//button[text()='Confirm job']")))
    button.click()
    confirm_dialog(browser)
    wait_status(browser, "Complete")
    no_script_errors(browser)


def test_a_job_is_cancelled_with_a_reason_after_asking(browser, local, data):
    job_id = create(local, spec(data, "all", Description="console: to be cancelled", ConfirmationRequired=True))
    open_job(browser, local, job_id)
    wait_status(browser, "Suspended")
    wait(browser, 20).until(EC.element_to_be_clickable((By.XPATH, "//button[text()='Cancel job']"))).click()
    # Backing out of the dialog does nothing.
    dialog = wait(browser, 10).until(EC.visibility_of_element_located((By.ID, "ask")))
    dialog.find_element(By.XPATH, ".//button[text()='Back']").click()
    assert status_of(browser) == "Suspended"
    browser.find_element(By.XPATH, "//button[text()='Cancel job']").click()
    confirm_dialog(browser, {"reason": "wrong bucket"})
    wait_status(browser, "Cancelled")
    wait(browser, 10).until(lambda d: "wrong bucket" in (text(d, "ol.timeline") or ""))
    no_script_errors(browser)


def test_a_refused_action_shows_the_apis_message(browser, local, data):
    job_id = create(local, spec(data, "all", Description="console: bad priority", ConfirmationRequired=True))
    open_job(browser, local, job_id)
    wait(browser, 20).until(EC.element_to_be_clickable((By.XPATH, "//button[text()='Change priority']"))).click()
    # The number field allows what the API refuses only past its bounds: -1 is sent as typed.
    browser.execute_script("document.getElementById('ask-priority').removeAttribute('min')")
    confirm_dialog(browser, {"priority": "-1"})
    alert = wait(browser, 10).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "section[aria-labelledby=act-h] .notice")))
    assert "priority" in alert.text.lower(), alert.text


def test_the_job_list_shows_every_job_with_its_bar_and_filters_by_status(browser, local, data):
    done = create(local, spec(data, "missing", Description="console: listed and complete"))
    held = create(local, spec(data, "all", Description="console: listed and suspended", ConfirmationRequired=True))
    create(local, spec(data, "all", Description="console: listed, one more", ConfirmationRequired=True))
    browser.get(f"{local}/console/#/")
    row = lambda d, job: d.find_elements(By.CSS_SELECTOR, f"tr[data-job='{job}']")  # noqa: E731
    wait(browser, 60).until(lambda d: row(d, done) and row(d, held), "the new jobs never showed")
    wait(browser, 60).until(lambda d: d.execute_script(
        f"return document.querySelector(\"tr[data-job='{done}'] .status\")?.textContent") == "Complete")
    listed = text(browser, f"tr[data-job='{done}']")
    assert "console: listed and complete" in listed and "S3PutObjectCopy" in listed and "20 ✓ 3 ✗ of 23 (100 %)" in listed, listed
    assert browser.execute_script(
        "return [...document.querySelectorAll('tr[data-job]')].every(r => r.querySelector('[role=progressbar]'))")
    browser.save_screenshot(os.path.join(SHOTS, "jobs.png"))
    Select(browser.find_element(By.ID, "status-filter")).select_by_visible_text("Suspended")
    wait(browser, 20).until(lambda d: "status=Suspended" in d.current_url)
    wait(browser, 20).until(lambda d: row(d, held) and not row(d, done))
    statuses = browser.execute_script("return [...document.querySelectorAll('tr[data-job] .status')].map(s => s.textContent)")
    assert set(statuses) == {"Suspended"}, statuses
    # Pages of two: older and back to newer, each job on one page only.
    browser.get(f"{local}/console/#/?size=2")
    ids = lambda d: d.execute_script("return [...document.querySelectorAll('tr[data-job]')].map(r => r.dataset.job)")  # noqa: E731
    wait(browser, 20).until(lambda d: len(ids(d)) == 2)
    first = ids(browser)
    wait(browser, 20).until(EC.element_to_be_clickable((By.LINK_TEXT, "Older →"))).click()
    wait(browser, 20).until(lambda d: "Page 2" in (text(d, ".pager") or "") and len(ids(d)) == 2)
    second = ids(browser)
    assert not set(first) & set(second), (first, second)
    wait(browser, 20).until(EC.element_to_be_clickable((By.LINK_TEXT, "← Newer"))).click()
    wait(browser, 20).until(lambda d: "Page 1" in (text(d, ".pager") or "") and ids(d) == first)
    browser.get(f"{local}/console/#/?status=Suspended")
    wait(browser, 20).until(lambda d: ids(d))
    browser.set_window_size(420, 900)
    browser.save_screenshot(os.path.join(SHOTS, "jobs-narrow.png"))
    browser.set_window_size(1280, 1000)
    no_script_errors(browser)


def test_another_sites_page_cannot_drive_the_local_api(local, data):
    body = json.dumps(spec(data, "all", ClientRequestToken="csrf-1")).encode()
    evil = urllib.request.Request(f"{local}/v20180820/jobs", data=body, method="POST",
                                  headers={"content-type": "text/plain", "origin": "http://evil.example"})
    try:
        urllib.request.urlopen(evil, timeout=10)
        raise AssertionError("a cross-site POST was taken")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    # Without an Origin (the CLI, an SDK) it is taken.
    plain = urllib.request.Request(f"{local}/v20180820/jobs/validate", data=body, method="POST",
                                   headers={"content-type": "application/json"})
    assert json.load(urllib.request.urlopen(plain, timeout=10)) == {"Problems": []}


def test_a_running_job_shows_its_rate_and_time_left_and_its_bar_moves(browser, local, data):
    job_id = create(local, spec(data, "all", Description="console: rate limited", MaxTasksPerSecond=4))
    open_job(browser, local, job_id)
    # Read in one script call: the section is rebuilt on every refresh.
    facts = lambda d: d.execute_script(  # noqa: E731
        "return document.querySelector('section[aria-labelledby=prog-h] dl')?.innerText || ''")

    def while_active(d):
        # The read that showed the time left is the one checked: the rate is gone once the job ends.
        shown = facts(d)
        return shown if "Time left" in shown else None

    text = wait(browser, 60).until(while_active, "no time left shown while active")
    assert "Rate limit\n4 tasks/s" in text, text
    # The rate shown is the tasks done over the time active, as shown beside it in the same
    # read: how fast the job runs depends on the machine, that agreement does not.
    rate = re.fullmatch(r"(\d+(?:\.\d)?) tasks/s", fact(text, "Rate"))
    assert rate, text
    ran = int(fact(text, "Succeeded")) + int(fact(text, "Failed"))
    per_second = ran / seconds(fact(text, "Active for"))
    assert abs(float(rate[1]) - per_second) <= (0.05 if per_second < 10 else 0.5) + 1e-9, text
    done = lambda d: int(d.execute_script(  # noqa: E731
        "return document.querySelector('[role=progressbar]').getAttribute('aria-valuenow')"))
    first = done(browser)
    wait(browser, 60).until(lambda d: done(d) > first, "the bar did not move")
    wait_status(browser, "Complete")
    assert "Time left" not in facts(browser)
    no_script_errors(browser)


def whole_page_shot(browser, name, width):
    """A screenshot of the whole page at `width`: the window made as tall as the page."""
    browser.set_window_size(width, 1000)
    for _ in range(3):  # the page's height changes with its width, and the window's with both
        inner = browser.execute_script("return window.innerHeight")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        if height <= inner:
            break
        size = browser.get_window_size()
        browser.set_window_size(width, size["height"] + height - inner)
    browser.save_screenshot(os.path.join(SHOTS, name))


def test_the_system_page_shows_a_dead_letter_its_job_and_the_jobs_per_status(browser, local, data, prefix):
    import boto3
    job_id = create(local, spec(data, "missing", Description="console: tagging, three keys missing",
                                Operation={"S3PutObjectTagging": {"TagSet": [{"Key": "checked", "Value": "yes"}]}}))
    def ended(_):
        job = json.load(urllib.request.urlopen(f"{local}/v20180820/jobs/{job_id}", timeout=10))["Job"]
        return job if job["Status"] in ("Complete", "Failed", "Cancelled") else None
    job = WebDriverWait(None, LONG, poll_frequency=0.5).until(ended, "the job never ended")
    assert job["Status"] == "Complete" and job["ProgressSummary"]["NumberOfTasksFailed"] == 3, job
    # One of its chunks dead-lettered, as SQS moves a message received five times (the sweep,
    # which would take it, waits an hour here: conftest).
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    dlq = [u for u in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) if u.endswith(f"/{prefix}-chunks-dlq")]
    assert len(dlq) == 1, dlq
    sqs.send_message(QueueUrl=dlq[0], MessageBody=json.dumps(
        {"job_id": job_id, "index": 0, "start": 0, "end": 10, "first_line": 1, "tasks": 10}))

    browser.get(f"{local}/console/#/system")
    wait(browser, 30).until(lambda d: attr(d, "#health > section", "data-healthy") == "false", "the banner never asked for attention")
    assert text(browser, "#health h2").endswith("Needs attention"), text(browser, "#health")
    assert texts(browser, "#health li"), "no problem is listed"
    assert attr(browser, "header nav a[href='#/system']", "aria-current") == "page"
    # The chunk dead-letter queue: one message, highlighted, its first one naming the job.
    wait(browser, 30).until(lambda d: text(d, "tr[data-first-dead=chunk-dlq]"), "no first dead message shown")
    cells = browser.execute_script(
        "return [...document.querySelector('tr[data-queue=chunk-dlq]').cells].map(c => c.innerText.trim())")
    assert cells[0].startswith("chunk-dlq") and "needs attention" in cells[0] and cells[1] == "1", cells
    assert "dead" in attr(browser, "tr[data-queue=chunk-dlq]", "class").split()
    dead = text(browser, "tr[data-first-dead=chunk-dlq]")
    assert "chunk" in dead and job_id in dead, dead
    assert attr(browser, "tr[data-first-dead=chunk-dlq] .dead-job a", "href") == f"#/jobs/{job_id}"
    # The queues not dead-lettered into are not highlighted.
    assert browser.execute_script("return [...document.querySelectorAll('tr.dead[data-queue]')].map(r => r.dataset.queue)") \
        == ["chunk-dlq"]
    # Jobs per status: the ended ones of the last day count this one with every other Complete job.
    listed = json.load(urllib.request.urlopen(f"{local}/v20180820/jobs?jobStatuses=Complete&maxResults=1000", timeout=10))
    complete = len(listed["Jobs"])
    assert job_id in {j["JobId"] for j in listed["Jobs"]}
    wait(browser, 30).until(lambda d: text(d, "[data-jobs=ended] tr[data-status=Complete] td") == str(complete),
                            f"the Complete jobs of the last day are not {complete}")
    assert text(browser, "#alarms p") == "Not available in batchops local: alarms are CloudWatch's, on a deployed stack."
    whole_page_shot(browser, "system.png", 1280)
    whole_page_shot(browser, "system-narrow.png", 420)
    browser.set_window_size(1280, 1000)
    # The page refreshes (every 15 seconds) and the job's link leads to its page, from the keyboard.
    first = text(browser, "#system-caption")
    wait(browser, 40).until(lambda d: text(d, "#system-caption") != first, "the page never refreshed")
    # Focused and pressed without holding the element: a refresh rebuilds the table (its ages
    # change), and gives the focus back to the same link.
    browser.execute_script("document.querySelector('tr[data-first-dead=chunk-dlq] .dead-job a').focus()")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser, 20).until(lambda d: d.current_url.endswith(f"#/jobs/{job_id}"))
    wait_status(browser, "Complete")
    # The bound of "stalled" is the page's to choose (stalledMinutes), and the API's answer says it.
    browser.get(f"{local}/console/#/system")
    field = wait(browser, 20).until(EC.element_to_be_clickable((By.ID, "stalled-minutes")))
    wait(browser, 20).until(lambda d: d.execute_script("return document.getElementById('stalled-minutes').value") == "30")
    field.click()  # focused, the field is left alone by the refresh: what is typed stays
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("5", Keys.ENTER)
    wait(browser, 20).until(lambda d: d.current_url.endswith("#/system?stalledMinutes=5"))
    wait(browser, 20).until(lambda d: text(d, "#stalled-h") == "Stalled jobs (5 minutes without moving)", text(browser, "#stalled-h"))
    no_script_errors(browser)
