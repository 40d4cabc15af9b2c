// A form marked data-busy shows its spinner and disables its button while the page it posts to loads (a
// simulation takes a while); the page's content security policy runs no inline script, hence this file.
(function () {
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-busy")) return;
    form.classList.add("htmx-request");
    form.setAttribute("aria-busy", "true");
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });
  // back from the result (bfcache): the form is usable again
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      form.classList.remove("htmx-request");
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
    });
  });
})();
