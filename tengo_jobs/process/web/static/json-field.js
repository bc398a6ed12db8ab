// Live JSON checking for the dashboard's textareas marked data-json: the message appears in
// the element named by the textarea's aria-describedby (or the next .field-error), as the
// server would show it. Nothing is sent; the server's own check is the one that counts.
(function () {
  "use strict";
  function messageFor(area) {
    var id = area.getAttribute("aria-describedby") || (area.name + "-error");
    return document.getElementById(id);
  }
  function check(area) {
    var out = messageFor(area);
    if (!out) { return; }
    var text = area.value.trim();
    if (text === "") { out.hidden = true; area.removeAttribute("aria-invalid"); return; }
    try {
      var value = JSON.parse(text);
      if (area.getAttribute("data-json") !== "any" &&
          (value === null || typeof value !== "object" || Array.isArray(value))) {
        throw new Error("must be a JSON object, like {\"userId\": \"u-1\"}");
      }
      out.hidden = true;
      out.textContent = "";
      area.removeAttribute("aria-invalid");
    } catch (err) {
      out.textContent = area.name + ": " + err.message;
      out.hidden = false;
      area.setAttribute("aria-invalid", "true");
    }
  }
  document.querySelectorAll("textarea[data-json]").forEach(function (area) {
    var timer = null;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { check(area); }, 300);
    });
  });
}());
