// The chat page: a websocket to /ws/chat/, answers streamed from each generation's Redis Stream.
import { marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";

const $ = (selector, root = document) => root.querySelector(selector);
const data = (id) => JSON.parse(document.getElementById(id).textContent);

const T = data("chat-strings");
const MODELS = data("chat-models");
const root = $("[data-chat]");
const messagesEl = $("[data-messages]");
const statusEl = $("[data-chat-status]");
const announcer = $("[data-announcer]");
const input = $("[data-input]");
const sendButton = $("[data-send]");
const stopButton = $("[data-stop]");
const lang = document.documentElement.lang || "sw";
const settingsForm = $("[data-settings]");
const counter = $("[data-counter]");
const maxChars = Number(root.dataset.maxChars) || 0;

let conversationId = root.dataset.conversationId || null;
let socket = null;
let reconnectDelay = 500;
let requestCounter = 0;
const pending = new Map(); // request_id -> callback for "accepted"
const outbox = []; // requests written before the socket was open
const active = new Map(); // generation_id -> {lastId, text, el, message}
let followStream = true; // false once the reader scrolls up, true again at the bottom
let savedSettings = null; // the settings as the server has them; the form may differ
let sentText = null; // the message on its way: the box keeps it until the server takes it

marked.setOptions({ gfm: true, breaks: true });

// Rendering ------------------------------------------------------------------------------

// Model output and user text are untrusted: Markdown → HTML → DOMPurify with an allow-list.
// No styles, forms, frames or media; images only from this server or data:/blob: URLs (the
// Content-Security-Policy blocks the rest too), so an answer cannot restyle the page, post a
// form or send chat text to another host.
const ALLOWED_TAGS = ["a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
  "i", "img", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
  "tr", "ul"];
const ALLOWED_ATTR = ["href", "title", "alt", "src", "class", "start", "align"];
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "IMG") {
    const src = node.getAttribute("src") || "";
    const url = new URL(src, location.href);
    if (!(url.origin === location.origin || url.protocol === "data:" || url.protocol === "blob:")) {
      node.replaceWith(document.createTextNode(node.getAttribute("alt") || ""));
    }
  }
  if (node.tagName === "A") {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  }
});

function renderMarkdown(target, text) {
  target.innerHTML = DOMPurify.sanitize(marked.parse(text || ""), { ALLOWED_TAGS, ALLOWED_ATTR });
  for (const pre of target.querySelectorAll("pre")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = T.copy;
    const code = pre.querySelector("code") || pre;
    button.addEventListener("click", () => copyText(code.innerText, button));
    pre.prepend(button);
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = T.copied;
  setTimeout(() => (button.textContent = label), 1500);
}

function formatStats(stats) {
  if (!stats || stats.completion_tokens == null) return "";
  const parts = [
    `${T.tokens}: ${stats.prompt_tokens ?? "?"} ${T.prompt_tokens} + ${stats.completion_tokens} ${T.completion_tokens}`,
  ];
  if (stats.time_to_first_token_ms != null) parts.push(`${T.ttft}: ${(stats.time_to_first_token_ms / 1000).toFixed(2)} ${T.seconds}`);
  if (stats.tokens_per_second) parts.push(`${T.tps}: ${stats.tokens_per_second.toFixed(1)}`);
  if (stats.model) parts.push(stats.model);
  return parts.join(" · ");
}

function messageElement(message) {
  const el = document.createElement("article");
  el.className = `message ${message.role}`;
  el.dataset.id = message.id;
  if (message.generation_id) el.dataset.generationId = message.generation_id;
  const who = document.createElement("p");
  who.className = "who";
  who.textContent = message.role === "user" ? T.you : T.assistant;
  const body = document.createElement("div");
  body.className = "body";
  const note = document.createElement("p");
  note.className = "note";
  note.hidden = true;
  const actions = document.createElement("div");
  actions.className = "message-actions";
  el.append(who, body, note, actions);
  if (message.dropped_messages) {
    // The conversation was longer than the model reads: say so on this answer.
    const trimmed = document.createElement("p");
    trimmed.className = "trim-note";
    trimmed.textContent = T.trimmed;
    body.before(trimmed);
  }
  el._message = message;
  if (message.role === "user") {
    body.textContent = message.content;
    actions.append(actionButton(T.edit, () => startEdit(el)));
  } else {
    renderMarkdown(body, message.content);
    const details = document.createElement("details");
    details.className = "stats";
    details.innerHTML = `<summary>${T.details}</summary><p></p>`;
    details.querySelector("p").textContent = formatStats(message.stats);
    details.hidden = !message.stats || message.stats.completion_tokens == null;
    actions.append(actionButton(T.copy, (button) => copyText(el._message.content, button)), details);
    setNote(el, message.status);
  }
  return el;
}

function actionButton(label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link-button action";
  button.textContent = label;
  button.addEventListener("click", () => onClick(button));
  return button;
}

// Error codes of an answer that never started, in the page's language.
const UNSTARTED = { no_worker: T.no_worker, lost: T.not_taken, queue_timeout: T.not_taken, queue_unavailable: T.not_taken };

function queueText(event) {
  const text = event.wait_seconds ? T.queue_wait.replace("%(seconds)s", event.wait_seconds) : T.queue_position;
  return text.replace("%(position)s", event.position);
}

function setNote(el, status, errorMessage) {
  const note = $(".note", el);
  const texts = { stopped: T.stopped, interrupted: T.interrupted, error: errorMessage || T.failed };
  note.textContent = texts[status] || "";
  note.hidden = !texts[status];
  el.dataset.status = status || "";
}

function refreshRegenerate() {
  for (const button of messagesEl.querySelectorAll(".regenerate")) button.remove();
  const last = messagesEl.querySelector(".message:last-of-type");
  if (last && last.classList.contains("assistant") && !active.has(last.dataset.generationId)) {
    const button = actionButton(T.regenerate, () => send(withSettings({ type: "regenerate", conversation_id: conversationId })));
    button.classList.add("regenerate");
    $(".message-actions", last).prepend(button);
  }
}

function scrollToEnd(force = false) {
  if (force) followStream = true;
  if (followStream) messagesEl.scrollTop = messagesEl.scrollHeight;
}

// The cursor of an answer being written sits at the end of its last line of text.
const INLINE_END = ["BR", "HR", "IMG", "TABLE", "UL", "OL", "BLOCKQUOTE"];

function placeCursor(body) {
  let target = body;
  while (target.lastElementChild && !INLINE_END.includes(target.lastElementChild.tagName) &&
         !target.lastElementChild.classList.contains("copy-code")) {
    target = target.lastElementChild;
  }
  if (["UL", "OL"].includes(target.lastElementChild?.tagName)) target = target.lastElementChild.lastElementChild || target;
  const cursor = document.createElement("span");
  cursor.className = "stream-cursor";
  cursor.setAttribute("aria-hidden", "true");
  target.append(cursor);
}

function setBusy(busy) {
  stopButton.hidden = !busy;
  sendButton.disabled = busy;
}

// Streaming ------------------------------------------------------------------------------

function follow(message, el, lastId = "0-0", remote = false) {
  const state = { lastId, text: lastId === "0-0" ? "" : message.content, el, message, frame: 0 };
  active.set(message.generation_id, state);
  setBusy(true);
  if (lastId === "0-0") renderMarkdown($(".body", el), "");
  el.classList.add("streaming");
  placeCursor($(".body", el));
  if (remote) send({ type: "resume", generation_id: message.generation_id, last_id: "0-0" });
}

function paint(state) {
  if (state.frame) return;
  // Many small frames arrive; the Markdown is re-rendered at most once per animation frame.
  state.frame = requestAnimationFrame(() => {
    state.frame = 0;
    renderMarkdown($(".body", state.el), state.text);
    if (state.el.classList.contains("streaming")) placeCursor($(".body", state.el));
    state.message.content = state.text;
    scrollToEnd();
  });
}

function finish(state, event) {
  active.delete(event.generation_id);
  state.el.classList.remove("streaming");
  if (event.text != null && event.type === "done" && !state.text) state.text = event.text;
  state.message.content = state.text;
  renderMarkdown($(".body", state.el), state.text);
  const details = $(".stats", state.el);
  $("p", details).textContent = formatStats(event);
  details.hidden = event.completion_tokens == null;
  const status = event.type === "error" ? (event.code === "interrupted" ? "interrupted" : "error") : event.status;
  const errorText = event.type === "error" && event.code !== "interrupted" ? UNSTARTED[event.code] || event.message : null;
  setNote(state.el, status, errorText);
  statusEl.textContent = "";
  announcer.textContent = T.answered;
  setBusy(active.size > 0);
  refreshRegenerate();
}

function onEvent(event) {
  if (event.type === "accepted") {
    const callback = pending.get(event.request_id);
    pending.delete(event.request_id);
    if (callback) callback(event);
    return;
  }
  if (event.type === "conversation_changed") {
    if (String(event.conversation_id) === conversationId && !active.has(event.generation_id)) reloadMessages();
    return;
  }
  if (event.type === "error" && !event.generation_id) {
    pending.delete(event.request_id);
    statusEl.textContent = event.message;
    sentText = null; // refused: the text stays in the box to be shortened or sent again
    setBusy(active.size > 0);
    return;
  }
  const state = active.get(event.generation_id);
  if (!state) return;
  if (event.id) state.lastId = event.id;
  switch (event.type) {
    case "queued":
      statusEl.textContent = queueText(event);
      break;
    case "start":
      statusEl.textContent = "";
      announcer.textContent = T.answering;
      break;
    case "delta":
      state.text += event.text;
      paint(state);
      break;
    case "done":
    case "error":
      if (event.code === "relay") {
        statusEl.textContent = event.message;
        break;
      }
      finish(state, event);
      break;
  }
}

// The websocket ----------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/chat/`);
  socket.addEventListener("open", () => {
    reconnectDelay = 500;
    if (statusEl.textContent === T.reconnecting) statusEl.textContent = "";
    if (conversationId) send({ type: "watch", conversation_id: conversationId });
    // Resume every answer still being written, from the last frame this page saw.
    for (const [generationId, state] of active) {
      send({ type: "resume", generation_id: generationId, last_id: state.lastId });
    }
    while (outbox.length) socket.send(outbox.shift());
  });
  socket.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
  socket.addEventListener("close", () => {
    if (active.size || pending.size) statusEl.textContent = T.reconnecting;
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 8000);
  });
}

function send(payload, onAccepted) {
  const requestId = `r${++requestCounter}`;
  if (onAccepted) pending.set(requestId, onAccepted);
  else if (["regenerate", "edit", "send"].includes(payload.type)) pending.set(requestId, accepted);
  const message = JSON.stringify({ ...payload, request_id: requestId });
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(message);
  else outbox.push(message); // sent as soon as the connection opens
  return true;
}

function accepted(event) {
  if (sentText !== null && input.value.trim() === sentText) {
    input.value = "";
    updateCounter();
  }
  sentText = null;
  if (event.settings) {
    const applied = settingsChanged();
    savedSettings = event.settings;
    if (applied && !settingsChanged()) $("[data-settings-status]").textContent = T.saved;
  }
  if (!conversationId) {
    conversationId = String(event.conversation.id);
    root.dataset.conversationId = conversationId;
    send({ type: "watch", conversation_id: conversationId });
    history.replaceState(null, "", `/chat/${conversationId}/`);
    for (const el of document.querySelectorAll("[data-rename], [data-delete]")) el.hidden = false;
    $("[data-empty]")?.remove();
  }
  $("[data-title]").textContent = event.conversation.title || T.untitled;
  document.title = `${event.conversation.title || T.untitled} · PAWA`;
  addToSidebar(event.conversation);
  if (event.question) {
    const existing = messagesEl.querySelector(`.message[data-id="${event.question.id}"]`);
    if (existing) {
      // An edit: the question changed and every later turn is gone.
      while (existing.nextElementSibling) existing.nextElementSibling.remove();
      existing._message = event.question;
      $(".body", existing).textContent = event.question.content;
    } else {
      messagesEl.append(messageElement(event.question));
    }
  } else {
    const last = messagesEl.querySelector(".message:last-of-type");
    if (last && last.classList.contains("assistant")) last.remove(); // regenerate replaces it
  }
  const answer = messageElement(event.answer);
  messagesEl.append(answer);
  follow(event.answer, answer);
  refreshRegenerate();
  scrollToEnd(true);
}

async function reloadMessages() {
  // Another tab started an answer here: show the conversation as it is now and follow it.
  const conversation = await api("GET", `/chat/api/conversations/${conversationId}/`);
  messagesEl.replaceChildren();
  for (const message of conversation.messages) {
    const el = messageElement(message);
    messagesEl.append(el);
    if (["queued", "running"].includes(message.status)) follow(message, el, "0-0", true);
  }
  refreshRegenerate();
  scrollToEnd();
}

// User actions -------------------------------------------------------------------------------

function submit() {
  const content = input.value.trim();
  if (!content || active.size || sentText !== null) return;
  if (maxChars && content.length > maxChars) {
    statusEl.textContent = T.too_long.replace("%(length)s", content.length).replace("%(limit)s", maxChars);
    return;
  }
  const payload = withSettings({ type: "send", content, conversation_id: conversationId });
  if (!conversationId) payload.model = $("[data-model-select]")?.value;
  sentText = content;
  statusEl.textContent = "";
  send(payload);
  setBusy(true);
}

// The settings form as the next answer should use them.
function formSettings() {
  return {
    model_name: settingsForm.model_name.value,
    system_prompt: settingsForm.system_prompt.value.trim(),
    temperature: Number(settingsForm.temperature.value),
    max_tokens: Number(settingsForm.max_tokens.value),
  };
}

function settingsChanged() {
  const current = formSettings();
  return !savedSettings || Object.keys(current).some((key) => current[key] !== savedSettings[key]);
}

// Settings changed in the form but not saved go with the message: the answer uses what the form shows.
function withSettings(payload) {
  if (settingsChanged()) payload.settings = formSettings();
  return payload;
}

function updateCounter() {
  if (!maxChars || !counter) return;
  const length = input.value.trim().length;
  const near = length >= maxChars * 0.8;
  counter.hidden = !near;
  counter.classList.toggle("over", length > maxChars);
  input.setAttribute("aria-invalid", String(length > maxChars));
  if (near) counter.textContent = T.counter.replace("%(length)s", length).replace("%(limit)s", maxChars);
}

function startEdit(el) {
  if (active.size || el.querySelector("form")) return;
  const form = document.createElement("form");
  form.className = "edit-form";
  const area = document.createElement("textarea");
  area.value = el._message.content;
  area.rows = 3;
  area.setAttribute("aria-label", T.edit);
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = T.send;
  const cancel = actionButton(T.cancel, () => form.remove());
  form.append(area, save, cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (send(withSettings({ type: "edit", message_id: el._message.id, content: area.value }))) form.remove();
  });
  $(".body", el).after(form);
  area.focus();
}

function addToSidebar(conversation) {
  const list = $("[data-conversation-list]");
  let item = list.querySelector(`li[data-id="${conversation.id}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.id = conversation.id;
    item.innerHTML = "<a></a>";
    list.prepend(item);
  }
  for (const other of list.querySelectorAll("li.current")) other.classList.remove("current");
  item.classList.add("current");
  const link = $("a", item);
  link.href = `/chat/${conversation.id}/`;
  link.textContent = conversation.title || T.untitled;
  link.setAttribute("aria-current", "page");
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(payload.error || T.error);
  return payload;
}

function renderSidebar(conversations) {
  const list = $("[data-conversation-list]");
  list.replaceChildren();
  for (const conversation of conversations) {
    const item = document.createElement("li");
    item.dataset.id = conversation.id;
    const link = document.createElement("a");
    link.href = `/chat/${conversation.id}/`;
    link.textContent = conversation.title || T.untitled;
    if (String(conversation.id) === conversationId) {
      item.classList.add("current");
      link.setAttribute("aria-current", "page");
    }
    item.append(link);
    list.append(item);
  }
  if (!conversations.length) {
    const empty = document.createElement("li");
    empty.className = "muted";
    empty.textContent = T.no_results;
    list.append(empty);
  }
}

function showModelInfo() {
  const select = $("[data-model-select]");
  const info = $("[data-model-info]");
  const card = MODELS.find((model) => model.name === select?.value);
  if (card) $("[data-base-note]").hidden = card.kind !== "base";
  if (!card || !info) return;
  const size = `${Math.round(card.size / 2 ** 20)} MiB`;
  info.textContent = `${card.kind === "base" ? T.base : T.instruct} · ${T.languages}: ${card.languages.join(", ")} · ` +
    `${T.size}: ${size} · ${T.context}: ${card.context_length} · ${card.description[lang] || card.description.en || ""}`;
}

function setupSettings() {
  const form = $("[data-settings]");
  const toggle = $("[data-settings-toggle]");
  toggle.addEventListener("click", () => {
    form.hidden = !form.hidden;
    toggle.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) showModelInfo();
  });
  let previousModel = $("[data-model-select]")?.value;
  $("[data-model-select]")?.addEventListener("change", () => {
    showModelInfo();
    const card = MODELS.find((model) => model.name === $("[data-model-select]").value);
    const previous = MODELS.find((model) => model.name === previousModel);
    previousModel = card?.name;
    // The old model's own prompt gives way to the new model's; a prompt the user wrote stays.
    const untouched = form.system_prompt.value.trim() === (previous?.default_system_prompt || "").trim();
    if (card && (untouched || !form.system_prompt.value.trim())) form.system_prompt.value = card.default_system_prompt || "";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("[data-settings-status]");
    try {
      if (!conversationId) {
        const created = await api("POST", "/chat/api/conversations/", { model: form.model_name.value });
        conversationId = String(created.id);
        root.dataset.conversationId = conversationId;
        history.replaceState(null, "", `/chat/${conversationId}/`);
        for (const el of document.querySelectorAll("[data-rename], [data-delete]")) el.hidden = false;
        addToSidebar(created);
      }
      const updated = await api("PATCH", `/chat/api/conversations/${conversationId}/`, formSettings());
      savedSettings = updated.settings;
      status.textContent = T.saved;
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

function setupDialogs() {
  const renameDialog = $("[data-rename-dialog]");
  const renameInput = $("[data-rename-input]");
  const deleteDialog = $("[data-delete-dialog]");
  for (const button of document.querySelectorAll("[data-dialog-cancel]")) {
    button.addEventListener("click", () => button.closest("dialog").close("cancel"));
  }
  $("[data-rename]").addEventListener("click", () => {
    // An automatic title ends in "…" where it was cut: that mark is not part of the name.
    renameInput.value = $("[data-title]").textContent.replace(/…$/, "").trim();
    renameDialog.returnValue = "";
    renameDialog.showModal();
    renameInput.select();
  });
  renameDialog.addEventListener("close", async () => {
    const title = renameInput.value.trim();
    if (renameDialog.returnValue !== "save" || !title) return;
    try {
      const updated = await api("PATCH", `/chat/api/conversations/${conversationId}/`, { title });
      $("[data-title]").textContent = updated.title;
      document.title = `${updated.title} · PAWA`;
      addToSidebar(updated);
    } catch (error) {
      statusEl.textContent = error.message;
    }
  });
  $("[data-delete]").addEventListener("click", () => {
    deleteDialog.returnValue = "";
    deleteDialog.showModal();
  });
  deleteDialog.addEventListener("close", async () => {
    if (deleteDialog.returnValue !== "delete") return;
    await api("DELETE", `/chat/api/conversations/${conversationId}/`);
    location.href = "/chat/";
  });
}

function setupSidebar() {
  const sidebar = $("[data-sidebar]");
  const toggle = $("[data-sidebar-toggle]");
  toggle.addEventListener("click", () => {
    const open = !sidebar.classList.contains("open");
    sidebar.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (open) $("[data-search]").focus();
  });
  sidebar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebar.classList.contains("open")) {
      sidebar.classList.remove("open");
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
}

function setup() {
  for (const message of data("chat-messages")) {
    const el = messageElement(message);
    messagesEl.append(el);
    if (["queued", "running"].includes(message.status)) follow(message, el);
  }
  refreshRegenerate();
  scrollToEnd();

  $("[data-composer]").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  stopButton.addEventListener("click", () => {
    for (const generationId of active.keys()) send({ type: "stop", generation_id: generationId });
    input.focus(); // the Stop button disappears: keep the keyboard where the next message is written
  });
  input.addEventListener("input", updateCounter);
  messagesEl.addEventListener("scroll", () => {
    followStream = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
  });
  $("[data-new-chat]").addEventListener("click", () => (location.href = "/chat/"));
  setupDialogs();
  let searchTimer = 0;
  $("[data-search]").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const result = await api("GET", `/chat/api/conversations/?q=${encodeURIComponent(event.target.value)}`);
      renderSidebar(result.conversations);
    }, 250);
  });
  setupSettings();
  setupSidebar();
  if (!conversationId) {
    const card = MODELS.find((model) => model.name === $("[data-model-select]")?.value);
    if (card) settingsForm.system_prompt.value = card.default_system_prompt || "";
  } else {
    savedSettings = data("chat-conversation");
  }
  connect();
  input.focus();
}

setup();
