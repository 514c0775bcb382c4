// Applied before the page paints so the chosen theme never flashes.
(function () {
  var saved = null;
  try { saved = localStorage.getItem("pawa-theme"); } catch (e) { /* storage disabled */ }
  var dark = saved ? saved === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
})();
