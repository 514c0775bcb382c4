// Small behaviours shared by every page.

function setupThemeToggle() {
  const button = document.querySelector("[data-theme-toggle]");
  if (!button) return;
  const label = () => {
    const dark = document.documentElement.getAttribute("data-theme") === "dark";
    // The button offers the other theme.
    button.setAttribute("aria-label", dark ? button.dataset.labelLight : button.dataset.labelDark);
    button.title = button.getAttribute("aria-label");
  };
  label();
  button.addEventListener("click", () => {
    const next = document.documentElement.getAttribute("data-theme") === "dark" ? "light" : "dark";
    document.documentElement.setAttribute("data-theme", next);
    try { localStorage.setItem("pawa-theme", next); } catch (e) { /* storage disabled */ }
    label();
  });
}

function setupAutosubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
}

setupThemeToggle();
setupAutosubmit();
