/* The review queue's keyboard flow (templates/merchandising/review/queue.html).
 *
 * One row has the focus (class is-current, and DOM focus); every key acts on exactly that row
 * by clicking the row's own button for it, so the keyboard and the mouse send the same
 * requests. Keys do nothing while typing in a field, with ctrl/alt/meta held, or while the
 * exclude dialog is open (a modal <dialog>: the browser keeps the focus in it and closes it on
 * Escape; so does a click on the backdrop). After a decision (the row is swapped for its decided version) the
 * focus moves to the next pending row.
 */
(function () {
  "use strict";

  const TYPING = "input, textarea, select, [contenteditable='true'], [contenteditable='']";
  let currentId = null; // the focused row's suggestion id (rows are replaced by htmx swaps)
  let decidingId = null; // the row whose decision request is on its way

  function root() { return document.getElementById("review"); }
  function rows() { return Array.from(document.querySelectorAll("#review-list > .review-row")); }
  function currentRow() { return currentId ? document.getElementById("s-" + currentId) : null; }
  function dialog() { return document.getElementById("review-dialog"); }
  function help() { return document.getElementById("review-help"); }

  function focusRow(row) {
    if (!row) { return; }
    rows().forEach(function (r) { r.classList.remove("is-current"); });
    row.classList.add("is-current");
    currentId = row.dataset.id;
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = rows();
    if (!all.length) { return; }
    const index = all.indexOf(currentRow());
    if (index < 0) { focusRow(step > 0 ? all[0] : all[all.length - 1]); return; }
    focusRow(all[Math.min(all.length - 1, Math.max(0, index + step))]);
  }

  function nextPendingAfter(row) {
    const all = rows();
    const index = all.indexOf(row);
    for (let i = index + 1; i < all.length; i++) { if (all[i].hasAttribute("data-pending")) { return all[i]; } }
    for (let i = index - 1; i >= 0; i--) { if (all[i].hasAttribute("data-pending")) { return all[i]; } }
    return row;
  }

  function closeMenus(except) {
    document.querySelectorAll("#review-list details[open]").forEach(function (d) {
      if (d !== except) { d.open = false; }
    });
  }

  function click(row, selector) {
    const button = row && row.querySelector(selector);
    if (!button) { return false; }
    if (row.hasAttribute("data-pending")) { decidingId = row.dataset.id; }
    button.click();
    return true;
  }

  function toggleHelp(show) {
    const panel = help();
    if (!panel) { return; }
    panel.hidden = show === undefined ? !panel.hidden : !show;
  }

  function openReject(row) {
    const menu = row && row.querySelector("details[data-reject]");
    if (!menu) { return; }
    closeMenus(menu);
    menu.open = true;
  }

  function rejectWith(row, key) {
    const menu = row && row.querySelector("details[data-reject]");
    if (!menu || !menu.open) { return false; }
    const target = menu.querySelector("[data-reason-key='" + key + "']");
    if (!target) { return false; }
    if (target.tagName === "INPUT") { target.focus(); return true; } // "Other": type why, then Enter
    decidingId = row.dataset.id;
    target.click();
    return true;
  }

  function onKey(event) {
    if (!root()) { return; }
    if (event.ctrlKey || event.altKey || event.metaKey) { return; }
    if (event.target instanceof Element && event.target.closest(TYPING)) { return; }
    if (dialog() && dialog().open) { return; }
    const key = event.key;
    const row = currentRow();
    let handled = true;
    if (key === "?") {
      toggleHelp();
    } else if (key === "Escape") {
      toggleHelp(false);
      closeMenus(null);
      document.getElementById("bulk-panel").replaceChildren();
    } else if (key === "j") {
      move(1);
    } else if (key === "k") {
      move(-1);
    } else if (key === "u") {
      const undo = document.getElementById("review-undo");
      if (undo) { undo.click(); } else { handled = false; }
    } else if (!row) {
      handled = false;
    } else if (key >= "1" && key <= "5") {
      handled = rejectWith(row, key);
    } else if (key === "a") {
      closeMenus(null);
      handled = click(row, "[data-key='a']");
    } else if (key === "r") {
      openReject(row);
    } else if (key === "s") {
      closeMenus(null);
      handled = click(row, "[data-key='s']");
    } else if (key === "x") {
      closeMenus(null);
      handled = click(row, "[data-key='x']");
    } else if (key === "o") {
      handled = click(row, "[data-key='o']");
    } else if (key === " ") {
      const box = row.querySelector("input.review-select");
      if (box) { box.checked = !box.checked; } else { handled = false; }
    } else {
      handled = false;
    }
    if (handled) { event.preventDefault(); }
  }

  // After a swap: keep the focus on the current row's new element, or move it on after a decision.
  function afterSwap(event) {
    const target = event.detail.target;
    if (!target) { return; }
    if (target.id === "review-dialog") {
      if (!target.open) { target.showModal(); }
      const first = target.querySelector("input[type=radio]:checked");
      if (first) { first.focus(); }
      return;
    }
    if (target.id === "review-status") {
      const message = target.querySelector("[data-restored]");
      const restored = message && message.dataset.restored ? message.dataset.restored.split(",") : [];
      const back = restored.map(function (id) { return document.getElementById("s-" + id); }).filter(Boolean);
      if (back.length) { focusRow(back[0]); return; }
      if (dialog() && dialog().open) { dialog().close(); }
      document.getElementById("bulk-panel").replaceChildren();
      const row = currentRow();
      if (row) { focusRow(row.hasAttribute("data-pending") ? row : nextPendingAfter(row)); }
      return;
    }
  }

  function afterSettle(event) {
    // Fired on each settled element: for a row swap (outerHTML), the new row.
    const elt = event.target;
    if (!(elt instanceof Element) || !elt.classList.contains("review-row")) { return; }
    if (elt.dataset.id === decidingId) {
      decidingId = null;
      focusRow(elt.hasAttribute("data-pending") ? elt : nextPendingAfter(elt));
    } else if (elt.dataset.id === currentId) {
      focusRow(elt);
    }
  }

  function onClick(event) {
    const target = event.target;
    if (!(target instanceof Element)) { return; }
    if (target.closest("[data-close-dialog]")) { dialog().close(); return; }
    // A click on the dialog element itself (its content has the padding) is on the dimmed backdrop.
    if (target === dialog() && dialog().open) { dialog().close(); return; }
    if (target.closest("[data-close-help]")) { toggleHelp(false); return; }
    if (target.closest("#review-help-button")) { toggleHelp(); return; }
    if (target.closest("[data-close-bulk]")) { document.getElementById("bulk-panel").replaceChildren(); return; }
    const row = target.closest("#review-list > .review-row");
    if (row) {
      if (row.dataset.id !== currentId) { focusRow(row); }
      if (target.closest(".review-actions button") && row.hasAttribute("data-pending")) { decidingId = row.dataset.id; }
    }
  }

  function onFocusIn(event) {
    const row = event.target instanceof Element && event.target.closest("#review-list > .review-row");
    if (row && row.dataset.id !== currentId) {
      rows().forEach(function (r) { r.classList.remove("is-current"); });
      row.classList.add("is-current");
      currentId = row.dataset.id;
    }
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("click", onClick);
  document.addEventListener("focusin", onFocusIn);
  document.addEventListener("htmx:afterSwap", afterSwap);
  document.addEventListener("htmx:afterSettle", afterSettle);
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    const elt = event.detail.target;
    if (elt instanceof Element && elt.dataset.id === currentId) { elt.classList.add("is-current"); }
  });
})();
