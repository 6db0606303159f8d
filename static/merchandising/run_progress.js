/* Progress bars of running mining runs: polls each run's JSON progress endpoint and reloads
   the page when the run has finished. Loaded as a file: the CSP forbids inline scripts. */
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var RETRY_MS = 10000;

  function render(element, data) {
    var bar = element.querySelector("progress");
    var label = element.querySelector(".mining-progress-label");
    if (bar) {
      bar.value = data.progress;
      bar.textContent = data.progress + "%";
    }
    if (label) {
      label.textContent = data.status_display + (data.phase ? " – " + data.phase : "") + " (" + data.progress + "%)";
    }
  }

  function poll(element) {
    fetch(element.getAttribute("data-progress-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store"
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        render(element, data);
        if (data.finished) {
          window.location.reload();
        } else {
          window.setTimeout(function () { poll(element); }, INTERVAL_MS);
        }
      })
      .catch(function () {
        window.setTimeout(function () { poll(element); }, RETRY_MS);
      });
  }

  function start() {
    var elements = document.querySelectorAll("[data-progress-url]");
    for (var i = 0; i < elements.length; i++) {
      poll(elements[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
