// The app's shell: sign in with an API key, then a hash router (#/gallery, #/photo/ID, ...)
// that renders one view at a time into #view. A view's render() may return a cleanup function
// (timers, observers), called when another view opens.

import { api, key } from "./api.js";
import { clearError, guarded, showError, viewOpened } from "./ui.js";
import * as duplicates from "./views/duplicates.js";
import * as gallery from "./views/gallery.js";
import * as jobs from "./views/jobs.js";
import * as people from "./views/people.js";
import * as photo from "./views/photo.js";
import * as search from "./views/search.js";

const ROUTES = [
  [/^#\/gallery$/, gallery.render],
  [/^#\/photo\/([\w-]+)$/, photo.render],
  [/^#\/search$/, search.render],
  [/^#\/duplicates$/, duplicates.render],
  [/^#\/trash$/, duplicates.renderTrash],
  [/^#\/people$/, people.render],
  [/^#\/person\/([\w-]+)$/, people.renderPerson],
  [/^#\/jobs$/, jobs.render],
];

let cleanup = null;
let opened = 0; // which route() call is current: a slower earlier view must not show up

function route() {
  const [path, queryText] = (location.hash || "#/gallery").split("?");
  const query = new URLSearchParams(queryText || "");
  const mine = ++opened;
  if (cleanup) cleanup();
  cleanup = null;
  viewOpened();
  clearError();
  // Each view renders into a fresh container: one still loading for an earlier hash writes
  // into a detached node, never beside the current one.
  const container = document.createElement("div");
  document.getElementById("view").replaceChildren(container);
  for (const link of document.querySelectorAll("#nav a")) {
    const here = path.startsWith(link.getAttribute("href"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, render] of ROUTES) {
    const found = path.match(pattern);
    if (found) {
      Promise.resolve(render(container, found[1], query))
        .then((done) => {
          const current = mine === opened;
          // Keyboard and screen-reader users land on the new view's heading.
          if (current) container.querySelector("h1")?.focus();
          if (typeof done !== "function") return;
          if (current) cleanup = done;
          else done();
        })
        .catch((err) => mine === opened && showError(err));
      return;
    }
  }
  location.hash = "#/gallery";
}

async function signIn(value) {
  key.set(value);
  const me = await guarded(() => api("/v1/me"));
  if (!me) {
    key.clear();
    document.getElementById("whoami").textContent = "key refused";
    return false;
  }
  document.getElementById("whoami").textContent = `tenant ${me.tenant}`;
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  window.addEventListener("hashchange", route);
  route();
  return true;
}

function signOut() {
  key.clear();
  location.hash = "";
  location.reload();
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn(document.getElementById("api-key").value.trim());
});
document.getElementById("sign-out").addEventListener("click", signOut);
document.getElementById("message-close").addEventListener("click", clearError);
if (key.get()) signIn(key.get());
