// Small DOM helpers and the app-wide message line.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function showError(err) {
  const box = document.getElementById("message");
  const code = err.code && err.code !== "http_error" ? ` (${err.code})` : "";
  document.getElementById("message-text").textContent = `${err.message}${code}`;
  box.hidden = false;
}

export function clearError() {
  document.getElementById("message").hidden = true;
}

export function notify(text) {
  document.getElementById("notice").textContent = text;
}

// Which view is open: a request a closed view sent must not put its error on the new one.
let viewEpoch = 0;

export function viewOpened() {
  viewEpoch += 1;
}

// Runs an action, showing its error as the message line (it stays until dismissed or another
// view opens); returns the action's value, or undefined when it failed.
export async function guarded(action) {
  const mine = viewEpoch;
  try {
    return await action();
  } catch (err) {
    if (mine === viewEpoch) showError(err);
    return undefined;
  }
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function thumb(item, { size = "thumbnail", alt } = {}) {
  const src = size === "image" ? item.image_url : item.thumbnail_url;
  const label = alt || describe(item);
  return src
    ? el("img", { src, alt: label, loading: "lazy", decoding: "async" })
    : el("div", { class: "no-image", role: "img", "aria-label": label }, item.status || "");
}

export function describe(item) {
  const parts = [item.format, item.width && `${item.width}×${item.height}`];
  const meta = item.metadata || {};
  if (meta.captured_at) parts.push(`taken ${meta.captured_at.slice(0, 10)}`);
  if (meta.camera) parts.push(meta.camera);
  return parts.filter(Boolean).join(", ") || item.id;
}

// A view's heading: focusable, so the router can move focus there when the view opens.
export function heading(text) {
  return el("h1", { tabindex: "-1", text });
}
