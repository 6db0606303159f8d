/* The links pages (loaded as a file: the CSP forbids inline scripts and htmx's eval).
   - Target autocomplete: fills the add form's <datalist> from the JSON lookup endpoint.
   - Drag-and-drop reordering with the HTML5 drag API: moving a row renumbers the position
     inputs; "Save order" then posts the whole list as one reorder. Without JavaScript (or
     with the keyboard) the position inputs do the same job.
   - Needs attention: keeps the count in the heading in step with the htmx row actions. */
(function () {
  "use strict";

  // --- autocomplete ---------------------------------------------------------------------
  function setupLookup(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var url = input.getAttribute("data-lookup-url");
    var exclude = input.getAttribute("data-exclude") || "";
    var timer = null;
    var lastQuery = "";

    function fill(results) {
      while (list.firstChild) {
        list.removeChild(list.firstChild);
      }
      results.forEach(function (item) {
        var option = document.createElement("option");
        option.value = item.sku;
        option.label = item.name + (item.brand ? " · " + item.brand : "") + (item.status !== "active" ? " (" + item.status + ")" : "");
        list.appendChild(option);
      });
    }

    input.addEventListener("input", function () {
      var query = input.value.trim();
      window.clearTimeout(timer);
      if (query.length < 2 || query === lastQuery) {
        return;
      }
      timer = window.setTimeout(function () {
        lastQuery = query;
        fetch(url + "?q=" + encodeURIComponent(query) + "&exclude=" + encodeURIComponent(exclude), {
          credentials: "same-origin",
          headers: { Accept: "application/json" }
        })
          .then(function (response) { return response.ok ? response.json() : { results: [] }; })
          .then(function (data) { fill(data.results || []); })
          .catch(function () { /* typing the SKU still works */ });
      }, 200);
    });
  }

  // --- drag and drop reordering -----------------------------------------------------------
  function renumber(tbody) {
    var rows = tbody.querySelectorAll("tr[data-link-id]");
    for (var i = 0; i < rows.length; i++) {
      var input = rows[i].querySelector(".links-position-input");
      if (input) {
        input.value = String(i + 1);
      }
    }
  }

  function markDirty(form) {
    form.classList.add("links-dirty");
  }

  function setupReorder(form) {
    var tbody = form.querySelector("[data-reorder-list]");
    if (!tbody || form.querySelector(".links-position-input[disabled]")) {
      return;
    }
    var dragged = null;
    var rows = tbody.querySelectorAll("tr[data-link-id]");
    for (var i = 0; i < rows.length; i++) {
      rows[i].setAttribute("draggable", "true");
    }

    tbody.addEventListener("dragstart", function (event) {
      var row = event.target.closest ? event.target.closest("tr[data-link-id]") : null;
      if (!row || event.target.tagName === "INPUT") {
        return;
      }
      dragged = row;
      row.classList.add("links-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.getAttribute("data-link-id"));
    });

    tbody.addEventListener("dragover", function (event) {
      if (!dragged) {
        return;
      }
      var row = event.target.closest ? event.target.closest("tr[data-link-id]") : null;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      if (!row || row === dragged) {
        return;
      }
      var box = row.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      tbody.insertBefore(dragged, after ? row.nextSibling : row);
    });

    tbody.addEventListener("drop", function (event) {
      if (dragged) {
        event.preventDefault();
      }
    });

    tbody.addEventListener("dragend", function () {
      if (!dragged) {
        return;
      }
      dragged.classList.remove("links-dragging");
      dragged = null;
      renumber(tbody);
      markDirty(form);
    });

    tbody.addEventListener("input", function (event) {
      if (event.target.classList.contains("links-position-input")) {
        markDirty(form);
      }
    });
  }

  // --- needs attention count --------------------------------------------------------------
  function setupAttentionCount() {
    var count = document.getElementById("attention-count");
    if (!count) {
      return;
    }
    document.body.addEventListener("attentionCount", function (event) {
      var detail = event.detail || {};
      var value = detail.value !== undefined ? detail.value : detail;
      if (typeof value === "number") {
        count.textContent = String(value);
      }
    });
  }

  function start() {
    var inputs = document.querySelectorAll("input[data-lookup-url]");
    for (var i = 0; i < inputs.length; i++) {
      setupLookup(inputs[i]);
    }
    var forms = document.querySelectorAll("form[data-reorder-form]");
    for (var j = 0; j < forms.length; j++) {
      setupReorder(forms[j]);
    }
    setupAttentionCount();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
