// The resident's page: my code as a QR (refreshed before it expires), its colour border and
// reason in words, quarantine progress and the daily check-in.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const SYMPTOMS = ["cough", "sore_throat", "fatigue", "loss_of_smell"];
  const state = { timer: null, view: null };

  function show(section) { for (const id of ["apply", "code"]) $(id).hidden = id !== section; }

  function symptomBoxes(container) {
    container.textContent = "";
    for (const s of SYMPTOMS) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = s;
      const span = document.createElement("span");
      span.dataset.t = s;
      label.append(box, span);
      container.append(label);
    }
  }
  const checked = (container) => [...container.querySelectorAll("input:checked")].map((b) => b.value);

  async function start() {
    symptomBoxes($("apply-symptoms"));
    symptomBoxes($("check-in-symptoms"));
    HCX.apply();
    $("lang").addEventListener("click", () => { HCX.toggle(); if (state.view) render(state.view); });
    $("apply-form").addEventListener("submit", apply);
    $("check-in-form").addEventListener("submit", checkIn);
    $("sign-out").addEventListener("click", async () => { await HCX.call("POST", "/api/sign-out", {}); location.reload(); });
    const { data } = await HCX.call("GET", "/api/session");
    if (!data.signed_in) return show("apply");
    HCX.csrf = data.csrf;
    await refresh();
  }

  async function apply(event) {
    event.preventDefault();
    $("apply-error").textContent = "";
    const body = {
      id_number: $("id-number").value.trim(), full_name: $("full-name").value.trim(),
      declaration: { fever: $("fever").checked, contact: $("contact").checked,
                     residence: $("residence").value.trim(), symptoms: checked($("apply-symptoms")) },
    };
    const { status, data } = await HCX.call("POST", "/api/sign-in", body);
    if (status !== 200) { $("apply-error").textContent = data.message || data.reason; return; }
    HCX.csrf = data.csrf;
    render(data);
  }

  async function refresh() {
    const { status, data } = await HCX.call("GET", "/api/code").catch(() => ({ status: 0, data: {} }));
    if (status === 200) return render(data);
    if (status === 401) return location.reload();
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, 5000);  // the node unreachable: try again soon
  }

  function render(v) {
    state.view = v;
    show("code");
    const colour = v.state.colour.toLowerCase();
    $("qr-box").className = "code colour-" + colour;
    $("qr-box").dataset.colour = v.state.colour;
    $("qr").src = v.qr;
    $("qr").alt = HCX.t(v.state.colour);
    $("colour-word").textContent = HCX.t(v.state.colour);
    $("holder").textContent = HCX.t("holder", { name: v.masked_name, tail: v.id_tail });
    $("reason").textContent = v.state.reason;
    const q = v.state;
    $("quarantine").hidden = !q.in_quarantine;
    $("check-in-form").hidden = !q.in_quarantine;
    if (q.in_quarantine) {
      const day = Math.min(q.quarantine_days, q.days_checked + q.days_missed + 1);
      $("progress").textContent = HCX.t("quarantine", { day, days: q.quarantine_days, checked: q.days_checked, missed: q.days_missed });
      $("next-check-in").textContent = q.next_check_in_by ? HCX.t("next_check_in", { at: new Date(q.next_check_in_by * 1000).toLocaleString() }) : "";
    }
    const list = $("history");
    list.textContent = "";
    for (const h of v.history) {
      const item = document.createElement("li");
      item.textContent = new Date(h.at * 1000).toLocaleString() + " · " + h.words;
      list.append(item);
    }
    // A fresh QR before this one expires (the server re-signs once half its life is gone);
    // the colour is polled meanwhile, so a change shows within 15 s.
    const skew = Date.now() / 1000 - v.now;
    const refreshIn = Math.max(1, Math.min(15, v.refresh_at + skew - Date.now() / 1000));
    $("expires").textContent = HCX.t("code_expires", { s: Math.round(refreshIn) });
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, refreshIn * 1000);
  }

  async function checkIn(event) {
    event.preventDefault();
    const body = { temperature_c: Number($("temperature").value), symptoms: checked($("check-in-symptoms")),
                   request_id: crypto.randomUUID() };
    const { status, data } = await HCX.call("POST", "/api/check-in", body);
    $("check-in-result").textContent = status === 200 ? HCX.t("checked_in") : (data.message || data.reason);
    if (status === 200) render(data);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
