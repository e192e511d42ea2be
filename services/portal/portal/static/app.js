// A little on top of the server's forms: quick temperatures, and check-ins that survive
// a lost connection (kept in localStorage, sent once when back online: each carries an
// Idempotency-Key, so a repeat changes nothing).
(function () {
  "use strict";
  var QUEUE = "firstline.checkins";
  var body = document.body;
  var note = document.getElementById("network");

  function say(text) { if (note) { note.textContent = text; note.hidden = !text; } }
  function queued() { try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; } }
  function keep(items) { localStorage.setItem(QUEUE, JSON.stringify(items)); }

  function send(item) {
    return fetch("/api/checkins", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Idempotency-Key": item.key },
      body: JSON.stringify(item.body)
    });
  }

  var flushing = false;
  function flush() {
    var items = queued();
    if (!items.length || flushing || navigator.onLine === false) { return Promise.resolve(); }
    flushing = true;
    var left = [];
    var chain = items.reduce(function (p, item) {
      return p.then(function () {
        return send(item).then(function (r) {
          if (r.status >= 500) { left.push(item); }  // 4xx: the server refused it for good; 2xx: done
          else { markDone(item.body.resident_id); }
        }, function () { left.push(item); });
      });
    }, Promise.resolve());
    return chain.then(function () {
      keep(left);
      flushing = false;
      if (!left.length) { say(body.dataset.sent); }
    });
  }

  function mark(residentId, text, kind) {
    var member = document.querySelector('.member[data-member="' + residentId + '"]');
    if (!member) { return; }
    var status = member.querySelector("[data-status]");
    if (status) { status.textContent = text; status.className = "status status-" + kind; }
    var form = member.querySelector("form.checkin");
    if (form) { form.remove(); }
  }
  function markDone(residentId) { mark(residentId, body.dataset.done, "checked_in"); }
  function markKept(residentId) { mark(residentId, body.dataset.kept, "away"); }

  document.addEventListener("click", function (event) {
    var chip = event.target.closest && event.target.closest("[data-temperature]");
    if (!chip) { return; }
    var form = chip.closest("form");
    form.querySelector("input[name=temperature_c]").value = chip.dataset.temperature;
    form.querySelectorAll("[data-temperature]").forEach(function (c) { c.setAttribute("aria-pressed", String(c === chip)); });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("checkin") || !window.fetch) { return; }  // no script support: the plain form posts
    event.preventDefault();
    var data = new FormData(form);
    var temperature = parseFloat(String(data.get("temperature_c") || "").replace(",", "."));
    if (isNaN(temperature)) { form.querySelector("input[name=temperature_c]").focus(); return; }
    var none = event.submitter && event.submitter.name === "none";
    var item = {
      key: data.get("key") || String(Date.now()),
      body: { resident_id: data.get("resident_id"), temperature_c: temperature, symptoms: none ? [] : data.getAll("symptoms") }
    };
    if (navigator.onLine === false) {
      keep(queued().concat([item])); markKept(item.body.resident_id); say(body.dataset.queued); return;
    }
    send(item).then(function (r) {
      if (r.ok) { markDone(item.body.resident_id); say(""); return; }
      if (r.status >= 500) { keep(queued().concat([item])); markKept(item.body.resident_id); say(body.dataset.queued); return; }
      return r.json().then(function (b) { say(body.dataset.failed + (b.detail || r.status)); });
    }, function () {
      keep(queued().concat([item])); markKept(item.body.resident_id); say(body.dataset.queued);
    });
  });

  // Check-ins made elsewhere (a building lead, another phone of the household) show at once.
  if (body.dataset.live && window.EventSource) {
    var live = new EventSource(body.dataset.live);
    live.addEventListener("checkin", function (event) {
      var update = JSON.parse(event.data);
      var attention = update.status === "needs_attention";
      mark(update.resident_id, attention ? body.dataset.needsAttention : body.dataset.checkedIn, update.status);
    });
    live.onerror = function () { if (live.readyState === EventSource.CLOSED) { live.close(); } };
  }

  window.addEventListener("online", flush);
  window.addEventListener("offline", function () { say(body.dataset.offline); });
  flush();
})();
