// A work's page, live (progressive enhancement: the page is whole without this script).
// It listens to the API's change stream for this work (GET /api/v1/changes?work=ID); when a
// change comes it reads the page again, swaps in its numbers and charts (keeping open what the
// reader opened) and says so in the polite status line. Nothing else is fetched.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var work = live && live.getAttribute("data-work");
  if (!work || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var waiting = null;

  function swap(fresh, id) {
    var old = document.getElementById(id), now = fresh.getElementById(id);
    if (!old || !now) return;
    var open = Array.prototype.map.call(old.querySelectorAll("details"), function (d) {
      return d.open;
    });
    Array.prototype.forEach.call(now.querySelectorAll("details"), function (d, i) {
      d.open = !!open[i];
    });
    old.replaceWith(now);
  }

  function reload() {
    waiting = null;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        swap(fresh, "numbers");
        swap(fresh, "charts");
        live.textContent = "Numbers updated at " + new Date().toLocaleTimeString() + ".";
      })
      .catch(function () {
        live.textContent = "A change came but the page could not be read again: reload it.";
      });
  }

  var stream = new EventSource("/api/v1/changes?work=" + encodeURIComponent(work));
  stream.onopen = function () {
    live.setAttribute("data-stream", "open"); // following the changes (tests wait for it)
  };
  stream.addEventListener("metric_changed", function () {
    if (waiting === null) waiting = setTimeout(reload, 500); // one read for a burst of changes
  });
})();
