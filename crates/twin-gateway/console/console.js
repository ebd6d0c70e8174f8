// twin examiner's console: a static page over the gateway's REST/JSON API (POST /v1/<method>).
// No framework, no build step. Everything the server says is inserted with textContent or as
// attributes of elements built here; the API key lives only in the `apiKey` variable below.
(() => {
  "use strict";

  // ── State ──────────────────────────────────────────────────────────────────────────────
  let apiKey = ""; // in memory only: never localStorage, sessionStorage, cookies or a URL
  let models = []; // ListModelsResponse.models
  let defaultModel = "";
  const enrolFiles = []; // File objects waiting to be enrolled
  const probes = { verify: null, search: null }; // the File of each probe zone (see probeZone)
  let enrolRun = 0; // bumps on every batch, so an old poll loop stops

  const $ = (id) => document.getElementById(id);

  // ── Small DOM helpers (no innerHTML anywhere) ──────────────────────────────────────────
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === "text") node.textContent = String(v);
        else if (k === "className") node.className = v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else node.setAttribute(k, String(v));
      }
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const clear = (node) => node.replaceChildren();
  const show = (node, on = true) => { node.hidden = !on; };

  // proto3 JSON omits default values: read with defaults.
  const num = (v) => (v === undefined || v === null || v === "" ? 0 : Number(v));
  const str = (v) => (v === undefined || v === null ? "" : String(v));
  const list = (v) => (Array.isArray(v) ? v : []);
  const fmtScore = (v) => num(v).toFixed(4);
  const fmtRate = (v) => `${(num(v) * 100).toPrecision(3).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "")} %`;
  const metricName = (m) => str(m || "METRIC_UNSPECIFIED").replace(/^METRIC_/, "").toLowerCase();
  const jobStatusName = (s) => str(s || "JOB_STATUS_UNSPECIFIED").replace(/^JOB_STATUS_/, "");

  // ── API ────────────────────────────────────────────────────────────────────────────────
  class ApiError extends Error {
    constructor(method, status, code, message, requestId) {
      super(message);
      this.method = method;
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
    describe() {
      const rid = this.requestId ? ` (request ${this.requestId})` : "";
      const code = this.code ? `${this.code}` : `HTTP ${this.status}`;
      return `${this.method}: ${code}: ${this.message}${rid}`;
    }
  }

  async function api(method, body) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    let res;
    try {
      res = await fetch(`../v1/${method}`, {
        method: "POST",
        headers,
        body: JSON.stringify(body || {}),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(method, 0, "NETWORK", `the gateway did not answer (${e.message})`, "");
    }
    const text = await res.text();
    let data = {};
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = { message: text.slice(0, 500) };
      }
    }
    if (!res.ok) {
      throw new ApiError(method, res.status, str(data.code), str(data.message) || res.statusText,
        str(data.requestId) || str(res.headers.get("x-request-id")));
    }
    return data;
  }

  // `box` is an error element; the page banner keeps its text in a child (beside its close button).
  function showError(box, err) {
    const msg = err instanceof ApiError ? err.describe() : String(err && err.message ? err.message : err);
    const target = box.querySelector("[data-error-text]") || box;
    target.textContent = msg;
    show(box, true);
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      $("api-key-state").textContent = err.status === 401 ? "key missing or unknown" : "key lacks the scope";
      $("api-key-state").className = "bad";
    }
  }
  const hideError = (box) => {
    (box.querySelector("[data-error-text]") || box).textContent = "";
    show(box, false);
  };

  // Runs a form's request with its submit button disabled; what it throws is shown in `box`.
  async function submitting(button, box, request) {
    button.disabled = true;
    try {
      await request();
    } catch (e) {
      showError(box, e);
    } finally {
      button.disabled = false;
    }
  }

  // ── Files → Image messages ─────────────────────────────────────────────────────────────
  // A file's content as a string: `how` is the FileReader method, readAsDataURL or readAsText.
  function readFile(file, how) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result));
      r.onerror = () => reject(new Error(`cannot read ${file.name}: ${r.error}`));
      r[how](file);
    });
  }

  const currentModel = () => models.find((m) => m.name === $("model-select").value) || null;
  const isTextModel = () => str((currentModel() || {}).inputKind) === "text";

  // An Image message for the selected model: base64 bytes, or the file's text for a text model.
  async function toImage(file) {
    if (isTextModel()) return { image: { text: await readFile(file, "readAsText"), source: file.name }, preview: null };
    const url = await readFile(file, "readAsDataURL");
    const comma = url.indexOf(",");
    return { image: { data: url.slice(comma + 1), source: file.name }, preview: url };
  }

  function sampleView(container, preview, name, text) {
    clear(container);
    if (preview && preview.startsWith("data:image/")) {
      container.append(el("img", { src: preview, alt: name }));
    } else {
      container.append(el("div", { className: "placeholder", text: text || name }));
    }
    container.append(el("div", { className: "sample-name", text: name }));
  }

  // ── Drop zones ─────────────────────────────────────────────────────────────────────────
  function dropZone(zone, input, onFiles) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
      if (files.length) onFiles(files);
    });
    zone.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && e.target === zone) { e.preventDefault(); input.click(); }
    });
    input.addEventListener("change", () => {
      const files = Array.from(input.files || []);
      if (files.length) onFiles(files);
      input.value = ""; // choosing the same file again fires `change` again
    });
  }
  // The probe zone of a panel (`<prefix>-drop` around the input `<prefix>-probe`) keeps its
  // last file in probes[prefix] and shows its name in `<prefix>-probe-name`.
  function probeZone(prefix) {
    dropZone($(`${prefix}-drop`), $(`${prefix}-probe`), (files) => {
      probes[prefix] = files[0] || null;
      $(`${prefix}-probe-name`).textContent = probes[prefix] ? probes[prefix].name : "";
    });
  }
  // A page-wide drop outside a zone must not navigate away from the console.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  // ── Key ────────────────────────────────────────────────────────────────────────────────
  function applyKey() {
    apiKey = $("api-key").value.trim();
    $("api-key-state").textContent = apiKey ? "key set (memory only)" : "no key";
    $("api-key-state").className = apiKey ? "good" : "muted";
    loadModels();
  }
  function forgetKey() {
    apiKey = "";
    $("api-key").value = "";
    $("api-key-state").textContent = "no key";
    $("api-key-state").className = "muted";
  }

  // ── Models ─────────────────────────────────────────────────────────────────────────────
  async function loadModels() {
    const box = $("api-error");
    const select = $("model-select");
    try {
      const res = await api("list-models", {});
      hideError(box);
      models = list(res.models);
      defaultModel = str(res.defaultModel);
      const previous = select.value;
      clear(select);
      for (const m of models) {
        const label = `${str(m.name)}${m.version ? ` ${m.version}` : ""}${m.name === defaultModel ? " (default)" : ""}`;
        select.append(el("option", { value: str(m.name), text: label }));
      }
      const keep = models.some((m) => m.name === previous) ? previous : defaultModel;
      if (models.some((m) => m.name === keep)) select.value = keep;
      select.disabled = models.length === 0;
      if (!models.length) select.append(el("option", { value: "", text: "(no model)" }));
      onModelChange();
    } catch (e) {
      showError(box, e);
      if (!models.length) {
        clear(select);
        const hint = e instanceof ApiError && e.status === 401 ? "(enter an API key)" : "(no model list)";
        select.append(el("option", { value: "", text: hint }));
      }
    }
  }

  function defaultPoint(m) {
    if (!m) return null;
    const points = list(m.operatingPoints);
    const native = str(m.nativeMetric);
    return points.find((p) => p.name === m.defaultOperatingPoint && str(p.metric) === native)
      || points.find((p) => p.name === m.defaultOperatingPoint) || null;
  }

  function onModelChange() {
    const m = currentModel();
    const op = defaultPoint(m);
    $("model-kind").textContent = m ? str(m.inputKind) || "image" : "—";
    $("model-metric").textContent = m ? metricName(m.nativeMetric) : "—";
    $("model-operating-point").textContent = m ? str(m.defaultOperatingPoint) || "—" : "—";
    $("model-threshold").textContent = op ? fmtScore(op.threshold) : "—";
    const trained = $("model-trained");
    trained.textContent = m ? (m.trained ? "trained" : "UNTRAINED (random weights)") : "—";
    trained.className = m && !m.trained ? "bad" : "";
    renderOperatingPoints(m);
    fillPolicy($("verify-policy"), m, true);
    fillPolicy($("search-policy"), m, false);
    if (!$("panel-card").hidden) loadCard();
  }

  // Operating point choices: the model's default, each calibrated target FAR of its native
  // metric (VerifySubject's own points when the model has them), or an explicit threshold.
  function fillPolicy(select, m, subject) {
    const previous = select.value;
    clear(select);
    select.append(el("option", { value: "", text: "model default" }));
    const native = str(m && m.nativeMetric);
    const points = subject && list(m && m.subjectOperatingPoints).length
      ? list(m.subjectOperatingPoints) : list(m && m.operatingPoints);
    const fars = [...new Set(points.filter((p) => str(p.metric) === native).map((p) => num(p.targetFar)))]
      .filter((f) => f > 0).sort((a, b) => b - a);
    for (const f of fars) select.append(el("option", { value: `far:${f}`, text: `FAR ${fmtRate(f)}` }));
    select.append(el("option", { value: "explicit", text: "explicit threshold…" }));
    select.value = Array.from(select.options).some((o) => o.value === previous) ? previous : "";
    select.dispatchEvent(new Event("change"));
  }

  // The DecisionPolicy of a policy selector, or undefined for the model's default.
  function readPolicy(prefix) {
    const v = $(`${prefix}-policy`).value;
    if (v.startsWith("far:")) return { targetFar: Number(v.slice(4)) };
    if (v === "explicit") {
      const t = $(`${prefix}-threshold-input`).value.trim();
      if (t === "" || !Number.isFinite(Number(t))) throw new Error("Enter an explicit threshold (a number).");
      return { explicitThreshold: Number(t) };
    }
    return undefined;
  }

  // ── Enrol ──────────────────────────────────────────────────────────────────────────────
  function renderEnrolFiles() {
    const ul = $("enrol-file-list");
    clear(ul);
    for (const f of enrolFiles) ul.append(el("li", { text: `${f.name} (${Math.ceil(f.size / 1024)} KiB)` }));
    $("enrol-summary").textContent = enrolFiles.length ? `${enrolFiles.length} file(s) ready` : "";
  }
  function addEnrolFiles(files) {
    for (const f of files) {
      if (!enrolFiles.some((g) => g.name === f.name && g.size === f.size && g.lastModified === f.lastModified)) {
        enrolFiles.push(f);
      }
    }
    renderEnrolFiles();
  }

  function setJobRow(row, status, job, error) {
    row.dataset.status = status;
    row.className = `job status-${status.toLowerCase().replace(/[^a-z]+/g, "-")}`;
    row.querySelector(".job-status").textContent = status;
    if (job !== undefined) row.querySelector(".job-id").textContent = job;
    row.querySelector(".job-error").textContent = error || "";
  }

  function updateProgress(rows) {
    const total = rows.length;
    const finished = rows.filter((r) => r.dataset.final === "1").length;
    const failed = rows.filter((r) => r.dataset.final === "1" && r.dataset.ok !== "1").length;
    const bar = $("enrol-progress");
    bar.max = Math.max(total, 1);
    bar.value = finished;
    $("enrol-progress-text").textContent = total
      ? `${finished} / ${total} finished${failed ? `, ${failed} not stored` : ""}`
      : "idle";
  }

  async function enrol() {
    const box = $("enrol-error");
    hideError(box);
    const subject = $("enrol-subject").value.trim();
    if (!subject) return showError(box, "Enter a subject id.");
    if (!enrolFiles.length) return showError(box, "Choose or drop at least one file.");
    const model = $("model-select").value;
    const files = enrolFiles.slice();
    const run = ++enrolRun;
    const button = $("enrol-submit");
    button.disabled = true;

    const tbody = $("enrol-jobs-body");
    clear(tbody);
    const rows = files.map((f, i) => {
      const row = el("tr", null,
        el("td", { text: String(i + 1) }),
        el("td", { className: "job-file", text: f.name }),
        el("td", { className: "job-status" }),
        el("td", { className: "job-id mono" }),
        el("td", { className: "job-error" }));
      tbody.append(row);
      setJobRow(row, "READING", "", "");
      return row;
    });
    updateProgress(rows);

    try {
      const items = [];
      for (let i = 0; i < files.length; i++) {
        const { image } = await toImage(files[i]);
        items.push({ clientRef: files[i].name, subjectId: subject, image, model });
        setJobRow(rows[i], "SENDING", "", "");
      }
      const res = await api("enqueue-batch", { items });
      const pending = new Map(); // jobId -> row
      const results = list(res.results);
      results.forEach((r, n) => {
        const i = r.index !== undefined ? num(r.index) : n;
        const row = rows[i];
        if (!row) return;
        if (r.alreadyStored) {
          setJobRow(row, "ALREADY STORED", str(r.jobId), "");
          row.dataset.final = "1";
          row.dataset.ok = "1";
        } else if (r.accepted && r.jobId) {
          setJobRow(row, "QUEUED", str(r.jobId), "");
          pending.set(str(r.jobId), row);
        } else {
          setJobRow(row, "REJECTED", "", str(r.reason) || "rejected");
          row.dataset.final = "1";
        }
      });
      for (const row of rows) {
        if (row.dataset.status === "SENDING") {
          setJobRow(row, "REJECTED", "", "no result for this item");
          row.dataset.final = "1";
        }
      }
      updateProgress(rows);
      enrolFiles.length = 0;
      renderEnrolFiles();
      $("enrol-summary").textContent =
        `${num(res.accepted)} accepted, ${num(res.rejected)} rejected, ${num(res.alreadyStored)} already stored`;
      await pollJobs(run, pending, rows, box);
    } catch (e) {
      showError(box, e);
      for (const row of rows) {
        if (row.dataset.final !== "1" && !row.querySelector(".job-id").textContent) {
          setJobRow(row, "NOT SENT", "", "");
          row.dataset.final = "1";
        }
      }
      updateProgress(rows);
    } finally {
      button.disabled = false;
    }
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function pollJobs(run, pending, rows, box) {
    const started = Date.now();
    let delay = 300;
    while (pending.size && run === enrolRun) {
      if (Date.now() - started > 15 * 60 * 1000) {
        showError(box, `${pending.size} job(s) still queued after 15 minutes; stopped watching.`);
        return;
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
      const ids = Array.from(pending.keys());
      // A few at a time, so a large batch does not flood the gateway.
      for (let i = 0; i < ids.length && run === enrolRun; i += 8) {
        await Promise.all(ids.slice(i, i + 8).map(async (jobId) => {
          const row = pending.get(jobId);
          try {
            const job = await api("get-job", { jobId });
            const status = jobStatusName(job.status);
            if (status === "DONE") {
              setJobRow(row, "DONE", jobId, "");
              row.dataset.final = "1";
              row.dataset.ok = "1";
              pending.delete(jobId);
            } else if (status === "FAILED") {
              setJobRow(row, "FAILED", jobId, str(job.error) || "failed");
              row.dataset.final = "1";
              pending.delete(jobId);
            } else {
              const attempts = num(job.attempts);
              setJobRow(row, "QUEUED", jobId, attempts > 1 ? `attempt ${attempts}` : "");
            }
          } catch (e) {
            if (e instanceof ApiError && e.status === 404) return; // not visible yet: keep polling
            row.querySelector(".job-error").textContent = e instanceof ApiError ? e.describe() : String(e);
          }
        }));
      }
      updateProgress(rows);
    }
  }

  // ── Verify ─────────────────────────────────────────────────────────────────────────────
  async function verify() {
    const box = $("verify-error");
    hideError(box);
    const subject = $("verify-subject").value.trim();
    if (!subject) return showError(box, "Enter a subject id.");
    const probeFile = probes.verify;
    if (!probeFile) return showError(box, "Choose or drop a probe.");
    const model = $("model-select").value;
    const aggregation = $("verify-aggregation").value;
    show($("verify-result"), false);
    await submitting($("verify-submit"), box, async () => {
      const policy = readPolicy("verify");
      const { image, preview } = await toImage(probeFile);
      const [res, subj] = await Promise.all([
        api("verify-subject", { subjectId: subject, probe: image, model, aggregation, policy }),
        api("get-subject", { subjectId: subject, model, thumbnails: true }).catch((e) => ({ error: e })),
      ]);
      renderVerify(res, subj, probeFile, image, preview, aggregation);
      if (subj.error) showError(box, subj.error);
    });
  }

  function renderVerify(res, subj, probeFile, image, preview, aggregation) {
    const audit = res.audit || {};
    const match = res.match === true;
    const decision = $("verify-decision");
    decision.textContent = match ? "MATCH" : "NO MATCH";
    decision.className = `decision ${match ? "match" : "nomatch"}`;
    decision.dataset.match = match ? "true" : "false";
    $("verify-score").textContent = fmtScore(res.score);
    $("verify-threshold").textContent = fmtScore(audit.threshold);
    $("verify-operating-point").textContent = str(audit.operatingPoint) || "—";
    $("verify-aggregation-used").textContent = aggregation.replace(/^AGGREGATION_/, "").toLowerCase();
    $("verify-metric").textContent = metricName(audit.metric);
    $("verify-request-id").textContent = str(audit.requestId);

    sampleView($("verify-probe-view"), preview, probeFile.name, image.text);

    // One card per reference: thumbnail (or a placeholder) and its score, highest first.
    // The operating point may compare only the most recent N references: the others
    // are shown too, marked "not compared".
    const refs = subj && !subj.error ? list(subj.references) : [];
    $("verify-reference-count").textContent = refs.length > num(res.references)
      ? `${num(res.references)} of ${refs.length}` : String(num(res.references));
    const byPoint = new Map(refs.map((r) => [str(r.pointId), r]));
    const scored = list(res.perReference);
    const container = $("verify-references");
    clear(container);
    const matched = str(audit.matchedPointId);
    const seen = new Set();
    const card = (pointId, ref, score) => {
      const source = str((ref && ref.source) || (score && score.source)) || pointId;
      const box = el("div", { className: "sample" });
      if (ref && ref.thumbnail) {
        box.append(el("img", { src: `data:image/png;base64,${ref.thumbnail}`, alt: source }));
      } else {
        box.append(el("div", { className: "placeholder", text: "no thumbnail" }));
      }
      const scoreText = score ? fmtScore(score.score) : "not compared";
      const passes = score && num(score.score) >= num(audit.threshold);
      return el("figure", {
        className: `ref-card${pointId === matched ? " decisive" : ""}${score ? (passes ? " above" : " below") : " unscored"}`,
        dataset: { pointId },
      },
      box,
      el("figcaption", null,
        el("span", { className: "ref-source", text: source }),
        el("span", { className: "ref-score", text: scoreText }),
        pointId === matched ? el("span", { className: "ref-flag", text: "decisive" }) : null));
    };
    for (const s of scored) {
      const pid = str(s.pointId);
      seen.add(pid);
      container.append(card(pid, byPoint.get(pid), s));
    }
    for (const r of refs) {
      const pid = str(r.pointId);
      if (!seen.has(pid)) container.append(card(pid, r, null));
    }
    show($("verify-result"), true);
  }

  // ── Search ─────────────────────────────────────────────────────────────────────────────
  async function search() {
    const box = $("search-error");
    hideError(box);
    const probeFile = probes.search;
    if (!probeFile) return showError(box, "Choose or drop a probe.");
    const topK = Math.max(1, Math.min(1000, Math.floor(num($("search-topk").value)) || 10));
    show($("search-results"), false);
    await submitting($("search-submit"), box, async () => {
      const policy = readPolicy("search");
      const { image, preview } = await toImage(probeFile);
      const res = await api("search", {
        image, model: $("model-select").value, topK, groupBySubject: $("search-group").checked, policy,
      });
      const audit = res.audit || {};
      sampleView($("search-probe-view"), preview, probeFile.name, image.text);
      const hits = list(res.hits);
      const status = $("search-status");
      if (res.unknown === true || !hits.length) {
        status.textContent = "unknown — no enrolled subject reaches the threshold";
        status.className = "search-status unknown";
        status.dataset.unknown = "true";
      } else {
        const subjects = new Set(hits.map((h) => str(h.subjectId)));
        status.textContent = `${hits.length} hit(s), ${subjects.size} subject(s); best: ${str(hits[0].subjectId)}`;
        status.className = "search-status found";
        status.dataset.unknown = "false";
      }
      $("search-threshold").textContent = fmtScore(audit.threshold);
      $("search-operating-point").textContent = str(audit.operatingPoint) || "—";
      $("search-best-score").textContent = fmtScore(audit.score);
      const tbody = $("search-hits-body");
      clear(tbody);
      hits.forEach((h, i) => {
        tbody.append(el("tr", { className: "hit", dataset: { subjectId: str(h.subjectId) } },
          el("td", { text: String(i + 1) }),
          el("td", { className: "hit-subject", text: str(h.subjectId) }),
          el("td", { className: "hit-score", text: fmtScore(h.score) }),
          el("td", { className: "hit-source", text: str(h.source) }),
          el("td", { className: "hit-point mono", text: str(h.pointId) })));
      });
      show($("search-results"), true);
    });
  }

  // ── Model card ─────────────────────────────────────────────────────────────────────────
  function renderOperatingPoints(m) {
    $("card-model-name").textContent = m ? `${str(m.name)} ${str(m.version)}`.trim() : "";
    const tbody = $("card-operating-points-body");
    clear(tbody);
    for (const p of list(m && m.operatingPoints)) {
      const isDefault = m && p.name === m.defaultOperatingPoint && str(p.metric) === str(m.nativeMetric);
      tbody.append(el("tr", { className: isDefault ? "default-point" : "" },
        el("td", { text: `${str(p.name)}${isDefault ? " (default)" : ""}` }),
        el("td", { text: metricName(p.metric) }),
        el("td", { text: fmtRate(p.targetFar) }),
        el("td", { className: "num", text: fmtScore(p.threshold) }),
        el("td", { text: fmtRate(p.measuredFar) }),
        el("td", { text: fmtRate(p.measuredFrr) }),
        el("td", { className: "small", text: str(p.calibratedOn) })));
    }
    const sbody = $("card-subject-operating-points-body");
    clear(sbody);
    const spoints = list(m && m.subjectOperatingPoints);
    for (const p of spoints) {
      sbody.append(el("tr", null,
        el("td", { text: str(p.name) }),
        el("td", { text: str(p.aggregation) }),
        el("td", { text: String(num(p.references)) }),
        el("td", { className: "num", text: fmtScore(p.threshold) }),
        el("td", { text: fmtRate(p.measuredFar) }),
        el("td", { text: fmtRate(p.measuredFarRandom) }),
        el("td", { text: fmtRate(p.measuredFrr) })));
    }
    show($("card-subject-points-box"), spoints.length > 0);
  }

  let cardRequest = 0;
  async function loadCard() {
    const box = $("card-error");
    hideError(box);
    const model = $("model-select").value;
    const mine = ++cardRequest;
    const article = $("card-markdown");
    try {
      const card = await api("get-model-card", { model });
      if (mine !== cardRequest) return;
      clear(article);
      const md = str(card.markdown);
      if (md) renderMarkdown(md, article);
      else article.append(el("p", { className: "muted", text: "This model ships no model card." }));
      setPlot("card-roc", str(card.rocSvg));
      setPlot("card-det", str(card.detSvg));
    } catch (e) {
      if (mine !== cardRequest) return;
      clear(article);
      setPlot("card-roc", "");
      setPlot("card-det", "");
      showError(box, e);
    }
  }

  // SVG text goes in as an <img> data URL: it is never parsed into this document.
  function setPlot(id, svg) {
    const img = $(id);
    const figure = $(`${id}-figure`);
    if (!svg) {
      img.removeAttribute("src");
      show(figure, false);
      return;
    }
    const bytes = new TextEncoder().encode(svg);
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    img.src = `data:image/svg+xml;base64,${btoa(bin)}`;
    show(figure, true);
  }

  // A tiny Markdown renderer: headings, paragraphs, lists, tables, fenced code, quotes,
  // and inline code / bold / italic / links. It builds DOM nodes; no HTML is ever parsed.
  function renderMarkdown(md, root) {
    const lines = md.replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    const isTableSep = (s) => /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(s);
    const cells = (s) => {
      let t = s.trim();
      if (t.startsWith("|")) t = t.slice(1);
      if (t.endsWith("|") && !t.endsWith("\\|")) t = t.slice(0, -1);
      return t.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
    };
    const blockStart = (s) => /^(#{1,6})\s|^```|^\s*([-*+]|\d+[.)])\s+|^>\s?|^\s*(-{3,}|\*{3,})\s*$/.test(s);

    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { i++; continue; }
      let m;
      if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        root.append(inline(el(`h${m[1].length}`), m[2]));
        i++;
      } else if (/^```/.test(line)) {
        const lang = line.slice(3).trim();
        const body = [];
        i++;
        while (i < lines.length && !/^```/.test(lines[i])) body.push(lines[i++]);
        i++; // closing fence
        root.append(el("pre", null, el("code", { className: lang ? `lang-${lang}` : null, text: body.join("\n") })));
      } else if (/^\s*(-{3,}|\*{3,})\s*$/.test(line)) {
        root.append(el("hr"));
        i++;
      } else if (line.includes("|") && i + 1 < lines.length && isTableSep(lines[i + 1])) {
        const table = el("table", { className: "data md-table" });
        const head = el("tr");
        for (const c of cells(line)) head.append(inline(el("th"), c));
        table.append(el("thead", null, head));
        const tbody = el("tbody");
        i += 2;
        while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
          const tr = el("tr");
          for (const c of cells(lines[i])) tr.append(inline(el("td"), c));
          tbody.append(tr);
          i++;
        }
        table.append(tbody);
        root.append(el("div", { className: "table-wrap" }, table));
      } else if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
        const ordered = /^\s*\d+[.)]\s+/.test(line);
        const items = []; // each item: its lines
        while (i < lines.length && lines[i].trim()) {
          const im = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]);
          if (im) items.push([im[2]]);
          else if (items.length && /^\s+\S/.test(lines[i])) items[items.length - 1].push(lines[i].trim());
          else break;
          i++;
        }
        const listEl = el(ordered ? "ol" : "ul");
        for (const parts of items) listEl.append(inline(el("li"), parts.join(" ")));
        root.append(listEl);
      } else if (/^>\s?/.test(line)) {
        const body = [];
        while (i < lines.length && /^>\s?/.test(lines[i])) body.push(lines[i++].replace(/^>\s?/, ""));
        const quote = el("blockquote");
        renderMarkdown(body.join("\n"), quote);
        root.append(quote);
      } else {
        const body = [line.trim()];
        i++;
        while (i < lines.length && lines[i].trim() && !blockStart(lines[i])
               && !(lines[i].includes("|") && i + 1 < lines.length && isTableSep(lines[i + 1]))) {
          body.push(lines[i++].trim());
        }
        root.append(inline(el("p"), body.join(" ")));
      }
    }
    return root;
  }

  // Inline spans: `code`, **bold**, *italic* / _italic_, [text](url). Text stays text.
  function inline(node, text) {
    const re = /(`+)([\s\S]*?)\1|\*\*([^*]+?)\*\*|__([^_]+?)__|\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) node.append(document.createTextNode(text.slice(last, m.index)));
      if (m[1]) node.append(el("code", { text: m[2].trim() }));
      else if (m[3] !== undefined) node.append(inline(el("strong"), m[3]));
      else if (m[4] !== undefined) node.append(inline(el("strong"), m[4]));
      else if (m[5] !== undefined) node.append(inline(el("em"), m[5]));
      else if (m[6] !== undefined) node.append(inline(el("em"), m[6]));
      else if (m[7] !== undefined) {
        const href = m[8];
        // Only web links open (in a new tab, no referrer); repository-relative paths stay text.
        if (/^https?:\/\//i.test(href)) {
          node.append(inline(el("a", { href, target: "_blank", rel: "noopener noreferrer" }), m[7]));
        } else {
          node.append(inline(el("span", { className: "md-link", title: href }), m[7]));
        }
      }
      last = re.lastIndex;
    }
    if (last < text.length) node.append(document.createTextNode(text.slice(last)));
    return node;
  }

  // ── Tabs ───────────────────────────────────────────────────────────────────────────────
  function selectTab(tab) {
    for (const t of document.querySelectorAll(".tab")) {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      show($(t.dataset.panel), on);
    }
    if (tab.id === "tab-card") loadCard();
  }

  // ── Wiring ─────────────────────────────────────────────────────────────────────────────
  function init() {
    for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => selectTab(t));
    $("api-key-apply").addEventListener("click", applyKey);
    $("api-key-forget").addEventListener("click", forgetKey);
    $("api-key").addEventListener("keydown", (e) => { if (e.key === "Enter") applyKey(); });
    $("api-key").addEventListener("change", () => { if ($("api-key").value.trim() !== apiKey) applyKey(); });
    $("api-error-close").addEventListener("click", () => show($("api-error"), false));
    $("model-select").addEventListener("change", onModelChange);
    $("model-reload").addEventListener("click", loadModels);

    dropZone($("enrol-drop"), $("enrol-files"), addEnrolFiles);
    $("enrol-clear").addEventListener("click", () => { enrolFiles.length = 0; renderEnrolFiles(); });
    $("enrol-submit").addEventListener("click", enrol);

    probeZone("verify");
    $("verify-submit").addEventListener("click", verify);
    $("verify-subject").addEventListener("keydown", (e) => { if (e.key === "Enter") verify(); });

    probeZone("search");
    $("search-submit").addEventListener("click", search);

    $("card-reload").addEventListener("click", loadCard);
    for (const prefix of ["verify", "search"]) {
      $(`${prefix}-policy`).addEventListener("change", () => {
        show($(`${prefix}-threshold-field`), $(`${prefix}-policy`).value === "explicit");
      });
    }

    // Copy the enrolled subject into the verify box, the common next step.
    $("enrol-subject").addEventListener("change", () => {
      if (!$("verify-subject").value) $("verify-subject").value = $("enrol-subject").value.trim();
    });

    loadModels();
  }

  init();
})();
