// One photo: the image, its metadata and labels, its faces with their people, look-alikes.

import { api } from "../api.js";
import { matchGrid } from "../matches.js";
import { bytes, el, guarded, heading, when } from "../ui.js";

export async function render(view, id) {
  const item = await guarded(() => api(`/v1/media/${id}`));
  if (!item) {
    view.append(heading("Photo not found"), el("p", {}, el("a", { href: "#/gallery" }, "Back to the gallery")));
    return;
  }
  const people = await guarded(() => api("/v1/people", { query: { limit: 200 } }));
  const names = new Map((people ? people.data : []).map((p) => [p.id, p.name || "unnamed"]));
  view.append(
    heading(item.metadata.title || `Photo ${item.id}`),
    el(
      "div",
      { class: "photo" },
      el("img", { id: "photo-image", src: item.image_url, alt: `photo ${item.id}` }),
      el("dl", { id: "photo-metadata", class: "facts" }, facts(item)),
    ),
  );

  view.append(el("h2", {}, `Faces (${item.faces.length})`));
  if (!item.faces_analyzed_at) view.append(el("p", { class: "hint" }, "Faces not analysed for this photo."));
  view.append(
    el(
      "ul",
      { id: "photo-faces", class: "grid faces" },
      item.faces.map((face) =>
        el(
          "li",
          {},
          el("img", { src: face.thumbnail_url, alt: `face ${face.id}` }),
          face.person_id
            ? el("a", { href: `#/person/${face.person_id}` }, names.get(face.person_id) || "a person")
            : el("span", { class: "hint" }, "no person yet"),
        ),
      ),
    ),
  );

  view.append(el("h2", {}, "Look-alikes"));
  const found = await guarded(() =>
    api("/v1/search", { method: "POST", json: { media_id: item.id, k: 12, collection: item.collection } }),
  );
  if (found) view.append(matchGrid(found.matches, "photo-lookalikes"));
}

function facts(item) {
  const rows = [
    ["Collection", item.collection],
    ["Status", item.status],
    ["Size", `${item.width}×${item.height} ${item.format}, ${bytes(item.bytes)}`],
    ["Added", when(item.created_at)],
    ["pHash", item.phash],
    ["Labels", (item.labels || []).slice(0, 3).map((l) => l.label).join("; ")],
  ];
  for (const [name, value] of Object.entries(item.metadata || {})) {
    rows.push([name, typeof value === "object" ? JSON.stringify(value) : String(value)]);
  }
  return rows.filter(([, v]) => v).flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]);
}
