// Search the collection by a photo (drop it, or choose a file) or by text (when the embedding
// model has a text tower; otherwise the API says so and the message shows it).

import { api } from "../api.js";
import { chosen, picker } from "../collections.js";
import { matchGrid } from "../matches.js";
import { el, guarded, heading } from "../ui.js";

export async function render(view) {
  const results = el("div", { id: "search-results" });
  const file = el("input", { type: "file", id: "search-file", accept: "image/*" });
  const drop = el(
    "div",
    { id: "drop-zone", class: "drop", tabindex: "0", role: "button", "aria-label": "Drop a photo here, or press Enter to choose one" },
    "Drop a photo here, or ",
    el("label", { for: "search-file", class: "link" }, "choose a file"),
    file,
  );
  const text = el("input", { type: "search", id: "search-text", name: "text", required: true });
  const textForm = el(
    "form",
    { id: "search-text-form", class: "filters" },
    el("label", { class: "field", for: "search-text" }, "Describe it"),
    text,
    el("button", { type: "submit" }, "Search"),
  );
  view.append(heading("Search"), await picker(() => {}), drop, textForm, results);

  async function byPhoto(blob) {
    const form = new FormData();
    form.append("image", blob, blob.name || "query.jpg");
    form.append("collection", chosen());
    form.append("k", "24");
    show(await guarded(() => api("/v1/search", { method: "POST", form })));
  }

  function show(found) {
    results.replaceChildren();
    if (found) results.append(el("h2", {}, `${found.matches.length} found`), matchGrid(found.matches, "search-matches"));
  }

  file.addEventListener("change", () => file.files[0] && byPhoto(file.files[0]));
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      file.click();
    }
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const dropped = event.dataTransfer.files[0];
    if (dropped) byPhoto(dropped);
  });
  textForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(await guarded(() => api("/v1/search", { method: "POST", json: { text: text.value, k: 24, collection: chosen() } })));
  });
}
