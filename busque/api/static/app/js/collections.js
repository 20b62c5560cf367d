// The collection picker every library view shares; the choice is kept in the tab.

import { api } from "./api.js";
import { el } from "./ui.js";

const CHOSEN = "busque.collection";

export function chosen() {
  return sessionStorage.getItem(CHOSEN) || "default";
}

export async function picker(onChange) {
  const listing = await api("/v1/collections");
  const names = listing.data.map((c) => c.collection);
  const current = chosen();
  if (!names.includes(current)) names.unshift(current);
  const select = el(
    "select",
    { id: "collection", name: "collection" },
    names.map((name) => {
      const info = listing.data.find((c) => c.collection === name);
      const label = info ? `${name} (${info.media})` : name;
      return el("option", { value: name, selected: name === current }, label);
    }),
  );
  select.addEventListener("change", () => {
    sessionStorage.setItem(CHOSEN, select.value);
    onChange(select.value);
  });
  return el("label", { class: "field" }, "Collection ", select);
}
