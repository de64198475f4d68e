// Times are shown in the billing time zone (UTC+8). Where the viewer's own
// time zone differs, add their local time beside it. Without JavaScript the
// UTC+8 time stands alone.
(function () {
  "use strict";
  var elements = document.querySelectorAll("time[data-utc8]");
  if (!elements.length || !window.Intl) { return; }
  elements.forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime()) || -new Date(when.getTime()).getTimezoneOffset() === 480) { return; }
    var local = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    }).format(when);
    var note = document.createElement("span");
    note.className = "local-time";
    note.textContent = " (" + local + ")";
    el.after(note);
  });
})();
