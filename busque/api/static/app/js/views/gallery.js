// A collection's gallery: filters (date, camera, person, label) and a virtualised grid of
// thumbnails that loads the next page as you scroll (only the rows near the screen are in the
// DOM, so a 100,000-item collection scrolls like a small one).

import { api } from "../api.js";
import { chosen, picker } from "../collections.js";
import { describe, el, guarded, heading, thumb } from "../ui.js";

const CELL = 160; // px, the thumbnail's side plus its gap
const BUFFER_ROWS = 3;

export async function render(view, _, query) {
  const pageSize = Number(query.get("page_size")) || 60;
  view.append(heading("Gallery"));
  const people = await guarded(() => api("/v1/people", { query: { limit: 200 } }));
  const form = filtersForm(people ? people.data : []);
  for (const [name, value] of query) if (form.elements[name]) form.elements[name].value = value;
  const status = el("p", { id: "gallery-status", class: "hint", "aria-live": "polite" });
  const grid = el("div", { id: "gallery-grid", class: "vgrid", role: "list", "aria-label": "Photos" });
  view.append(await picker(() => reload()), form, status, grid);

  let items = [];
  let cursor = null;
  let done = false;
  let loading = false;
  let generation = 0;

  function filters() {
    const data = new FormData(form);
    return Object.fromEntries([...data.entries()].filter(([, v]) => v !== ""));
  }

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    const mine = generation;
    const page = await guarded(() =>
      api("/v1/media", { query: { collection: chosen(), limit: pageSize, cursor, ...filters() } }),
    );
    loading = false;
    if (mine !== generation) return;
    if (!page) {
      done = true;
      return;
    }
    items = items.concat(page.data);
    cursor = page.next_cursor;
    done = !cursor;
    status.textContent = `${items.length} ${items.length === 1 ? "item" : "items"}${done ? "" : ", more as you scroll"}`;
    draw();
  }

  function columns() {
    return Math.max(1, Math.floor(grid.clientWidth / CELL));
  }

  function draw() {
    const cols = columns();
    const rows = Math.ceil(items.length / cols);
    grid.style.height = `${rows * CELL}px`;
    const top = grid.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / CELL) - BUFFER_ROWS);
    const last = Math.min(rows, Math.ceil((window.innerHeight - top) / CELL) + BUFFER_ROWS);
    const cells = [];
    for (let i = first * cols; i < Math.min(items.length, last * cols); i += 1) {
      const item = items[i];
      const cell = el(
        "a",
        { href: `#/photo/${item.id}`, class: "cell", role: "listitem", title: describe(item) },
        thumb(item),
      );
      cell.style.transform = `translate(${(i % cols) * CELL}px, ${Math.floor(i / cols) * CELL}px)`;
      cells.push(cell);
    }
    grid.replaceChildren(...cells);
    if (!done && last >= rows - 1) loadMore();
  }

  function reload() {
    generation += 1;
    items = [];
    cursor = null;
    done = false;
    loading = false;
    status.textContent = "Loading…";
    draw();
    loadMore();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  let pending = false;
  const onScroll = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
  window.addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onScroll);
  reload();
  return () => {
    generation += 1;
    window.removeEventListener("scroll", onScroll);
    window.removeEventListener("resize", onScroll);
  };
}

function filtersForm(people) {
  const field = (label, input) => el("label", { class: "field" }, label, " ", input);
  return el(
    "form",
    { id: "gallery-filters", class: "filters", "aria-label": "Filters" },
    field("From", el("input", { type: "date", name: "since", id: "filter-since" })),
    field("Before", el("input", { type: "date", name: "until", id: "filter-until" })),
    field("Camera", el("input", { type: "search", name: "camera", id: "filter-camera" })),
    field(
      "Person",
      el(
        "select",
        { name: "person_id", id: "filter-person" },
        el("option", { value: "" }, "anyone"),
        people.map((p) => el("option", { value: p.id }, p.name || `unnamed (${p.face_count} faces)`)),
      ),
    ),
    field("Label", el("input", { type: "search", name: "label", id: "filter-label" })),
    el("button", { type: "submit" }, "Apply"),
  );
}
