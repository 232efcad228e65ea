// hypero dashboard: a read-only page over the JSON API under api/.
// Every name and value from the database reaches the page as a text node or an attribute value,
// never as HTML. Views poll the API every second and redraw what changed.
"use strict";
(() => {
  const STATES = ["queued", "running", "completed", "failed", "pruned", "cancelled"];
  const LIVE = new Set(["queued", "running"]);
  const COLORS = ["#2457c5", "#e8590c", "#22a06b", "#c2255c", "#7048e8", "#0c8599",
    "#a58a3a", "#5c940d", "#d6336c", "#495057"];
  const POLL_MS = 1000;
  const main = document.getElementById("main");
  let view = null;

  // -- helpers ----------------------------------------------------------------------------------

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "style") Object.assign(el.style, v);  // CSSOM: allowed by the CSP
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    return body;
  }

  function num(v) {  // a JSON value as a number (non-finite numbers come as strings), else null
    if (typeof v === "number") return v;
    if (typeof v === "boolean") return v ? 1 : 0;
    return { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity }[v] ?? null;
  }

  function fmt(v) {
    if (v == null) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(4));
    }
    if (typeof v === "string" || typeof v === "boolean") return String(v);
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + "…" : s;
  }

  const isNum = (v) => typeof v === "number" || ["NaN", "Infinity", "-Infinity"].includes(v);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const state = (s) => h("span", { class: `state ${s}` }, s);

  function duration(seconds) {
    if (seconds == null) return "?";
    if (seconds < 90) return `${Math.round(seconds)}s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
    return `${(seconds / 3600).toFixed(1)}h`;
  }

  function crumbs(...items) {
    document.getElementById("crumbs").replaceChildren(
      ...items.map(([text, href]) => (href ? h("a", { href }, text) : h("span", {}, text))));
    document.title = [...items.map((i) => i[0]).reverse(), "hypero"].join(" — ");
  }

  function setLive(ok) {
    document.getElementById("live").classList.toggle("stale", !ok);
  }

  // A two-column table of a document, keys sorted unless `ordered`; values in full.
  function kvTable(obj, ordered) {
    const keys = ordered ? Object.keys(obj) : Object.keys(obj).sort();
    if (!keys.length) return h("p", { class: "muted" }, "none");
    const full = (v) => (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));
    return h("table", { class: "kv" }, h("tbody", {}, keys.map((k) =>
      h("tr", { dataset: { key: k } }, h("th", {}, k), h("td", {}, full(obj[k]))))));
  }

  // -- charts (uPlot) ---------------------------------------------------------------------------

  // Draw `series` ([{label, xs, ys}]) as lines, or as points with `scatter`, into `el`.
  function chart(el, title, series, opts = {}) {
    const tables = series.map((s) => [s.xs, s.ys]);
    const count = series.reduce((n, s) => n + s.ys.filter((y) => y != null).length, 0);
    el.dataset.points = String(count);
    el.dataset.series = String(series.length);
    if (!series.length || !count) {
      if (el._uplot) { el._uplot.destroy(); el._uplot = null; }
      el.replaceChildren(h("p", { class: "muted" }, opts.empty || "no data"));
      el._shape = null;
      return;
    }
    const data = series.length === 1 ? tables[0] : uPlot.join(tables);
    const shape = JSON.stringify([title, series.map((s) => s.label), opts.xlog, opts.labels]);
    if (el._uplot && el._shape === shape) { el._uplot.setData(data); return; }
    if (el._uplot) el._uplot.destroy();
    el.replaceChildren();
    const width = Math.max(320, el.clientWidth || el.parentElement.clientWidth - 24);
    const axisX = { label: opts.xlabel || "step" };
    if (!opts.scatter && series.every((c) => c.xs.every(Number.isInteger))) {
      axisX.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6];
    }
    axisX.values = opts.labels ? (u, ticks) => ticks.map((t) => opts.labels[t] ?? "")
      : (u, ticks) => ticks.map(tick);
    el._uplot = new uPlot({
      title, width, height: opts.height || 260,
      scales: { x: { time: false, distr: opts.xlog ? 3 : 1 } },
      axes: [axisX, { label: opts.ylabel || "", size: 64, values: (u, ticks) => ticks.map(tick) }],
      cursor: { drag: { x: true, y: false } },
      series: [{ label: opts.xlabel || "step" }, ...series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], spanGaps: true, width: 1.5,
        ...(opts.scatter ? { paths: () => null, points: { show: true, size: 6,
          fill: COLORS[i % COLORS.length] } } : {}),
      }))],
    }, data, el);
    el._shape = shape;
  }

  const tick = (t) => (t == null ? "" : String(+t.toPrecision(3)));

  function curveSeries(curves, name) {
    return Object.entries(curves)
      .filter(([, byName]) => byName[name])
      .map(([id, byName]) => ({
        label: `trial ${id}`, xs: byName[name].map((p) => num(p[0])),
        ys: byName[name].map((p) => { const y = num(p[1]); return Number.isFinite(y) ? y : null; }),
      }));
  }

  // -- views ------------------------------------------------------------------------------------

  function route() {
    if (view) view.stop();
    const [path, query] = location.hash.replace(/^#/, "").split("?");
    const params = new URLSearchParams(query || "");
    const m = path.match(/^\/(battery|trial)\/(\d+)$/);
    main.replaceChildren();
    if (m && m[1] === "battery") view = batteryView(+m[2], params);
    else if (m && m[1] === "trial") view = trialView(+m[2]);
    else view = homeView();
  }

  // Run `tick` now and every POLL_MS while the view is shown; stop() ends it.
  function poller(tick) {
    let timer = null, stopped = false;
    const run = async () => {
      const started = Date.now();
      try { await tick(); setLive(true); } catch (e) { setLive(false); console.warn(e); }
      if (!stopped) timer = setTimeout(run, Math.max(200, POLL_MS - (Date.now() - started)));
    };
    run();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  function fail(e) {
    main.replaceChildren(h("p", { class: "error" }, String(e.message || e)),
      h("p", {}, h("a", { href: "#/" }, "all batteries")));
  }

  function homeView() {
    crumbs(["batteries"]);
    main.dataset.view = "home";
    const body = h("tbody");
    main.append(h("h1", {}, "Batteries"), h("div", { class: "table-wrap" },
      h("table", { id: "batteries" }, h("thead", {}, h("tr", {},
        ["battery", "versions", "sweeps", "trials", "queued or running"]
          .map((c) => h("th", {}, c)))),
      body)));
    return poller(async () => {
      const list = await api("api/batteries");
      body.replaceChildren(...(list.length ? list.map((b) => h("tr", { dataset: { id: b.id } },
        h("td", {}, h("a", { href: `#/battery/${b.id}` }, b.name)),
        h("td", { class: "num" }, b.versions), h("td", { class: "num" }, b.sweeps),
        h("td", { class: "num" }, b.trials.toLocaleString()),
        h("td", { class: "num" }, b.live))) : [h("tr", {}, h("td", { colspan: 5, class: "muted" },
        "No battery yet: run a sweep (hypero run spec.yaml) or record one with the hex API."))]));
    });
  }

  function trialView(id) {
    main.dataset.view = "trial";
    let last = null, charts = {};
    const head = h("div"), body = h("div");
    const curves = h("div", { class: "grid", id: "trial-curves" });
    main.append(head, body, h("h2", {}, "Learning curves"), curves);
    const p = poller(async () => {
      if (last && !LIVE.has(last.state) && last.done) return;  // final and drawn: nothing moves
      let t, data;
      try {
        [t, data] = await Promise.all([api(`api/trials/${id}`), api(`api/curves?ids=${id}`)]);
      } catch (e) { p.stop(); fail(e); return; }
      data = data.curves[String(id)];
      crumbs(["batteries", "#/"], [t.battery.name, `#/battery/${t.battery.id}`], [`trial ${id}`]);
      head.replaceChildren(h("h1", {}, `trial ${id} `, state(t.state)));
      const facts = {
        battery: t.battery.name, version: t.version.description, sweep: t.sweep,
        "trial index": t.trial_index, state: t.state,
        attempts: `${t.attempt}` + (t.failures ? ` (${t.failures} raised)` : ""),
        worker: t.worker, created: when(t.created_at), started: when(t.started_at),
        finished: when(t.finished_at), heartbeat: when(t.heartbeat_at),
        "lease until": when(t.lease_until), "cancel requested": t.cancel_requested ? "yes" : "",
      };
      for (const k of Object.keys(facts)) if (facts[k] == null || facts[k] === "") delete facts[k];
      body.replaceChildren(h("div", { class: "card", id: "trial-facts" }, kvTable(facts, true)),
        ...(t.error ? [h("h2", {}, "Error"), h("pre", { id: "trial-error" }, t.error)] : []),
        h("div", { class: "grid" },
          h("div", { class: "card", id: "trial-params" }, h("h2", {}, "Params"), kvTable(t.params)),
          h("div", { class: "card", id: "trial-results" }, h("h2", {}, "Results"),
            kvTable(t.results)),
          h("div", { class: "card", id: "trial-meta" }, h("h2", {}, "Meta"), kvTable(t.meta))));
      if (!t.metrics.length) curves.replaceChildren(h("p", { class: "muted" },
        "No streamed curve: the trial calls hex.log(step=…, name=value) to draw one."));
      for (const name of t.metrics) {
        if (!charts[name]) {
          charts[name] = h("div", { class: "chart card", dataset: { metric: name } });
          curves.append(charts[name]);
        }
        chart(charts[name], name, curveSeries({ [id]: data }, name), { ylabel: name });
      }
      t.done = true;
      last = t;
    });
    return p;
  }

  function batteryView(bid, params) {
    main.dataset.view = "battery";
    const s = {
      sort: params.get("sort"), order: params.get("order"), state: params.get("state") || "",
      version: params.get("version") || "", sweep: params.get("sweep") || "",
      offset: +(params.get("offset") || 0), limit: +(params.get("limit") || 50),
      selected: new Set((params.get("ids") || "").split(",").filter(Boolean).map(Number)),
      curveMetric: "", x: "", y: "", info: null, page: null, stamp: "", seq: 0, picked: false,
    };
    const el = {
      title: h("h1", { id: "battery-name" }), versions: h("p", { id: "versions", class: "muted" }),
      sweeps: h("div", { id: "sweeps" }),
      controls: h("div", { class: "controls" }), table: h("div", { class: "table-wrap" }),
      curves: h("div", { class: "chart", id: "curves" }),
      curveControls: h("div", { class: "controls" }),
      scatter: h("div", { class: "chart", id: "scatter" }),
      scatterControls: h("div", { class: "controls" }),
    };
    main.append(el.title, el.versions, el.sweeps, h("h2", {}, "Trials"), el.controls, el.table,
      h("div", { class: "grid" },
        h("div", { class: "card" }, h("h2", {}, "Learning curves of the selected trials"),
          el.curveControls, el.curves),
        h("div", { class: "card" }, h("h2", {}, "Params against a result"),
          el.scatterControls, el.scatter)));

    function remember() {
      const q = new URLSearchParams();
      for (const k of ["sort", "order", "state", "version", "sweep"]) if (s[k]) q.set(k, s[k]);
      if (s.offset) q.set("offset", s.offset);
      if (s.limit !== 50) q.set("limit", s.limit);
      history.replaceState(null, "", `#/battery/${bid}${q.toString() ? "?" + q : ""}`);
    }

    function select(options, value, onchange, id) {
      return h("select", { id, onchange: (e) => onchange(e.target.value) },
        options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) },
          text)));
    }

    function drawSweeps(st) {
      const items = st.sweeps.map((w) => sweepCard(w, st));
      const other = st.total - st.sweeps.reduce((n, w) => n + w.total, 0);
      if (!st.sweeps.length || other > 0) {
        items.push(h("div", { class: "card", id: "all-trials" },
          h("div", {}, h("b", {}, st.sweeps.length ? "trials outside sweeps" : "all trials")),
          countsLine(st.counts, st.total)));
      }
      el.sweeps.replaceChildren(...items);
    }

    function countsLine(counts, total) {
      return [
        h("div", { class: "bar" }, STATES.filter((k) => counts[k]).map((k) =>
          h("span", { class: k, title: `${k} ${counts[k]}`,
            style: { width: `${(100 * counts[k]) / Math.max(total, 1)}%` } }))),
        h("div", { class: "counts" }, STATES.map((k) =>
          h("span", { dataset: { state: k } }, `${k} `, h("b", {}, counts[k].toLocaleString())))),
      ];
    }

    function sweepCard(w) {
      const best = w.best && w.metric
        ? [" · best ", `${w.metric.name} = ${fmt(w.best.value)} (`,
          h("a", { href: `#/trial/${w.best.id}` }, `trial ${w.best.id}`), ") · ",
          h("a", { href: "#", class: "best-trials", onclick: (e) => {  // the table does it
            e.preventDefault();
            Object.assign(s, { sweep: String(w.id), sort: `result:${w.metric.name}`,
              order: w.metric.goal === "maximize" ? "desc" : "asc", state: "", offset: 0 });
            drawControls();
            refreshTable();
          } }, "its best trials")] : [];
      return h("div", { class: "card sweep", dataset: { sweep: w.id } },
        h("div", {}, h("b", {}, `sweep ${w.id}`), w.name ? ` ${w.name}` : "", " · ", w.state,
          " · version ", w.version, " · queue ", w.queue),
        countsLine(w.counts, w.total),
        h("div", { class: "muted" },
          "finished ", h("b", { dataset: { k: "finished" } }, w.finished), " / ",
          h("b", { dataset: { k: "total" } }, w.total),
          ` · ${(w.rate * 60).toFixed(1)} trials/min`,
          ` · ETA ${w.finished >= w.total ? "done" : duration(w.eta)}`,
          " · workers ", w.workers == null ? "—" : String(w.workers.length),
          " · queue depth ", w.depth == null ? "—" : String(w.depth), best));
    }

    function drawControls() {
      const info = s.info;
      el.versions.replaceChildren(`${info.versions.length === 1 ? "version" : "versions"}: `,
        ...info.versions.flatMap((v, i) => [i ? " · " : "",
          h("span", { dataset: { version: v.id } }, v.description),
          ` (${v.trials.toLocaleString()} trials)`]));
      const versions = [["", "all versions"], ...info.versions.map((v) =>
        [v.id, `${v.description} (${v.trials})`])];
      el.controls.replaceChildren(...[
        h("label", {}, "state "), select([["", "all"], ...STATES.map((k) => [k, k])], s.state,
          (v) => { s.state = v; s.offset = 0; refreshTable(); }, "filter-state"),
        h("label", {}, "version "), select(versions, s.version,
          (v) => { s.version = v; s.offset = 0; refreshTable(); refreshScatter(); },
          "filter-version"),
        s.sweep ? h("span", {}, `sweep ${s.sweep} `, h("a", { href: "#", onclick: (e) => {
          e.preventDefault(); s.sweep = ""; s.offset = 0; drawControls(); refreshTable();
        } }, "(all)")) : null,
        h("span", { class: "pager" },
          h("button", { id: "prev", disabled: s.offset === 0, onclick: () => {
            s.offset = Math.max(0, s.offset - s.limit); refreshTable(); } }, "‹ prev"),
          h("span", { id: "range" }), h("button", { id: "next", onclick: () => {
            s.offset += s.limit; refreshTable(); } }, "next ›"),
          select([25, 50, 100, 200].map((n) => [n, `${n} a page`]), s.limit,
            (v) => { s.limit = +v; s.offset = 0; refreshTable(); }, "page-size")),
      ].filter(Boolean));
    }

    function columns() {
      const k = s.info.keys;
      return [
        ["id", "trial", "id"], ["state", "state", "state"], ["attempt", "attempts", "attempt"],
        ...k.param.map((n) => [`param:${n}`, n, "param"]),
        ...k.result.map((n) => [`result:${n}`, n, "result"]),
        ["worker", "worker", "worker"], ["finished_at", "finished", "finished_at"],
      ];
    }

    function cell(row, col) {
      const [key, , kind] = col;
      if (kind === "id") {
        return h("td", { class: "num" }, h("a", { href: `#/trial/${row.id}` }, row.id));
      }
      if (kind === "state") return h("td", {}, state(row.state));
      if (kind === "finished_at") return h("td", {}, when(row.finished_at));
      const v = kind === "param" ? row.params[key.slice(6)]
        : kind === "result" ? row.results[key.slice(7)] : row[key];
      return h("td", { class: isNum(v) ? "num" : "", title: v == null ? null : JSON.stringify(v) },
        fmt(v));
    }

    function drawTable() {
      const page = s.page, cols = columns();
      const head = h("tr", {}, h("th", {}, ""), cols.map((c) => h("th", {
        class: ["sortable", s.sort === c[0] && "sorted", s.sort === c[0] && s.order === "desc"
          && "desc"].filter(Boolean).join(" "),
        dataset: { sort: c[0] },
        title: c[2] === "param" || c[2] === "result" ? `${c[2]} ${c[1]}` : null,
        onclick: () => {
          if (s.sort === c[0]) s.order = s.order === "desc" ? "asc" : "desc";
          else { s.sort = c[0]; s.order = "asc"; }
          s.offset = 0; refreshTable();
        },
      }, c[1])));
      const groups = h("tr", {}, h("th", { colspan: 4 }, ""),
        s.info.keys.param.length ? h("th", { colspan: s.info.keys.param.length }, "params") : null,
        s.info.keys.result.length
          ? h("th", { colspan: s.info.keys.result.length }, "results") : null,
        h("th", { colspan: 2 }, ""));
      const rows = page.rows.map((r) => h("tr", { dataset: { id: r.id, state: r.state } },
        h("td", {}, h("input", { type: "checkbox", checked: s.selected.has(r.id),
          "aria-label": `select trial ${r.id}`, onchange: (e) => {
            if (e.target.checked) s.selected.add(r.id); else s.selected.delete(r.id);
            refreshCurves();
          } })),
        cols.map((c) => cell(r, c))));
      if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: cols.length + 1, class: "muted" },
        "no trial matches")));
      el.table.replaceChildren(h("table", { id: "trials", dataset: { total: page.total } },
        h("thead", {}, groups, head), h("tbody", {}, rows)));
      const first = page.total ? page.offset + 1 : 0;
      const last = page.offset + page.rows.length;
      document.getElementById("range").textContent =
        `${first.toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()}`;
      document.getElementById("prev").disabled = page.offset === 0;
      document.getElementById("next").disabled = page.offset + page.rows.length >= page.total;
    }

    function tableQuery() {  // without a sort, the server's default: the sweep metric's best
      const q = new URLSearchParams({ offset: s.offset, limit: s.limit });
      if (s.sort) { q.set("sort", s.sort); q.set("order", s.order === "desc" ? "desc" : "asc"); }
      for (const k of ["state", "version", "sweep"]) if (s[k]) q.set(k, s[k]);
      return `api/batteries/${bid}/trials?${q}`;
    }

    function showPage(page) {
      s.page = page;
      s.sort = page.sort;
      s.order = page.order;
      remember();
      if (!s.picked) {  // once: the first five trials shown, until the user picks others
        s.picked = true;
        if (!s.selected.size) page.rows.slice(0, 5).forEach((r) => s.selected.add(r.id));
      }
      drawTable();
      refreshCurves();
    }

    async function refreshTable() {
      const seq = ++s.seq;
      const page = await api(tableQuery());
      if (seq !== s.seq) return;  // a newer request (another sort, page or filter) is on its way
      showPage(page);
    }

    async function refreshCurves() {
      const ids = [...s.selected].slice(0, 50);
      if (!ids.length) {
        chart(el.curves, "", [], { empty: "select trials in the table" });
        return;
      }
      const data = await api(`api/curves?ids=${ids.join(",")}`);
      if (!s.curveMetric || !data.names.includes(s.curveMetric)) {
        const m = s.info.metric && s.info.metric.name;
        s.curveMetric = data.names.includes(m) ? m : data.names[0] || "";
      }
      el.curveControls.replaceChildren(h("label", {}, "metric "), select(
        data.names.map((n) => [n, n]), s.curveMetric,
        (v) => { s.curveMetric = v; refreshCurves(); }, "curve-metric"),
        h("span", { class: "muted" }, `${ids.length} trials selected`));
      chart(el.curves, s.curveMetric, curveSeries(data.curves, s.curveMetric), {
        ylabel: s.curveMetric,
        empty: "no streamed curve for the selected trials (hex.log(step=…, name=value))" });
    }

    async function refreshScatter() {
      const keys = s.info.keys;
      if (!keys.param.length || !keys.result.length) {
        chart(el.scatter, "", [], { empty: "needs completed trials with params and results" });
        return;
      }
      const m = s.info.metric && s.info.metric.name;
      if (!keys.param.includes(s.x)) s.x = keys.param[0];
      if (!keys.result.includes(s.y)) s.y = keys.result.includes(m) ? m : keys.result[0];
      el.scatterControls.replaceChildren(
        h("label", {}, "x "), select(keys.param.map((k) => [k, k]), s.x,
          (v) => { s.x = v; refreshScatter(); }, "scatter-x"),
        h("label", {}, "y "), select(keys.result.map((k) => [k, k]), s.y,
          (v) => { s.y = v; refreshScatter(); }, "scatter-y"));
      const q = new URLSearchParams({ x: `param:${s.x}`, y: `result:${s.y}` });
      if (s.version) q.set("version", s.version);
      const p = await api(`api/batteries/${bid}/points?${q}`);
      const strings = [...new Set(p.xs.filter((v) => num(v) === null).map(fmt))].sort();
      const labels = strings.length ? strings : null;
      const pts = p.xs.map((x, i) => [labels ? labels.indexOf(fmt(x)) : num(x), num(p.ys[i])])
        .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && x !== -1)
        .sort((a, b) => a[0] - b[0]);
      const xs = pts.map((q) => q[0]);
      const xlog = !labels && xs.length > 1 && xs[0] > 0 && xs[xs.length - 1] / xs[0] > 100;
      chart(el.scatter, `${s.y} against ${s.x}`, [{ label: s.y, xs, ys: pts.map((q) => q[1]) }],
        { scatter: true, xlabel: s.x, ylabel: s.y, xlog, labels,
          empty: "no completed trial has both values yet" });
      el.scatter.dataset.x = s.x;
      el.scatter.dataset.y = s.y;
    }

    // The battery, its first trial page and its status are asked for at once: first paint
    // costs the slowest of the three, not their sum.
    async function load() {
      let info, page;
      try {
        [info, page] = await Promise.all([api(`api/batteries/${bid}`), api(tableQuery())]);
      } catch (e) { fail(e); throw e; }
      s.info = info;
      crumbs(["batteries", "#/"], [info.name]);
      el.title.replaceChildren(info.name);
      drawControls();
      showPage(page);
      refreshScatter();
    }

    let lastInfo = 0;
    const ready = load();
    const p = poller(async () => {
      await ready;  // the table first: it is what a 100,000-trial battery makes wait
      const st = await api(`api/batteries/${bid}/status`);
      drawSweeps(st);
      const stamp = JSON.stringify([st.counts, st.sweeps.map((w) => [w.counts, w.best])]);
      const changed = s.stamp !== "" && stamp !== s.stamp;
      s.stamp = stamp;
      if (changed && Date.now() - lastInfo > 5000) {  // new keys as trials finish
        lastInfo = Date.now();
        const keys = JSON.stringify(s.info.keys);
        s.info = await api(`api/batteries/${bid}`);
        if (JSON.stringify(s.info.keys) !== keys) { drawControls(); drawTable(); }
      }
      const running = s.page.rows.some((r) => LIVE.has(r.state) && s.selected.has(r.id));
      if (changed) { await refreshTable(); await refreshScatter(); }
      else if (running || st.counts.running) await refreshCurves();
      main.dataset.loaded = "1";
    });
    return p;
  }

  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => {
    for (const c of document.querySelectorAll(".chart")) {
      const u = c._uplot;
      if (u) u.setSize({ width: Math.max(320, c.clientWidth), height: u.height });
    }
  });
  route();
})();
