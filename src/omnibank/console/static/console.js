// Charts: an element with data-chart="ID" is drawn by ECharts from the JSON in <script type="application/json"
// id="ID"> (data, not code: the page's content security policy runs no inline script). Runs on every page load
// and on every htmx swap.
(function () {
  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) return;
      var option = JSON.parse(src.textContent);
      var old = window.echarts.getInstanceByDom(el);
      if (old) old.dispose();
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(option);
      el.setAttribute("data-drawn", "1");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
    if (window.htmx) window.htmx.onLoad(function (el) { draw(el.parentElement || document); });
  });
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-drawn]").forEach(function (el) {
      var c = window.echarts && window.echarts.getInstanceByDom(el);
      if (c) c.resize();
    });
  });
})();
