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

function setupCopyButtons() {
  for (const button of document.querySelectorAll("[data-copy-target]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copyTarget).textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copyTarget));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = button.dataset.copied;
      setTimeout(() => (button.textContent = label), 1500);
    });
  }
}

setupCopyButtons();

// A form with data-confirm asks in the page before it is sent (revoking a key, deleting).
function setupConfirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.confirmed) return;
      event.preventDefault();
      const dialog = document.createElement("dialog");
      dialog.className = "confirm-dialog card";
      const question = document.createElement("p");
      question.textContent = form.dataset.confirm;
      const actions = document.createElement("p");
      actions.className = "form-actions";
      const yes = document.createElement("button");
      yes.type = "button";
      yes.className = "button danger-button";
      yes.textContent = form.dataset.confirmYes;
      const no = document.createElement("button");
      no.type = "button";
      no.className = "secondary-button";
      no.textContent = form.dataset.confirmNo;
      actions.append(yes, no);
      dialog.append(question, actions);
      document.body.append(dialog);
      yes.addEventListener("click", () => {
        form.dataset.confirmed = "1";
        dialog.close();
        form.requestSubmit();
      });
      no.addEventListener("click", () => dialog.close());
      dialog.addEventListener("close", () => dialog.remove());
      dialog.showModal();
      no.focus();
    });
  }
}

setupConfirmForms();
