// People (clustered faces): a grid to rename and merge them, faces in no person yet, and a
// person's page with their faces, each of which can be moved to someone else.

import { api } from "../api.js";
import { el, guarded, heading, notify } from "../ui.js";

async function allPeople() {
  const page = await guarded(() => api("/v1/people", { query: { limit: 200 } }));
  return page ? page.data : [];
}

function personName(person) {
  return person.name || `unnamed (${person.face_count} faces)`;
}

export async function render(view) {
  const people = await allPeople();
  const grid = el("ul", { id: "people-grid", class: "grid people", "aria-label": "People" });
  view.append(heading("People"), grid);
  if (!people.length) grid.append(el("li", { class: "hint" }, "No people yet: faces are grouped into people as photos are analysed."));
  for (const person of people) grid.append(personCard(person, people));

  const loose = await guarded(() => api("/v1/faces", { query: { unassigned: true, limit: 60 } }));
  if (loose && loose.data.length) {
    view.append(el("h2", {}, "Faces in no person yet"), faceGrid(loose.data, people, "unassigned-faces"));
  }
}

function personCard(person, people) {
  const name = el("input", { type: "text", value: person.name || "", id: `name-${person.id}`, maxlength: "200" });
  const form = el(
    "form",
    { class: "rename" },
    el("label", { for: `name-${person.id}` }, "Name"),
    name,
    el("button", { type: "submit" }, "Rename"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = await guarded(() => api(`/v1/people/${person.id}`, { method: "PATCH", json: { name: name.value.trim() || null } }));
    if (done) notify(`Renamed to ${personName(done)}.`);
  });
  const others = people.filter((p) => p.id !== person.id);
  const merge = el(
    "select",
    { id: `merge-${person.id}`, "aria-label": `Merge someone into ${personName(person)}` },
    el("option", { value: "" }, "merge someone in…"),
    others.map((p) => el("option", { value: p.id }, personName(p))),
  );
  const mergeButton = el("button", { type: "button" }, "Merge");
  mergeButton.addEventListener("click", async () => {
    if (!merge.value) return;
    if (await guarded(() => api(`/v1/people/${person.id}/merge`, { method: "POST", json: { person_id: merge.value } }))) {
      notify("Merged.");
      location.hash = `#/person/${person.id}`;
    }
  });
  return el(
    "li",
    { class: "person", "data-id": person.id },
    el(
      "a",
      { href: `#/person/${person.id}` },
      person.cover_thumbnail_url ? el("img", { src: person.cover_thumbnail_url, alt: personName(person) }) : el("div", { class: "no-image" }, "?"),
      el("span", {}, `${person.face_count} faces`),
    ),
    form,
    others.length ? el("div", { class: "merge" }, merge, mergeButton) : null,
  );
}

export async function renderPerson(view, id) {
  const person = await guarded(() => api(`/v1/people/${id}`));
  if (!person) {
    view.append(heading("Person not found"), el("a", { href: "#/people" }, "Back to people"));
    return;
  }
  const people = await allPeople();
  const faces = await guarded(() => api("/v1/faces", { query: { person_id: id, limit: 200 } }));
  view.append(
    heading(personName(person)),
    el("p", {}, el("a", { href: `#/gallery?person_id=${id}` }, "Their photos"), " · ", el("a", { href: "#/people" }, "All people")),
    personCard(person, people),
    el("h2", {}, "Faces"),
    faceGrid(faces ? faces.data : [], people, "person-faces"),
  );
}

function faceGrid(faces, people, id) {
  return el(
    "ul",
    { id, class: "grid faces" },
    faces.map((face) => {
      const target = el(
        "select",
        { "aria-label": `Move face ${face.id} to`, id: `move-${face.id}` },
        el("option", { value: "" }, "move to…"),
        people.filter((p) => p.id !== face.person_id).map((p) => el("option", { value: p.id }, personName(p))),
        el("option", { value: "new" }, "a new person"),
        face.person_id ? el("option", { value: "none" }, "nobody") : null,
      );
      const move = el("button", { type: "button" }, "Move");
      const item = el(
        "li",
        { "data-id": face.id },
        el("a", { href: `#/photo/${face.media_id}` }, el("img", { src: face.thumbnail_url, alt: `face ${face.id}` })),
        target,
        move,
      );
      move.addEventListener("click", async () => {
        if (!target.value) return;
        const personId = target.value === "none" ? null : target.value;
        if (await guarded(() => api(`/v1/faces/${face.id}`, { method: "PATCH", json: { person_id: personId } }))) {
          item.remove();
          notify("Face moved.");
        }
      });
      return item;
    }),
  );
}
