// The prompt form: opens a battle through the API and goes to it; errors (rate limit, no live models) inline.
(function () {
  "use strict";
  const form = document.getElementById("new-battle");
  if (!form) return;
  const error = document.getElementById("new-battle-error");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter ? event.submitter.value : "ask";
    const prompt = form.elements.prompt.value.trim();
    if (action === "ask" && !prompt) { showError("Type a prompt first, or press “Surprise me”."); return; }
    const body = {k: Number(form.elements.k.value)};
    if (action === "ask") body.prompt = prompt;
    if (form.elements.captcha) body.captcha = form.elements.captcha.value;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch(form.dataset.apiUrl, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify(body),
      });
      const data = await response.json();
      if (response.status === 201) { window.location.assign("/battles/" + data.id); return; }
      showError(data.error ? data.error.message : "Something went wrong (HTTP " + response.status + ").");
    } catch (e) {
      showError("The arena could not be reached; try again.");
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
})();
