// The runs page's only script (served from this origin: the CSP allows no inline script).
// Live refresh: every data-every ms, fetch the table fragment (same filters and page) and
// swap it in, keeping the checked boxes; stops while the tab is hidden, when "Live refresh"
// is unticked, or once the session is gone (401 / a redirect to the login page).
// Also: the "select all" box, and a confirmation before the Cancel/Replay selected buttons.
(function () {
  "use strict";
  var box = document.getElementById("tj-runs-table");
  if (!box) { return; }
  var live = document.getElementById("tj-live");
  var every = parseInt(box.getAttribute("data-every"), 10) || 3000;
  var busy = false;

  function checked() {
    var ids = {};
    box.querySelectorAll("input[name=run_id]:checked").forEach(function (el) { ids[el.value] = true; });
    return ids;
  }

  function refresh() {
    if (busy || document.hidden || (live && !live.checked)) { return; }
    busy = true;
    fetch(box.getAttribute("data-src"), {credentials: "same-origin", redirect: "manual",
                                         headers: {"Accept": "text/html"}})
      .then(function (answer) {
        if (answer.type === "opaqueredirect" || answer.status === 401) {
          if (live) { live.checked = false; }
          return null;
        }
        return answer.ok || answer.status === 400 ? answer.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        var keep = checked();
        var doc = new DOMParser().parseFromString(html, "text/html");
        box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
        box.querySelectorAll("input[name=run_id]").forEach(function (el) {
          if (keep[el.value]) { el.checked = true; }
        });
        box.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { busy = false; });
  }

  box.addEventListener("change", function (e) {
    if (e.target.classList.contains("select-all")) {
      box.querySelectorAll("input[name=run_id]").forEach(function (el) { el.checked = e.target.checked; });
    }
  });
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (e) {
      if (!box.querySelector("input[name=run_id]:checked")) {
        e.preventDefault();
        window.alert("Select one or more runs first.");
      } else if (!window.confirm(button.getAttribute("data-confirm"))) {
        e.preventDefault();
      }
    });
  });
  window.setInterval(refresh, every);
})();
