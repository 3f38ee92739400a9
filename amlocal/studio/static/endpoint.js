// The endpoint page: Details/Test tabs, and the Test call (through the studio, which adds the
// endpoint's key server-side; the key never reaches the page).
(function () {
  "use strict";
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".tabpane").forEach((p) => { p.hidden = p.id !== "tab-" + tab.dataset.tab; });
  }));
  const form = document.getElementById("test-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("test-answer");
    let body;
    try { body = JSON.parse(document.getElementById("test-body").value); }
    catch (e) { out.textContent = "not JSON: " + e.message; return; }
    out.textContent = "scoring\u2026";
    const r = await fetch("/api/endpoints/" + encodeURIComponent(form.dataset.endpoint) + "/test", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Amlocal-Studio": "1" },
      body: JSON.stringify({ body: body, deployment: document.getElementById("test-deployment").value }),
    });
    const d = await r.json();
    out.dataset.status = String(d.status || r.status);
    out.textContent = (d.status ? "HTTP " + d.status + "\n" : "") + (d.answer !== undefined ? d.answer : d.error);
  });
})();
