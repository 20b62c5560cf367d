// The jobs view (what RabbitMQ's and rq's dashboards were used for): the queue, running jobs
// with their progress, failures with their errors; cancel and retry. Refreshed every 2 s.

import { api } from "../api.js";
import { el, guarded, heading, notify, when } from "../ui.js";

const STATUSES = ["", "queued", "running", "failed", "canceled", "succeeded"];
const REFRESH_MS = 2000;

export async function render(view, _, query) {
  const filter = el(
    "select",
    { id: "jobs-status", name: "status" },
    STATUSES.map((s) => el("option", { value: s, selected: s === (query.get("status") || "") }, s || "all")),
  );
  const body = el("tbody", { id: "jobs-rows" });
  const table = el(
    "table",
    { class: "jobs" },
    el("caption", { class: "hint" }, "Newest first; refreshed every 2 seconds"),
    el("thead", {}, el("tr", {}, ["Job", "Model", "Status", "Progress", "Created", "Error", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
    body,
  );
  view.append(heading("Jobs"), el("label", { class: "field" }, "Status ", filter), el("div", { class: "table-wrap" }, table));

  let stopped = false;
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    const page = await guarded(() => api("/v1/jobs", { query: { status: filter.value, limit: 100 } }));
    if (stopped) return;
    if (page) body.replaceChildren(...(page.data.length ? page.data.map((job) => row(job, refresh)) : [el("tr", {}, el("td", { colspan: "7", class: "hint" }, "No jobs."))]));
    timer = setTimeout(refresh, REFRESH_MS);
  }
  filter.addEventListener("change", refresh);
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function row(job, refresh) {
  const actions = el("td", { class: "actions" });
  if (job.status === "queued" || job.status === "running") {
    actions.append(
      el("button", {
        type: "button",
        class: "cancel",
        disabled: job.cancel_requested,
        onclick: async () => {
          if (await guarded(() => api(`/v1/jobs/${job.id}/cancel`, { method: "POST" }))) {
            notify(`Cancel requested for ${job.id}.`);
            refresh();
          }
        },
      }, job.cancel_requested ? "Canceling…" : "Cancel"),
    );
  }
  if (job.status === "failed" || job.status === "canceled") {
    actions.append(
      el("button", {
        type: "button",
        class: "retry",
        onclick: async () => {
          const again = await guarded(() => api(`/v1/jobs/${job.id}/retry`, { method: "POST" }));
          if (again) {
            notify(`Retried as ${again.id}.`);
            refresh();
          }
        },
      }, "Retry"),
    );
  }
  const progress = job.status === "running"
    ? el("progress", { max: "100", value: String(job.progress || 0), "aria-label": `progress of ${job.id}` })
    : job.status === "succeeded" ? "100%" : "";
  return el(
    "tr",
    { "data-id": job.id, "data-status": job.status },
    el("td", {}, el("code", {}, job.id)),
    el("td", {}, job.model),
    el("td", { class: `status ${job.status}` }, job.status),
    el("td", {}, progress),
    el("td", {}, when(job.created_at)),
    el("td", { class: "error-text" }, job.error ? `${job.error.code}: ${job.error.message}` : ""),
    actions,
  );
}
