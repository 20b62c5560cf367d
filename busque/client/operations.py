"""busque's API as methods, written once for both clients. Each method describes its requests
as data: a single Call, or a flow (a generator that yields Calls and receives their responses,
for what takes several: upload then PUT, long-poll until a job ends). `Client` runs them
blocking, `AsyncClient` as coroutines (so each method here returns an awaitable there)."""

from __future__ import annotations

import base64
import json
import mimetypes
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx

from busque.client.config import resolve
from busque.client.errors import JobCanceled, JobFailed, WaitTimeout
from busque.client.sse import EventStream
from busque.client.transport import Call, RetryPolicy, clean_params
from busque.client.types import (
    Account,
    Artifact,
    Collection,
    Duplicates,
    Face,
    FaceSearchResult,
    Ingested,
    Job,
    Media,
    ModelInfo,
    Page,
    Person,
    Resolution,
    Resource,
    SearchResult,
    Upload,
)

R = TypeVar("R", bound=Resource)
Flow = Generator[Call, httpx.Response, Any]
ImageInput = bytes | str | Path | IO[bytes]

LONG_POLL_S = 30.0  # one GET ?wait= at most this long (the server caps it too)


def _id(value: str | Resource) -> str:
    """An id, or a resource's id, safe in a path."""
    ident = value if isinstance(value, str) else value.raw.get("id") or value.raw["job_id"]
    return quote(ident, safe="")


def _one(call: Call, parse: Callable[[httpx.Response], Any] | None = None) -> Flow:
    response = yield call
    return parse(response) if parse is not None else response


def _as(cls: type[R]) -> Callable[[httpx.Response], R]:
    return lambda response: cls.from_dict(response.json())


def _list_of(cls: type[R]) -> Callable[[httpx.Response], list[R]]:
    return lambda response: [cls.from_dict(item) for item in response.json()["data"]]


def _page_of(cls: type[R]) -> Callable[[httpx.Response], Page[R]]:
    def parse(response: httpx.Response) -> Page[R]:
        body = response.json()
        return Page(
            data=[cls.from_dict(item) for item in body["data"]],
            next_cursor=body.get("next_cursor"),
        )

    return parse


def _query_of(args: dict[str, Any], *leave_out: str) -> list[tuple[str, Any]]:
    """A method's arguments (its `locals()`) as query parameters of the same names, but
    `self` and the path's (`leave_out`)."""
    return clean_params({k: v for k, v in args.items() if k != "self" and k not in leave_out})


def _labels(labels: Mapping[str, str] | None) -> list[str] | None:
    return [f"{k}={v}" for k, v in labels.items()] if labels else None


def image_bytes(image: ImageInput, filename: str | None = None) -> tuple[str, bytes]:
    """(file name, bytes) of a photo given as bytes, a path or an open binary file."""
    if isinstance(image, bytes | bytearray | memoryview):
        return filename or "image.jpg", bytes(image)
    if isinstance(image, str | Path):
        path = Path(image)
        return filename or path.name, path.read_bytes()
    return filename or Path(getattr(image, "name", "image.jpg")).name, image.read()


def _job(response: httpx.Response) -> Job:
    job = Job.from_dict(response.json())
    job.replayed = response.headers.get("idempotent-replayed") == "true"
    return job


def _wait(job_id: str, timeout: float | None, poll_s: float) -> Flow:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        wait = poll_s if left is None else max(0.0, min(poll_s, left))
        response = yield Call(
            "GET", f"/v1/jobs/{job_id}", params=[("wait", round(wait, 3))], timeout=wait + 30
        )
        job = Job.from_dict(response.json())
        if job.done:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(job, timeout or 0)


def _create_job(
    model: str,
    input: dict[str, Any] | None,
    *,
    params: dict[str, Any] | None = None,
    webhook: dict[str, Any] | None = None,
    priority: int | None = None,
    labels: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    wait: float | None = None,
) -> Flow:
    body: dict[str, Any] = {"model": model, "input": input or {}}
    for name, value in (
        ("params", params),
        ("webhook", webhook),
        ("priority", priority),
        ("labels", dict(labels) if labels else None),
    ):
        if value is not None:
            body[name] = value
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    if wait:
        headers["Prefer"] = f"wait={wait:g}"
    timeout = wait + 30 if wait else None
    return (
        yield from _one(Call("POST", "/v1/jobs", json=body, headers=headers, timeout=timeout), _job)
    )


def _create_upload(filename: str, content_type: str | None) -> Call:
    body = {"filename": filename, **({"content_type": content_type} if content_type else {})}
    return Call("POST", "/v1/uploads", json=body)


def _finished(job: Job) -> Job:
    if job.status == "failed":
        raise JobFailed(job)
    if job.status == "canceled":
        raise JobCanceled(job)
    return job


class Operations:
    """The API's methods. Subclasses provide `_run(flow)`, `_events(stream)` and
    `_pages(method, **kwargs)`."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        max_retries: int,
        retry: RetryPolicy | None,
    ):
        self.config = resolve(base_url, api_key)
        self.retry = retry or RetryPolicy(max_retries=max_retries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.base_url!r})"

    def _run(self, flow: Flow) -> Any:
        raise NotImplementedError

    def _events(self, stream: EventStream) -> Any:
        raise NotImplementedError

    def _pages(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        raise NotImplementedError

    def _call(self, call: Call, parse: Callable[[httpx.Response], Any] | None = None) -> Any:
        return self._run(_one(call, parse))

    # ---- operations ----

    def ready(self) -> bool:
        """Whether busque answers /readyz with 200 (its database, store and models are up)."""
        return self._call(Call("GET", "/readyz", auth=False), lambda r: r.status_code == 200)

    def me(self) -> Account:
        """The calling key's tenant, scopes and (for a key that may create jobs) the tenant's
        webhook signing secret."""
        return self._call(Call("GET", "/v1/me"), _as(Account))

    def list_models(self) -> list[ModelInfo]:
        """The model catalog: ids, kinds, default parameters, availability."""
        return self._call(Call("GET", "/v1/models"), _list_of(ModelInfo))

    def get_model(self, model_id: str) -> ModelInfo:
        return self._call(Call("GET", f"/v1/models/{_id(model_id)}"), _as(ModelInfo))

    # ---- jobs ----

    def create_job(
        self,
        model: str,
        input: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        webhook: dict[str, Any] | None = None,
        priority: int | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Submit a job. It is sent with an Idempotency-Key (a new one unless given), so the
        client retries it after a connection error or a 429/503 without making two jobs; the
        same key sent again answers the first job (`job.replayed` is then True). `wait`: hold
        the answer up to that many seconds for the job to finish (Prefer: wait)."""
        return self._run(
            _create_job(
                model,
                input,
                params=params,
                webhook=webhook,
                priority=priority,
                labels=labels,
                idempotency_key=idempotency_key,
                wait=wait,
            )
        )

    def get_job(self, job_id: str | Job, wait: float | None = None) -> Job:
        """A job; `wait`: long-poll up to that many seconds for it to finish."""
        params = [("wait", wait)] if wait else None
        timeout = wait + 30 if wait else None
        return self._call(
            Call("GET", f"/v1/jobs/{_id(job_id)}", params=params, timeout=timeout), _as(Job)
        )

    def wait(
        self, job_id: str | Job, timeout: float | None = None, *, poll_s: float = LONG_POLL_S
    ) -> Job:
        """The job once it is succeeded, failed or canceled (long-polls, as often as needed);
        WaitTimeout if it is not after `timeout` seconds."""
        return self._run(_wait(_id(job_id), timeout, poll_s))

    def run(self, model: str, input: dict[str, Any] | None = None, *, timeout=None, **kw) -> Job:
        """Submit a job and wait for it: the succeeded job; JobFailed (its error code as
        `.code`) or JobCanceled otherwise, WaitTimeout after `timeout` seconds. Takes
        create_job's keyword arguments."""

        def flow() -> Flow:
            created = yield from _create_job(model, input, **kw)
            job = yield from _wait(_id(created), timeout, LONG_POLL_S)
            return _finished(job)

        return self._run(flow())

    def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        model: str | None = None,
        labels: Mapping[str, str] | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        """A page of the tenant's jobs, newest first (`iter_jobs` reads every page)."""
        params = clean_params(
            {
                "status": [status] if isinstance(status, str) else list(status or []),
                "model": model,
                "label": _labels(labels),
                "created_after": created_after,
                "created_before": created_before,
                "limit": limit,
                "cursor": cursor,
            }
        )
        return self._call(Call("GET", "/v1/jobs", params=params), _page_of(Job))

    def iter_jobs(self, **filters: Any) -> Any:
        """Every job list_jobs(**filters) finds, page after page."""
        return self._pages(self.list_jobs, **filters)

    def cancel_job(self, job_id: str | Job) -> Job:
        """Cancel a job (a running one stops cooperatively); Conflict if it had succeeded or
        failed. Sent again after a broken connection: a canceled job's cancel answers it."""
        return self._call(Call("POST", f"/v1/jobs/{_id(job_id)}/cancel", safe=True), _as(Job))

    def retry_job(self, job_id: str | Job) -> Job:
        """A new job with a failed or canceled job's model, input and webhook."""
        return self._call(Call("POST", f"/v1/jobs/{_id(job_id)}/retry"), _job)

    def artifacts(self, job_id: str | Job) -> list[Artifact]:
        """The files a job wrote, each with a presigned download URL."""
        return self._call(Call("GET", f"/v1/jobs/{_id(job_id)}/artifacts"), _list_of(Artifact))

    def download(self, what: Artifact | str, path: str | Path | None = None) -> Any:
        """An artifact's (or any presigned URL's) bytes; written to `path` if given (then the
        path is returned)."""
        url = what if isinstance(what, str) else what.url

        def flow() -> Flow:
            response = yield Call("GET", url, auth=False)
            if path is None:
                return response.content
            Path(path).write_bytes(response.content)
            return Path(path)

        return self._run(flow())

    def webhook_deliveries(self, job_id: str | Job) -> list[dict[str, Any]]:
        """The job's webhook delivery log."""
        return self._call(
            Call("GET", f"/v1/jobs/{_id(job_id)}/webhooks"), lambda r: r.json()["data"]
        )

    # ---- events ----

    def job_events(self, job_id: str | Job, *, after: int | None = None) -> Any:
        """A job's events as they happen (past ones first), as an iterator of Event that ends
        after the job's terminal status. A broken connection is opened again with
        Last-Event-ID: no event is lost or repeated. `after`: start after that event id."""
        return self._events(EventStream(path=f"/v1/jobs/{_id(job_id)}/events", last_event_id=after))

    def events(self, *, labels: Mapping[str, str] | None = None, after: int | None = None) -> Any:
        """Every event of the tenant's jobs (with these labels) from now, or after event id
        `after`; it never ends by itself. Resumes after a broken connection, as job_events."""
        return self._events(
            EventStream(
                path="/v1/events",
                params=clean_params({"label": _labels(labels)}) or None,
                stop_at_terminal=False,
                last_event_id=after,
            )
        )

    # ---- uploads and ingest ----

    def create_upload(
        self, filename: str = "upload.bin", content_type: str | None = None
    ) -> Upload:
        """A presigned PUT ticket (see `upload`, which also sends the bytes)."""
        return self._call(_create_upload(filename, content_type), _as(Upload))

    def upload(
        self, data: ImageInput, filename: str | None = None, content_type: str | None = None
    ) -> Upload:
        """Upload bytes (or a file) through a presigned URL; the Upload's `object_key` is then
        what ingest(object_key=...) and jobs take. The content type is guessed from the file
        name unless given."""
        name, content = image_bytes(data, filename)
        content_type = content_type or mimetypes.guess_type(name)[0]

        def flow() -> Flow:
            ticket = yield from _one(_create_upload(name, content_type), _as(Upload))
            yield Call(
                ticket.method,
                ticket.upload_url,
                content=content,
                headers=dict(ticket.headers),
                auth=False,
            )
            return ticket

        return self._run(flow())

    def ingest(
        self,
        image: ImageInput | None = None,
        *,
        object_key: str | None = None,
        collection: str | None = None,
        metadata: dict[str, Any] | None = None,
        k: int | None = None,
        filename: str | None = None,
    ) -> Ingested:
        """Ingest a photo (bytes, a path, a file, or an uploaded object's key): its pHash and
        sha256 at once, the rest by its job (`client.wait(ingested.job_id)`)."""
        if (image is None) == (object_key is None):
            raise ValueError("give an image or an object_key")
        fields: dict[str, Any] = {"collection": collection, "k": k}
        if object_key is not None:
            body = {**fields, "object_key": object_key, "metadata": metadata}
            call = Call("POST", "/v1/ingest", json={k: v for k, v in body.items() if v is not None})
        else:
            name, content = image_bytes(image, filename)
            form = {k: str(v) for k, v in fields.items() if v is not None}
            if metadata is not None:
                form["metadata"] = json.dumps(metadata)
            call = Call("POST", "/v1/ingest", files={"image": (name, content)}, data=form)
        return self._call(call, _as(Ingested))

    # ---- search ----

    def search(
        self,
        image: ImageInput | None = None,
        *,
        text: str | None = None,
        phash: str | None = None,
        media_id: str | None = None,
        k: int | None = None,
        collection: str | None = None,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> SearchResult:
        """Look-alikes of a photo, a text (with a text-capable embedder), a pHash (16 hex
        digits) or a catalogued media id: ranked matches with score and distances."""
        body: dict[str, Any] = {
            "text": text,
            "phash": phash,
            "media_id": media_id,
            "k": k,
            "collection": collection,
            "mode": mode,
            "filters": filters,
            "min_score": min_score,
        }
        if image is not None:
            body["image_base64"] = base64.b64encode(image_bytes(image)[1]).decode()
        body = {k: v for k, v in body.items() if v is not None}
        return self._call(Call("POST", "/v1/search", json=body, safe=True), _as(SearchResult))

    # ---- media and collections ----

    def get_media(self, media_id: str) -> Media:
        """One media item with signed image URLs and its faces."""
        return self._call(Call("GET", f"/v1/media/{_id(media_id)}"), _as(Media))

    def list_media(
        self,
        *,
        collection: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        camera: str | None = None,
        person_id: str | None = None,
        label: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Media]:
        """A page of media, newest first; `status`: indexed (default), pending or all."""
        params = _query_of(locals())
        return self._call(Call("GET", "/v1/media", params=params), _page_of(Media))

    def iter_media(self, **filters: Any) -> Any:
        return self._pages(self.list_media, **filters)

    def delete_media(self, media_id: str) -> None:
        """Delete a media item everywhere (catalog, index, storage)."""
        return self._call(Call("DELETE", f"/v1/media/{_id(media_id)}"), lambda r: None)

    def collections(self) -> list[Collection]:
        """The tenant's collections: media counts and options."""
        return self._call(Call("GET", "/v1/collections"), _list_of(Collection))

    def set_collection(self, name: str, *, faces: bool) -> Collection:
        """Set a collection's options (whether ingest analyses faces)."""
        return self._call(
            Call("PUT", f"/v1/collections/{_id(name)}", json={"faces": faces}), _as(Collection)
        )

    # ---- faces and people ----

    def search_faces(
        self,
        image: ImageInput | None = None,
        *,
        object_key: str | None = None,
        k: int | None = None,
        threshold: float | None = None,
    ) -> FaceSearchResult:
        """The faces in a photo, each with the nearest known faces and their people."""
        if (image is None) == (object_key is None):
            raise ValueError("give an image or an object_key")
        body: dict[str, Any] = {"object_key": object_key, "k": k, "threshold": threshold}
        if image is not None:
            body["image_base64"] = base64.b64encode(image_bytes(image)[1]).decode()
        body = {k: v for k, v in body.items() if v is not None}
        return self._call(
            Call("POST", "/v1/faces/search", json=body, safe=True), _as(FaceSearchResult)
        )

    def list_faces(
        self,
        *,
        unassigned: bool | None = None,
        person_id: str | None = None,
        media_id: str | None = None,
        collection: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Face]:
        params = _query_of(locals())
        return self._call(Call("GET", "/v1/faces", params=params), _page_of(Face))

    def get_face(self, face_id: str) -> Face:
        return self._call(Call("GET", f"/v1/faces/{_id(face_id)}"), _as(Face))

    def move_face(self, face_id: str, person_id: str | None) -> Face:
        """Move a face to a person (None: to nobody; "new": a person of its own)."""
        return self._call(
            Call("PATCH", f"/v1/faces/{_id(face_id)}", json={"person_id": person_id}, safe=True),
            _as(Face),
        )

    def list_people(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Person]:
        """People (faces clustered), newest first."""
        params = _query_of(locals())
        return self._call(Call("GET", "/v1/people", params=params), _page_of(Person))

    def iter_people(self, **kwargs: Any) -> Any:
        return self._pages(self.list_people, **kwargs)

    def get_person(self, person_id: str) -> Person:
        return self._call(Call("GET", f"/v1/people/{_id(person_id)}"), _as(Person))

    def rename_person(self, person_id: str, name: str | None) -> Person:
        """Name a person (None clears the name)."""
        return self._call(
            Call("PATCH", f"/v1/people/{_id(person_id)}", json={"name": name}, safe=True),
            _as(Person),
        )

    def merge_people(self, person_id: str, other_id: str) -> Person:
        """Merge person `other_id` into `person_id` (the other one is deleted)."""
        return self._call(
            Call("POST", f"/v1/people/{_id(person_id)}/merge", json={"person_id": other_id}),
            _as(Person),
        )

    def person_media(
        self, person_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Media]:
        """The media a person appears in."""
        params = _query_of(locals(), "person_id")
        return self._call(
            Call("GET", f"/v1/people/{_id(person_id)}/media", params=params), _page_of(Media)
        )

    # ---- duplicates ----

    def duplicates(
        self,
        *,
        collection: str | None = None,
        radius: int | None = None,
        min_cosine: float | None = None,
        min_score: float | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Duplicates:
        """A page of duplicate groups (exact, pHash, visual, hybrid) with reasons and the items
        they show."""
        params = _query_of(locals())
        return self._call(Call("GET", "/v1/duplicates", params=params), _as(Duplicates))

    def resolve_duplicates(
        self, groups: Iterable[Any], *, collection: str | None = None
    ) -> Resolution:
        """Keep one (or several) item of each group and trash the rest. A group is a
        DuplicateGroup (keeps its suggestion), a list of media ids (keeps the server's
        suggestion) or {"media_ids": [...], "keep": [...]}."""
        body: dict[str, Any] = {"groups": [_group(g) for g in groups]}
        if collection is not None:
            body["collection"] = collection
        return self._call(Call("POST", "/v1/duplicates/resolve", json=body), _as(Resolution))

    def undo_resolution(self, resolution_id: str) -> dict[str, Any]:
        """Undo a resolve: every item as it was before it."""
        return self._call(
            Call("POST", f"/v1/duplicates/resolutions/{_id(resolution_id)}/undo", safe=True),
            lambda r: r.json(),
        )

    def not_duplicates(self, media_ids: Iterable[str]) -> int:
        """These items are not copies of each other: never propose them again. The number of
        pairs newly recorded."""
        return self._call(
            Call("POST", "/v1/duplicates/not-duplicates", json={"media_ids": list(media_ids)}),
            lambda r: r.json()["pairs_recorded"],
        )

    def trash(
        self,
        *,
        collection: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Media]:
        """Trashed media (resolved duplicates), newest first."""
        params = _query_of(locals())
        return self._call(Call("GET", "/v1/trash", params=params), _page_of(Media))

    def restore(self, media_id: str) -> Media:
        """Put a trashed item back."""
        return self._call(Call("POST", f"/v1/trash/{_id(media_id)}/restore", safe=True), _as(Media))

    def purge(self, media_id: str) -> None:
        """Delete a trashed item now."""
        return self._call(Call("DELETE", f"/v1/trash/{_id(media_id)}"), lambda r: None)


def _group(group: Any) -> dict[str, Any]:
    if isinstance(group, Resource):
        media_ids = list(group.raw["media_ids"])
        keep = [group.raw["suggested"]] if group.raw.get("suggested") else None
        return {"media_ids": media_ids, **({"keep": keep} if keep else {})}
    if isinstance(group, Mapping):
        return dict(group)
    return {"media_ids": list(group)}
