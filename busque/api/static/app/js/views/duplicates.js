// Duplicate review: each group side by side with the suggested keeper pre-selected; one click
// keeps the selection and trashes the rest (undo puts it all back), or says "not duplicates"
// (remembered by content, never proposed again). The trash: restore or delete for good.

import { api } from "../api.js";
import { chosen, picker } from "../collections.js";
import { bytes, describe, el, guarded, heading, notify, thumb, when } from "../ui.js";

const PAGE = 20;

export async function render(view, _, query) {
  let offset = Number(query.get("offset")) || 0;
  const summary = el("p", { id: "duplicates-summary", "aria-live": "polite" });
  const list = el("div", { id: "duplicate-groups" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages of groups" });
  const resolveAll = el("button", { type: "button", id: "resolve-all" }, "Keep the suggestions of every group on this page");
  view.append(
    heading("Duplicates"),
    el("p", {}, el("a", { href: "#/trash" }, "Open the trash")),
    await picker(() => load()),
    summary,
    resolveAll,
    list,
    pager,
  );

  let shown = [];

  async function load() {
    const found = await guarded(() =>
      api("/v1/duplicates", { query: { collection: chosen(), limit: PAGE, offset } }),
    );
    list.replaceChildren();
    pager.replaceChildren();
    if (!found) return;
    shown = found.groups;
    summary.textContent = found.total_groups
      ? `${found.total_groups} ${found.total_groups === 1 ? "group" : "groups"}; keeping the suggestions saves ${bytes(found.groups.reduce((s, g) => s + g.savings_bytes, 0))} on this page.`
      : "No duplicates left in this collection.";
    if (!found.complete) {
      // A large collection's first search for near duplicates takes a while: show what is
      // found so far and ask again until it is done (while this view is open).
      const sofar = found.total_groups ? `${found.total_groups} groups so far.` : "none found so far.";
      summary.textContent = `Still searching this collection for near duplicates: ${sofar} This list refreshes by itself.`;
      setTimeout(() => { if (view.isConnected) load(); }, 3000);
    }
    resolveAll.hidden = !found.groups.length;
    for (const group of found.groups) list.append(groupCard(group, found.items));
    if (offset > 0) pager.append(el("button", { type: "button", onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Previous"));
    if (found.next_offset !== null) pager.append(el("button", { type: "button", onclick: () => { offset = found.next_offset; load(); } }, "Next"));
  }

  resolveAll.addEventListener("click", async () => {
    const groups = shown.map((g) => ({ media_ids: g.media_ids, keep: [g.suggested] }));
    const done = await guarded(() => api("/v1/duplicates/resolve", { method: "POST", json: { collection: chosen(), groups } }));
    if (done) {
      notify(`Resolved ${done.groups.length} groups.`);
      list.replaceChildren(undoLine(done, load));
    }
  });

  load();
}

function groupCard(group, items) {
  const reasons = [...new Set(group.pairs.flatMap((p) => p.why))];
  const card = el("section", { class: "group", "aria-label": `group of ${group.media_ids.length}`, "data-group": group.suggested });
  const body = el("div", { class: "side-by-side" });
  for (const id of group.media_ids) {
    const item = items[id] || { id };
    const box = el("input", { type: "checkbox", name: "keep", value: id, checked: id === group.suggested, id: `keep-${id}` });
    body.append(
      el(
        "figure",
        { class: id === group.suggested ? "suggested" : "" },
        el("a", { href: `#/photo/${id}` }, thumb(item)),
        el(
          "figcaption",
          {},
          el("label", { for: `keep-${id}` }, box, " keep"),
          id === group.suggested ? el("strong", {}, " suggested") : null,
          el("br"),
          `${describe(item)}, ${bytes(item.bytes)}`,
        ),
      ),
    );
  }
  const keepButton = el("button", { type: "button", class: "resolve" }, "Keep selected, trash the rest");
  const notDuplicates = el("button", { type: "button", class: "not-duplicates" }, "Not duplicates");
  card.append(
    el("h2", {}, `${group.media_ids.length} copies: ${reasons.join(", ")}; saves ${bytes(group.savings_bytes)}`),
    body,
    el("div", { class: "actions" }, keepButton, notDuplicates),
  );

  keepButton.addEventListener("click", async () => {
    const keep = [...card.querySelectorAll("input[name=keep]:checked")].map((b) => b.value);
    if (!keep.length) {
      notify("Select at least one item to keep.");
      return;
    }
    const done = await guarded(() =>
      api("/v1/duplicates/resolve", { method: "POST", json: { collection: chosen(), groups: [{ media_ids: group.media_ids, keep }] } }),
    );
    if (done) card.replaceChildren(undoLine(done, () => card.replaceWith(groupCard(group, items))));
  });
  notDuplicates.addEventListener("click", async () => {
    const done = await guarded(() => api("/v1/duplicates/not-duplicates", { method: "POST", json: { media_ids: group.media_ids } }));
    if (done) card.replaceChildren(el("p", { class: "resolved" }, "Marked as not duplicates: they will not be proposed again."));
  });
  return card;
}

function undoLine(done, restored) {
  const trashed = done.groups.reduce((n, g) => n + g.trashed.length, 0);
  const line = el("p", { class: "resolved" }, `Kept ${done.groups.map((g) => g.kept.length).reduce((a, b) => a + b, 0)}, moved ${trashed} to the trash. `);
  const undo = el("button", { type: "button", class: "undo" }, "Undo");
  undo.addEventListener("click", async () => {
    const back = await guarded(() => api(`/v1/duplicates/resolutions/${done.resolution_id}/undo`, { method: "POST" }));
    if (back) {
      notify("Undone: everything is as it was.");
      restored();
    }
  });
  line.append(undo);
  return line;
}

export async function renderTrash(view) {
  const list = el("ul", { id: "trash-list", class: "grid" });
  const more = el("button", { type: "button", hidden: true }, "More");
  view.append(
    heading("Trash"),
    el("p", {}, "Trashed items are deleted for good after the trash period. ", el("a", { href: "#/duplicates" }, "Back to duplicates")),
    await picker(() => load(null)),
    list,
    more,
  );
  let cursor = null;

  async function load(from) {
    const page = await guarded(() => api("/v1/trash", { query: { collection: chosen(), cursor: from, limit: 50 } }));
    if (!from) list.replaceChildren();
    if (!page) return;
    if (!page.data.length && !from) list.append(el("li", { class: "hint" }, "The trash is empty."));
    for (const item of page.data) list.append(trashItem(item));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => load(cursor));
  load(null);
}

function trashItem(item) {
  const row = el("li", { "data-id": item.id });
  const restore = el("button", { type: "button", class: "restore" }, "Restore");
  const purge = el("button", { type: "button", class: "purge" }, "Delete for good");
  restore.addEventListener("click", async () => {
    if (await guarded(() => api(`/v1/trash/${item.id}/restore`, { method: "POST" }))) {
      row.remove();
      notify("Restored.");
    }
  });
  purge.addEventListener("click", async () => {
    if (!window.confirm("Delete this item for good? This cannot be undone.")) return;
    if ((await guarded(() => api(`/v1/trash/${item.id}`, { method: "DELETE" }))) === null) {
      row.remove();
      notify("Deleted for good.");
    }
  });
  row.append(thumb(item), el("span", { class: "caption" }, `trashed ${when(item.trashed_at)}`), restore, purge);
  return row;
}
