// The command center's pages: the board reloads its columns when a ticket event arrives
// (server-sent events from /board/events), the meeting page prints, and the heat map is
// drawn with the vendored Leaflet and no tiles: the community's outline, its buildings
// and the H3 cells, all from the page's own data.
(function () {
  "use strict";

  var board = document.getElementById("board");
  if (board && board.dataset.live && window.EventSource) {
    var status = document.getElementById("board-status");
    var pending = null;
    var changed = {};
    var reload = function () {
      pending = null;
      fetch(board.dataset.columns, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          board.innerHTML = html;
          Object.keys(changed).forEach(function (id) {
            var card = board.querySelector('[data-ticket="' + id + '"]');
            if (card) { card.classList.add("fresh"); }
          });
          changed = {};
          if (status) { status.textContent = status.dataset.updated + " " + new Date().toLocaleTimeString(); }
        })
        .catch(function () { /* the next event tries again */ });
    };
    var events = new EventSource(board.dataset.live);
    events.addEventListener("ready", function () { board.dataset.listening = "true"; });
    events.addEventListener("ticket", function (e) {
      try { changed[JSON.parse(e.data).ticket_id] = true; } catch (err) { /* ignore */ }
      if (!pending) { pending = setTimeout(reload, 250); }  // a burst of events: one reload
    });
    events.onerror = function () { if (events.readyState === 2) { events.close(); } };
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  var mapBox = document.getElementById("map");
  var dataNode = document.getElementById("map-data");
  if (mapBox && dataNode && window.L) {
    var data = JSON.parse(dataNode.textContent);
    var map = L.map(mapBox, { attributionControl: false, zoomSnap: 0.25 });
    var bounds = L.latLngBounds([]);
    if (data.outline.length) {
      var outline = L.polygon(data.outline, { color: "#444", weight: 2, dashArray: "6 4", fill: true, fillColor: "#f2efe6", fillOpacity: 1 }).addTo(map);
      bounds.extend(outline.getBounds());
    }
    var max = data.cells.reduce(function (m, c) { return Math.max(m, c.properties.count); }, 1);
    data.cells.forEach(function (cell) {
      var share = cell.properties.count / max;
      var layer = L.geoJSON(cell, {
        style: { color: "#8a1c14", weight: 1, fillColor: "#b3261e", fillOpacity: 0.15 + 0.6 * share }
      }).addTo(map);
      layer.bindTooltip(mapBox.dataset.count + " " + cell.properties.count);
      bounds.extend(layer.getBounds());
    });
    data.buildings.forEach(function (b) {
      var marker = L.circleMarker([b.lat, b.lon], { radius: 6, color: "#0b3d91", weight: 2, fillColor: "#fff", fillOpacity: 1 }).addTo(map);
      marker.bindTooltip(b.building_id, { permanent: true, direction: "right", className: "building-label" });
      bounds.extend(marker.getLatLng());
    });
    if (bounds.isValid()) { map.fitBounds(bounds.pad(0.1)); } else { map.setView([31.23, 121.47], 15); }
    mapBox.dataset.ready = "true";
  }
})();
