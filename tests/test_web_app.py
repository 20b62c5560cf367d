"""The library's web app at /app/ in a real headless Chromium (Debian's, driven by Playwright),
through the real server: sign in with a key, the gallery (filters, a virtualised grid that loads
as it scrolls), a photo's page, search by a dropped photo and by text, a duplicate group resolved
with one click and undone, the trash, people renamed, split and merged, a job cancelled and a
failed one retried; API errors shown as messages; every control labelled; nothing wider than a
phone. Screenshots of each view go to test-artifacts/web-*.png."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import skimage.data
from PIL import Image

from busque.models.faces import unavailable_reason
from tests.browser import screenshot, wait
from tests.conftest import wait_for
from tests.face_photos import astronaut, encode, grace_hopper, variants

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

COLLECTION = "library"
MANY = "many"  # small distinct pictures, enough to scroll
ELSEWHERE = "elsewhere"  # the astronaut's third photo: three faces make a person


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return encode(image, quality=quality)


@pytest.fixture(scope="module")
def library(app):
    """A tenant of its own: a photo and its smaller copy (one duplicate group; with a third
    photo ELSEWHERE, one person), Grace Hopper (a face alone: nobody yet), three photos with no
    face; and MANY small pictures."""
    from busque.cli import _key_store

    key = _key_store(app.settings).create("web-library", "tests").key
    client = app.client(key)
    photo = astronaut()
    files = {
        "original": (jpeg(photo), {"captured_at": "2009-07-14T10:22:01", "camera": "Canon EOS 5D"}),
        "copy": (jpeg(photo.resize((384, 384)), quality=70), {"camera": "phone"}),
        "grace": (jpeg(grace_hopper()), {}),
        "coffee": (jpeg(Image.fromarray(skimage.data.coffee())), {}),
        "chelsea": (jpeg(Image.fromarray(skimage.data.chelsea())), {}),
        "rocket": (jpeg(Image.fromarray(skimage.data.rocket())), {}),
    }
    assert client.put(f"/v1/collections/{MANY}", json={"faces": False}).status_code == 200
    rng = np.random.default_rng(7)
    many = [
        jpeg(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((96, 96)))
        for _ in range(24)
    ]
    accepted = {}
    for name, (data, metadata) in files.items():
        accepted[name] = ingest(client, data, COLLECTION, metadata)
    accepted_many = [ingest(client, data, MANY, {}) for data in many]
    third = ingest(client, variants(photo)[2], ELSEWHERE, {})
    for response in [*accepted.values(), *accepted_many, third]:
        assert wait_for(client, response["job_id"], 120)["status"] == "succeeded"
    ids = {name: response["media_id"] for name, response in accepted.items()}
    yield {"key": key, "client": client, "ids": ids, "files": files}
    client.close()


def ingest(client, data: bytes, collection: str, metadata: dict) -> dict:
    response = client.post(
        "/v1/ingest",
        files={"image": ("p.jpg", data, "image/jpeg")},
        data={"collection": collection, "metadata": json.dumps(metadata)},
    )
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture
def page(browser, app, library):
    """A page signed in with the library's key, its collection chosen."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, app.url, library["key"])
    page.evaluate("c => sessionStorage.setItem('busque.collection', c)", COLLECTION)
    yield page
    context.close()
    assert errors == [], errors  # no script failed along the way


def sign_in(page, url: str, key: str) -> None:
    page.goto(f"{url}/app/")
    assert page.title() == "busque library"
    page.focus("#api-key")
    page.keyboard.type(key)
    page.keyboard.press("Enter")  # the form submits from the keyboard
    wait(page, "!document.getElementById('nav').hidden")


def open_view(page, hash_: str, ready: str) -> None:
    page.evaluate("h => { location.hash = h }", hash_)
    try:
        page.wait_for_selector(ready, state="attached", timeout=60_000)
    except Exception as exc:
        shown = page.evaluate("document.getElementById('main').innerText")
        raise AssertionError(f"{hash_}: no {ready}; the page shows {shown!r}") from exc


def cells(page) -> list[str]:
    return page.eval_on_selector_all(
        "#gallery-grid a.cell", "links => links.map(a => a.getAttribute('href'))"
    )


def test_gallery_filters_and_the_photo_page(page, library):
    ids = library["ids"]
    open_view(page, "#/gallery?page_size=2", "#gallery-grid")
    # Pages of 2 are fetched one after another until the screen is full: all six are there.
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('6 items')")
    assert sorted(cells(page)) == sorted(f"#/photo/{i}" for i in ids.values())
    screenshot(page, "web-gallery")

    page.fill("#filter-camera", "canon")
    page.click("#gallery-filters button[type=submit]")
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('1 item')")
    assert cells(page) == [f"#/photo/{ids['original']}"]

    page.fill("#filter-camera", "")
    page.fill("#filter-since", "2009-07-14")
    page.fill("#filter-until", "2009-07-15")
    page.click("#gallery-filters button[type=submit]")
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('1 item')")
    assert cells(page) == [f"#/photo/{ids['original']}"]

    # The astronaut is a person (three faces); two of the photos are in this collection.
    face = library["client"].get(f"/v1/media/{ids['original']}").json()["faces"][0]
    astronaut_photos = sorted(f"#/photo/{ids[name]}" for name in ("original", "copy"))
    page.fill("#filter-since", "")
    page.fill("#filter-until", "")
    page.select_option("#filter-person", face["person_id"])
    page.click("#gallery-filters button[type=submit]")
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('2 items')")
    names = {f"#/photo/{v}": k for k, v in ids.items()}
    assert sorted(cells(page)) == astronaut_photos, [names.get(c, c) for c in cells(page)]

    page.select_option("#filter-person", "")
    page.click("#gallery-filters button[type=submit]")
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('6 items')")
    page.click(f"a.cell[href='#/photo/{ids['original']}']")
    page.wait_for_selector("#photo-lookalikes")
    facts = page.text_content("#photo-metadata")
    assert "Canon EOS 5D" in facts and "2009-07-14T10:22:01" in facts
    faces = page.eval_on_selector_all("#photo-faces li a", "a => a.map(x => x.textContent)")
    assert len(faces) == 1  # the astronaut's face, with its person
    lookalikes = page.eval_on_selector_all(
        "#photo-lookalikes a", "a => a.map(x => x.getAttribute('href'))"
    )
    assert lookalikes[0] == f"#/photo/{ids['copy']}", lookalikes  # the copy comes first
    screenshot(page, "web-photo")


def test_gallery_filters_by_label_and_refuses_a_bad_date(library):
    client, ids = library["client"], library["ids"]
    top = client.get(f"/v1/media/{ids['coffee']}").json()["labels"][0]["label"]
    word = top.split(",")[0].upper()  # "espresso" of "espresso, ...": any case, a part
    page = client.get("/v1/media", params={"collection": COLLECTION, "label": word}).json()
    assert ids["coffee"] in {m["id"] for m in page["data"]}, (word, page)
    assert ids["original"] not in {m["id"] for m in page["data"]}
    for bad in ({"since": "last tuesday"}, {"until": "2024-13-01"}):
        response = client.get("/v1/media", params={"collection": COLLECTION, **bad})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"


def test_the_grid_is_virtualised_and_loads_as_it_scrolls(browser, app, library):
    context = browser.new_context(viewport={"width": 390, "height": 600})  # a phone
    page = context.new_page()
    page.set_default_timeout(60_000)
    sign_in(page, app.url, library["key"])
    page.evaluate("c => sessionStorage.setItem('busque.collection', c)", MANY)
    open_view(page, "#/gallery?page_size=5", "#gallery-grid")
    wait(page, "document.querySelectorAll('#gallery-grid a.cell').length > 0")
    status = page.text_content("#gallery-status")
    assert "more as you scroll" in status, status  # not all 24 at once
    first = cells(page)
    for _ in range(30):  # scroll to the end, a screen at a time
        page.mouse.wheel(0, 500)
        page.wait_for_timeout(150)
        if page.text_content("#gallery-status").startswith("24 items"):
            break
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    wait(page, "document.getElementById('gallery-status').textContent.startsWith('24 items')")
    page.wait_for_timeout(300)
    last = cells(page)
    assert len(last) < 24, len(last)  # only the rows near the screen are in the page
    assert first[0] not in last  # the top rows left the DOM as they scrolled away
    no_overflow(page)
    context.close()


def test_search_by_a_dropped_photo_and_by_text(page, library):
    ids = library["ids"]
    open_view(page, "#/search", "#drop-zone")
    data = library["files"]["copy"][0]
    page.evaluate(
        """([b64, name]) => {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, {type: 'image/jpeg'}));
          const zone = document.getElementById('drop-zone');
          zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
        }""",
        [base64.b64encode(data).decode(), "copy.jpg"],
    )
    page.wait_for_selector("#search-matches")
    found = page.eval_on_selector_all(
        "#search-matches a", "a => a.map(x => x.getAttribute('href'))"
    )
    assert found[:2] == [f"#/photo/{ids['copy']}", f"#/photo/{ids['original']}"], found
    screenshot(page, "web-search")

    page.fill("#search-text", "an astronaut")
    page.click("#search-text-form button")
    # The test embedder has no text tower: the API's own words, shown as a message.
    wait(page, "!document.getElementById('message').hidden")
    assert "text tower" in page.text_content("#message-text")


def test_a_duplicate_group_resolved_with_one_click_undone_and_restored(page, library):
    ids, client = library["ids"], library["client"]
    found = client.get("/v1/duplicates", params={"collection": COLLECTION}).json()
    names = {v: k for k, v in ids.items()}
    assert [[names[i] for i in g["media_ids"]] for g in found["groups"]] == [["original", "copy"]]
    open_view(page, "#/duplicates", "#duplicate-groups")
    group = f"section.group[data-group='{ids['original']}']"
    page.wait_for_selector(group)
    # The suggestion (the larger original) is pre-selected; the copy is not.
    assert page.is_checked(f"#keep-{ids['original']}")
    assert not page.is_checked(f"#keep-{ids['copy']}")
    screenshot(page, "web-duplicates")

    page.click(f"{group} button.resolve")
    page.wait_for_selector(f"{group} button.undo")
    assert "moved 1 to the trash" in page.text_content(group)
    assert client.get(f"/v1/media/{ids['copy']}").json()["status"] == "trashed"
    assert client.get(f"/v1/media/{ids['original']}").json()["status"] == "indexed"

    page.click(f"{group} button.undo")
    page.wait_for_selector(f"{group} button.resolve")
    assert client.get(f"/v1/media/{ids['copy']}").json()["status"] == "indexed"

    page.focus(f"{group} button.resolve")
    page.keyboard.press("Enter")  # the same from the keyboard
    page.wait_for_selector(f"{group} button.undo")
    open_view(page, "#/trash", "#trash-list")
    item = f"#trash-list li[data-id='{ids['copy']}']"
    page.wait_for_selector(item)
    screenshot(page, "web-trash")
    page.click(f"{item} button.restore")
    page.wait_for_selector(item, state="detached")
    assert client.get(f"/v1/media/{ids['copy']}").json()["status"] == "indexed"

    # The restored copy is back in the index (synced every index.sync_s), so back in a group.
    deadline = time.monotonic() + 30
    while not client.get("/v1/duplicates", params={"collection": COLLECTION}).json()["groups"]:
        assert time.monotonic() < deadline, "the restored copy never joined a group again"
        time.sleep(0.2)
    open_view(page, "#/duplicates", "#duplicate-groups")
    page.wait_for_selector(group)
    page.click(f"{group} button.not-duplicates")
    wait(page, "document.getElementById('duplicate-groups').textContent.includes('not duplicates')")
    found = client.get("/v1/duplicates", params={"collection": COLLECTION}).json()
    assert found["total_groups"] == 0, found["groups"]


def test_people_renamed_split_and_merged(page, library):
    client, ids = library["client"], library["ids"]
    eileen = client.get(f"/v1/media/{ids['original']}").json()["faces"][0]["person_id"]
    open_view(page, "#/people", "#people-grid")
    page.wait_for_selector(f"#people-grid li[data-id='{eileen}']")
    page.fill(f"#name-{eileen}", "Eileen Collins")
    page.click(f"#people-grid li[data-id='{eileen}'] form.rename button")
    wait(page, "document.getElementById('notice').textContent.includes('Eileen Collins')")
    assert client.get(f"/v1/people/{eileen}").json()["name"] == "Eileen Collins"
    screenshot(page, "web-people")

    open_view(page, f"#/person/{eileen}", "#person-faces")
    faces = page.eval_on_selector_all("#person-faces li", "li => li.map(x => x.dataset.id)")
    assert len(faces) == 3, faces  # the original's face, the copy's and the third photo's
    page.select_option(f"#move-{faces[0]}", "new")
    page.click(f"#person-faces li[data-id='{faces[0]}'] button")
    page.wait_for_selector(f"#person-faces li[data-id='{faces[0]}']", state="detached")
    split = client.get(f"/v1/faces/{faces[0]}").json()["person_id"]
    assert split not in (None, eileen)
    assert client.get(f"/v1/people/{eileen}").json()["face_count"] == 2

    open_view(page, "#/people", "#people-grid")
    page.wait_for_selector(f"#merge-{eileen} option[value='{split}']", state="attached")
    page.select_option(f"#merge-{eileen}", split)
    page.click(f"#people-grid li[data-id='{eileen}'] .merge button")
    wait(page, "id => location.hash === '#/person/' + id", arg=eileen)
    page.wait_for_selector(f"#person-faces li[data-id='{faces[0]}']")
    assert client.get(f"/v1/people/{eileen}").json()["face_count"] == 3
    assert client.get(f"/v1/people/{split}").status_code == 404


def test_jobs_cancelled_and_retried_from_the_jobs_view(page, library):
    client = library["client"]
    sleeping = client.post("/v1/jobs", json={"model": "sleep", "input": {"seconds": 60}}).json()
    failing = client.post("/v1/jobs", json={"model": "fail", "input": {"message": "boom"}}).json()
    assert wait_for(client, failing["id"], 60)["status"] == "failed"
    open_view(page, "#/jobs", "#jobs-rows")
    row = f"#jobs-rows tr[data-id='{sleeping['id']}']"
    page.wait_for_selector(f"{row} button.cancel")
    failed = f"#jobs-rows tr[data-id='{failing['id']}']"
    page.wait_for_selector(failed)
    assert "boom" in page.text_content(f"{failed} .error-text")
    screenshot(page, "web-jobs")

    page.click(f"{row} button.cancel")
    page.wait_for_selector(f"#jobs-rows tr[data-id='{sleeping['id']}'][data-status='canceled']")
    assert client.get(f"/v1/jobs/{sleeping['id']}").json()["status"] == "canceled"

    page.click(f"{failed} button.retry")
    wait(page, "document.getElementById('notice').textContent.startsWith('Retried as')")
    again = page.text_content("#notice").removeprefix("Retried as ").rstrip(".")
    retried = client.get(f"/v1/jobs/{again}").json()
    assert retried["model"] == "fail" and retried["input"]["message"] == "boom"
    assert retried["labels"]["retry_of"] == failing["id"]
    page.wait_for_selector(f"#jobs-rows tr[data-id='{again}']")


def test_errors_are_messages_never_a_blank_page(browser, app, library):
    page = browser.new_page()
    page.goto(f"{app.url}/app/")
    page.fill("#api-key", "bq_nope_nope")
    page.click("#sign-in-form button")
    wait(page, "!document.getElementById('message').hidden")
    assert page.text_content("#whoami") == "key refused"
    assert page.is_visible("#sign-in") and page.is_hidden("#nav")

    sign_in(page, app.url, library["key"])
    open_view(page, "#/photo/med_doesnotexist", "#view h1")
    wait(page, "!document.getElementById('message').hidden")
    assert page.text_content("#view h1") == "Photo not found"
    assert "med_doesnotexist" in page.text_content("#message-text")
    page.close()


VIEWS = {
    "#/gallery": "#gallery-grid",
    "#/search": "#drop-zone",
    "#/duplicates": "#duplicate-groups",
    "#/trash": "#trash-list",
    "#/people": "#people-grid",
    "#/jobs": "#jobs-rows",
}


@pytest.mark.parametrize("width", [390, 1280])
def test_every_view_is_labelled_and_fits_the_screen(browser, app, library, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    sign_in(page, app.url, library["key"])
    page.evaluate("c => sessionStorage.setItem('busque.collection', c)", COLLECTION)
    for view, ready in VIEWS.items():
        open_view(page, view, ready)
        page.wait_for_timeout(300)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, button, img')]
                .filter(e => e.offsetParent !== null)
                .filter(e => e.tagName === 'IMG' ? !e.alt
                  : e.tagName === 'BUTTON' ? !(e.textContent.trim() || e.getAttribute('aria-label'))
                  : !((e.labels && e.labels.length) || e.getAttribute('aria-label')))
                .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert unlabelled == [], (view, unlabelled)
        assert page.evaluate("document.activeElement.tagName") == "H1", view  # focus moved
        no_overflow(page)
        if width == 390:
            screenshot(page, f"web-phone-{view.strip('#/')}")
    context.close()


def no_overflow(page) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 1, f"the page is {wide}px wider than the screen"


def test_the_app_is_served_without_a_key(app):
    import httpx

    with httpx.Client(base_url=app.url) as anonymous:
        assert anonymous.get("/app", follow_redirects=False).status_code == 308
        index = anonymous.get("/app/")
        assert index.status_code == 200 and "busque library" in index.text
        module = anonymous.get("/app/js/main.js")
        assert module.status_code == 200
        assert "javascript" in module.headers["content-type"]
        assert anonymous.get("/app/js/nothing.js").status_code == 404
        assert anonymous.get("/app/../busque/config.py").status_code == 404
