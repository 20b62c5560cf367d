// A grid of look-alikes (POST /v1/search's matches), each linking to its photo page.

import { el } from "./ui.js";

export function matchGrid(matches, id) {
  if (!matches.length) return el("p", { id, class: "hint" }, "No look-alikes found.");
  return el(
    "ul",
    { id, class: "grid", "aria-label": "Look-alikes" },
    matches.map((m) => {
      const why = m.exact_duplicate
        ? "identical"
        : m.near_duplicate
          ? `near duplicate (pHash ${m.phash_distance})`
          : `score ${m.score.toFixed(2)}`;
      const label = (m.labels && m.labels[0] && m.labels[0].label) || "";
      return el(
        "li",
        { class: "match" },
        el(
          "a",
          { href: `#/photo/${m.media_id}` },
          el("img", { src: m.thumbnail_url, alt: `look-alike ${m.rank}: ${label}`, loading: "lazy" }),
        ),
        el("span", { class: "caption" }, `${m.rank}. ${why}`),
      );
    }),
  );
}
