/* Billing console, progressive enhancement only: the page works without it.
   - "Expand all" / "Collapse all" for the per-region details;
   - every <details> is opened for printing and restored afterwards. */
(function () {
  "use strict";
  var tools = document.querySelector("[data-enhance='details-toggle']");
  if (tools) {
    tools.hidden = false;
    tools.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-details]");
      if (!button) { return; }
      var open = button.getAttribute("data-details") === "open";
      document.querySelectorAll("table.summary details").forEach(function (d) { d.open = open; });
    });
  }
  var closedForPrint = [];
  window.addEventListener("beforeprint", function () {
    closedForPrint = Array.prototype.filter.call(document.querySelectorAll("details"), function (d) { return !d.open; });
    closedForPrint.forEach(function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    closedForPrint.forEach(function (d) { d.open = false; });
    closedForPrint = [];
  });
})();
