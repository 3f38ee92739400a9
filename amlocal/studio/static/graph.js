// A job's graph: fetched from /api/jobs/<name>/graph, laid out by dagre (vendored, see
// dagre.VERSION), drawn as SVG; nested pipelines are groups that a click expands or folds;
// polled every second while the job runs, so states change without a reload.
(function () {
  "use strict";
  const svg = document.getElementById("graph");
  if (!svg) return;
  const job = svg.dataset.job;
  const NS = "http://www.w3.org/2000/svg";
  const STATUS = { Completed: "ok", Failed: "failed", Canceled: "canceled", CancelRequested: "canceled",
    Running: "running", Starting: "running", Preparing: "running", Queued: "waiting", NotStarted: "waiting" };
  const expanded = new Set();
  let selected = null, data = null, shape = "";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function visible(node) { // every ancestor group expanded
    let p = node.parent;
    while (p) { if (!expanded.has(p)) return false; p = byId[p].parent; }
    return true;
  }
  let byId = {};
  function owner(id) { // the visible node standing for `id` (its folded ancestor, or itself)
    let n = byId[id], shown = n;
    while (n && n.parent) { n = byId[n.parent]; if (!expanded.has(n.id)) shown = n; }
    return shown.id;
  }
  function draw() {
    byId = {}; data.nodes.forEach((n) => { byId[n.id] = n; });
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "TB", nodesep: 30, ranksep: 45, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    const shown = data.nodes.filter(visible);
    shown.forEach((n) => {
      const open = n.group && expanded.has(n.id);
      g.setNode(n.id, open ? { label: n.label, paddingTop: 28 } : { label: n.label, width: 170, height: 46 });
      if (n.parent) g.setParent(n.id, n.parent);
    });
    const seen = new Set();
    data.edges.forEach(([a, b]) => {
      const s = owner(a), t = owner(b), key = s + ">" + t;
      if (s === t || seen.has(key) || (byId[s].group && expanded.has(s)) || (byId[t].group && expanded.has(t))) return;
      seen.add(key); g.setEdge(s, t);
    });
    dagre.layout(g);
    svg.replaceChildren();
    const defs = el("defs", {}, svg);
    const m = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#66707c" }, m);
    // The drawing's bounds: nodes and edge routes (dagre may route an edge outside the
    // graph's width), so nothing is cut off.
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const grow = (x, y) => { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); };
    g.nodes().forEach((id) => { const b = g.node(id); grow(b.x - b.width / 2, b.y - b.height / 2); grow(b.x + b.width / 2, b.y + b.height / 2); });
    g.edges().forEach((e) => g.edge(e).points.forEach((p) => grow(p.x, p.y)));
    const pad = 12;
    svg.setAttribute("viewBox", [x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad].join(" "));
    svg.setAttribute("width", x1 - x0 + 2 * pad); svg.setAttribute("height", y1 - y0 + 2 * pad);
    // groups first (behind), then edges, then steps
    const order = shown.slice().sort((a, b) => (b.group && expanded.has(b.id)) - (a.group && expanded.has(a.id)));
    order.filter((n) => n.group && expanded.has(n.id)).forEach((n) => drawGroup(n, g.node(n.id)));
    g.edges().forEach((e) => {
      const pts = g.edge(e).points;
      el("path", { class: "edge", d: "M" + pts.map((p) => p.x + "," + p.y).join(" L") }, svg);
    });
    order.filter((n) => !(n.group && expanded.has(n.id))).forEach((n) => drawNode(n, g.node(n.id)));
  }
  function drawGroup(n, box) {
    const grp = el("g", { class: "group", "data-id": n.id, "data-status": n.status }, svg);
    el("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height }, grp);
    const t = el("text", { x: box.x - box.width / 2 + 8, y: box.y - box.height / 2 + 17 }, grp);
    t.textContent = "\u2212 " + n.label + " (" + n.status + ")";
    grp.style.cursor = "pointer";
    grp.addEventListener("click", (ev) => { if (ev.target === grp.firstChild || ev.target === t) { expanded.delete(n.id); draw(); } });
  }
  function drawNode(n, box) {
    const cls = ["node", STATUS[n.status] || "waiting"];
    if (n.reused) cls.push("reused");
    if (n.id === selected) cls.push("selected");
    const grp = el("g", { class: cls.join(" "), "data-id": n.id, "data-status": n.status, "data-reused": String(n.reused),
      transform: "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")" }, svg);
    el("rect", { width: box.width, height: box.height }, grp);
    const t1 = el("text", { x: 8, y: 18 }, grp);
    t1.textContent = (n.group ? "+ " : "") + n.label;
    const t2 = el("text", { x: 8, y: 36, class: "sub" }, grp);
    t2.textContent = n.status + (n.reused ? " \u267b reused" : "") + (n.duration ? " \u00b7 " + n.duration : "");
    const title = el("title", {}, grp);
    title.textContent = n.reused ? "reused " + n.reused_from : n.status;
    grp.addEventListener("click", () => {
      if (n.group) { expanded.add(n.id); draw(); return; }
      selected = n.id; draw(); if (n.job) showDetail(n.job);
    });
  }
  function row(k, v) { return "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>"; }
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
  function io(obj) {
    return Object.entries(obj).map(([k, v]) => row(k, "value" in v ? esc(JSON.stringify(v.value))
      : esc(v.type || "") + " " + esc(v.path || "") + (v.local_path ? "<div class=small>" + esc(v.local_path) + "</div>" : ""))).join("");
  }
  async function showDetail(name) {
    const panel = document.getElementById("detail");
    const r = await fetch("/api/jobs/" + encodeURIComponent(name) + "/detail");
    if (!r.ok) { panel.textContent = "step not found"; return; }
    const d = await r.json();
    const metrics = Object.entries(d.metrics).map(([k, v]) => row(k, esc(v))).join("");
    panel.innerHTML = "<h2 id=detail-name>" + esc(d.display_name) + " <span class=small>" + esc(d.name) + "</span></h2>" +
      "<p>" + esc(d.status) + (d.reused_from ? " \u00b7 reused <a href='/jobs/" + encodeURIComponent(d.reused_from) + "'>" + esc(d.reused_from) + "</a>" : "") +
      (d.mlflow_run ? " \u00b7 <a href='" + esc(d.mlflow_run) + "'>MLflow run</a>" : "") + " \u00b7 <a href='/jobs/" + encodeURIComponent(d.name) + "'>step page</a></p>" +
      (d.error ? "<p class=small>" + esc(d.error) + "</p>" : "") +
      "<h3>Inputs</h3><table>" + io(d.inputs) + "</table><h3>Outputs</h3><table>" + io(d.outputs) + "</table>" +
      "<h3>Metrics</h3><table id=detail-metrics>" + (metrics || row("", "none")) + "</table>" +
      "<h3>Log</h3><pre id=detail-log>" + esc(d.log_tail || "(no log)") + "</pre>";
  }
  async function poll() {
    let next = null;
    try {
      const r = await fetch("/api/jobs/" + encodeURIComponent(job) + "/graph", { cache: "no-store" });
      if (r.ok) {
        next = await r.json();
        const key = JSON.stringify([next.nodes, next.edges]);
        if (key !== shape) { shape = key; data = next; draw(); }
        svg.dataset.live = String(next.live);
        const d = document.getElementById("job-duration"); if (d) d.textContent = next.duration;
        document.querySelectorAll(".meta .badge").forEach((b) => { b.textContent = next.status; b.className = "badge " + (STATUS[next.status] || "waiting"); });
      }
    } catch (e) { /* the studio restarting: try again */ }
    if (!next || next.live) setTimeout(poll, 1000);
  }
  poll();
})();
