// A partner desk without a Kafka consumer: ask the portal for the urgent tickets every few
// seconds; when one arrives that the page does not show, say so (role=alert is announced).
(function () {
  "use strict";
  var box = document.getElementById("desk-alert");
  if (!box || !window.fetch) { return; }
  var known = (box.dataset.known || "").split(" ").filter(Boolean);
  var every = Math.max(2, parseFloat(box.dataset.every) || 15) * 1000;

  function show(text) {
    box.textContent = "";
    var p = document.createElement("p");
    p.textContent = text + " ";
    var a = document.createElement("a");
    a.href = "/desk";
    a.textContent = box.dataset.refresh;
    p.appendChild(a);
    box.appendChild(p);
  }

  function ask() {
    fetch(box.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (inbox) {
        if (!inbox) { return; }
        var fresh = inbox.urgent.filter(function (id) { return known.indexOf(id) < 0; });
        if (fresh.length) { show(inbox.alert); }
        known = inbox.urgent;
      })
      .catch(function () { /* offline for a moment: ask again at the next turn */ })
      .then(function () { setTimeout(ask, every); });
  }
  setTimeout(ask, every);
})();
