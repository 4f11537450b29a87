// A battle page: streams the answers, then takes the vote (mouse or keyboard), then shows the names.
(function () {
  "use strict";
  const root = document.getElementById("battle");
  if (!root) return;
  const k = Number(root.dataset.k);
  const form = document.getElementById("vote-form");
  const turnForm = document.getElementById("turn-form");
  const status = document.getElementById("status");
  const voteError = document.getElementById("vote-error");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]");
  const idempotencyKey = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random();
  let complete = root.dataset.generation !== "running";
  let sending = false;

  function setVoting(enabled) {
    if (!form) return;
    form.querySelectorAll("button, select, input").forEach((el) => { el.disabled = !enabled; });
    if (turnForm) turnForm.querySelectorAll("button, textarea").forEach((el) => { el.disabled = !enabled; });
  }

  function showError(message) {
    voteError.textContent = message;
    voteError.hidden = false;
  }

  function showVoid(reason) {
    const box = document.getElementById("void");
    box.innerHTML = "";
    const p = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = "This battle is void and will not count. ";
    p.append(strong, document.createTextNode(reason.charAt(0).toUpperCase() + reason.slice(1) + "."));
    const again = document.createElement("a");
    again.href = root.dataset.homeUrl; again.className = "button"; again.id = "new-round"; again.textContent = "New round";
    box.append(p, again);
    box.hidden = false;
    if (form) form.hidden = true;
    if (turnForm) turnForm.hidden = true;
    status.textContent = "";
    again.focus();
  }

  function paint(slots) {
    slots.forEach((slot) => {
      const el = document.getElementById("response-" + slot.position);
      if (el) el.innerHTML = slot.html;  // sanitised on the server (markdown-it-py + nh3)
    });
  }

  function stream() {
    complete = false;
    setVoting(false);
    status.textContent = "The models are writing their answers…";
    const source = new EventSource(root.dataset.streamUrl);
    source.addEventListener("update", (e) => paint(JSON.parse(e.data).slots));
    source.addEventListener("done", (e) => {
      source.close();
      paint(JSON.parse(e.data).slots);
      complete = true;
      setVoting(true);
      status.textContent = "All answers are complete: vote below.";
    });
    source.addEventListener("void", (e) => { source.close(); showVoid(JSON.parse(e.data).reason); });
  }

  async function post(url, body, headers) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: Object.assign({"Content-Type": "application/json", "X-CSRFToken": csrf.value}, headers || {}),
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { /* empty body */ }
    return {response, data};
  }

  function extras(body) {
    const aspects = {};
    form.querySelectorAll("[data-aspect]").forEach((select) => {
      if (select.value === "") return;
      aspects[select.dataset.aspect] = k === 2 ? select.value : Number(select.value);
    });
    if (Object.keys(aspects).length) body.aspects = aspects;
    const rationale = form.elements.rationale.value.trim();
    if (rationale) body.rationale = rationale;
    return body;
  }

  async function vote(body) {
    if (!complete || sending) return;
    sending = true;
    voteError.hidden = true;
    try {
      const {response, data} = await post(root.dataset.voteUrl, extras(body), {"Idempotency-Key": idempotencyKey});
      if (response.ok) { window.location.reload(); return; }
      let message = data.error ? data.error.message : "The vote failed (HTTP " + response.status + ").";
      if (data.error && data.error.fields) {
        const detail = Object.entries(data.error.fields).map(([f, m]) => f + ": " + [].concat(m).join(" ")).join("; ");
        if (data.error.code === "invalid_input") message = detail;
      }
      showError(message);
    } catch (e) {
      showError("The arena could not be reached; your vote was not sent. Try again.");
    } finally {
      sending = false;
    }
  }

  function ranking() {
    // Ranks 1..K from the lists -> groups of positions, best first; equal ranks tie.
    const byRank = new Map();
    for (const select of form.querySelectorAll("[data-rank]")) {
      if (select.value === "") { showError("Give every answer a rank (the same rank for a tie)."); return null; }
      const rank = Number(select.value);
      if (!byRank.has(rank)) byRank.set(rank, []);
      byRank.get(rank).push(Number(select.dataset.rank));
    }
    return [...byRank.keys()].sort((a, b) => a - b).map((r) => byRank.get(r));
  }

  if (form) {
    form.addEventListener("click", (event) => {
      const button = event.target.closest("button[type=button]");
      if (!button) return;
      if (button.dataset.outcome) vote({outcome: button.dataset.outcome});
      else if (button.dataset.best !== undefined) vote({best: Number(button.dataset.best)});
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const groups = ranking();
      if (groups) vote({ranking: groups});
    });
  }

  if (turnForm) {
    turnForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const prompt = turnForm.elements.prompt.value.trim();
      if (!prompt || !complete) return;
      const {response, data} = await post(root.dataset.turnUrl, {prompt});
      if (response.status === 202) { window.location.reload(); return; }
      showError(data.error ? data.error.message : "The follow-up failed (HTTP " + response.status + ").");
    });
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter" && target.matches("select[data-rank]")) {
      // A select does not submit its form on Enter by itself; the hint promises that it does.
      event.preventDefault();
      form.requestSubmit(document.getElementById("submit-ranking"));
      return;
    }
    if (target.closest("textarea, input, select")) return;  // typing is not voting
    const key = event.key.toLowerCase();
    const newRound = document.getElementById("new-round");
    if (key === "n" && newRound && !newRound.closest("[hidden]")) { newRound.click(); return; }
    if (!form || form.hidden) return;
    if (k === 2) {
      const outcome = {a: "a", b: "b", t: "tie", x: "both_bad"}[key];
      if (outcome) { event.preventDefault(); vote({outcome}); }
    } else if (/^[1-6]$/.test(key) && Number(key) <= k) {
      event.preventDefault();
      vote({best: Number(key) - 1});
    }
  });

  if (root.dataset.status === "open" && root.dataset.generation === "running") stream();
})();
